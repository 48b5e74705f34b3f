namespace Skein.Driver.Firewall;

/// <summary>Which iptables command family a rule goes through.</summary>
internal enum IpFamily
{
    V4,
    V6,
}

/// <summary>The iptables tables skein writes to.</summary>
internal static class IptablesTable
{
    public const string Filter = "filter";
    public const string Nat = "nat";
    public const string Raw = "raw";
}

/// <summary>
/// One rule in the exact form <c>iptables -S</c> prints it back, so that comparing listed and wanted rules is a
/// string comparison.
/// </summary>
internal sealed record FirewallRule(string Table, string Chain, string Spec)
{
    public string AppendLine => $"-A {Chain} {Spec}";
}
