namespace Skein.Driver.Tests.Firewall;

/// <summary>One lab for all kernel tests of a class (they run one after another); each test starts from no skein rules.</summary>
public sealed class FirewallLabFixture : IDisposable
{
    private readonly Lazy<FirewallLab> _lab = new(() => new FirewallLab());

    public string? SkipReason { get; } = FindSkipReason();

    internal FirewallLab Lab => _lab.Value;

    private static string? FindSkipReason()
    {
        if (!OperatingSystem.IsLinux()) return "firewall kernel tests need Linux";
        if (!TestShell.IsRoot) return "firewall kernel tests need root (network namespaces, iptables)";
        foreach (var tool in new[] { "ip", "iptables", "ip6tables", "iptables-restore", "ip6tables-restore", "nsenter", "sysctl" })
            if (!TestShell.HasCommand(tool)) return $"firewall kernel tests need '{tool}'";
        if (TestShell.HasCommand("modprobe")) TestShell.Run("modprobe", "br_netfilter");
        if (!File.Exists("/proc/sys/net/bridge/bridge-nf-call-iptables"))
            return "br_netfilter is not available: bridged traffic would bypass iptables, so dockerd's situation cannot be rebuilt";
        return null;
    }

    public void Dispose()
    {
        if (_lab.IsValueCreated) _lab.Value.Dispose();
    }
}
