namespace Skein.Driver.Tests.Firewall;

/// <summary>One lab for all kernel tests of a class (they run one after another); each test starts from no skein rules.</summary>
public class FirewallLabFixture : IDisposable
{
    private readonly Lazy<FirewallLab> _lab;

    public FirewallLabFixture()
        : this(FirewallLabBackend.Default)
    {
    }

    internal FirewallLabFixture(FirewallLabBackend backend)
    {
        _lab = new(() => new FirewallLab(backend));
        SkipReason = FindSkipReason(backend);
    }

    public string? SkipReason { get; }

    internal FirewallLab Lab => _lab.Value;

    private static string? FindSkipReason(FirewallLabBackend backend)
    {
        if (!OperatingSystem.IsLinux()) return "firewall kernel tests need Linux";
        if (!TestShell.IsRoot) return "firewall kernel tests need root (network namespaces, iptables)";
        foreach (var tool in new[] { "ip", backend.Iptables, backend.Ip6tables, backend.IptablesRestore, backend.Ip6tablesRestore, "nsenter", "sysctl" })
            if (!TestShell.HasCommand(tool)) return $"firewall kernel tests need '{tool}'";
        if (TestShell.HasCommand("modprobe")) TestShell.Run("modprobe", "br_netfilter");
        if (!File.Exists("/proc/sys/net/bridge/bridge-nf-call-iptables"))
            return "br_netfilter is not available: bridged traffic would bypass iptables, so dockerd's situation cannot be rebuilt";
        return null;
    }

    public void Dispose()
    {
        GC.SuppressFinalize(this);
        if (_lab.IsValueCreated) _lab.Value.Dispose();
    }
}

/// <summary>The same lab on iptables-legacy, for hosts whose dockerd uses the legacy backend.</summary>
public sealed class LegacyFirewallLabFixture : FirewallLabFixture
{
    public LegacyFirewallLabFixture()
        : base(FirewallLabBackend.Legacy)
    {
    }
}
