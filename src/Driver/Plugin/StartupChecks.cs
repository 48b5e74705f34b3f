using Microsoft.Extensions.Logging;

namespace Skein.Driver.Plugin;

/// <summary>
/// Settings netlink cannot change (global ip_forward, bridge-nf-call-*, IPv6 switches) are read and, when wrong,
/// reported clearly at start-up instead of failing requests later (decisions #13). `skein doctor` shows the same.
/// </summary>
public static class StartupChecks
{
    public sealed record Finding(string Setting, string? Value, string Problem);

    public static IReadOnlyList<Finding> Check(Func<string, string?> readSysctl)
    {
        var findings = new List<Finding>();
        var ipForward = readSysctl("net.ipv4.ip_forward");
        if (ipForward is not null && ipForward != "1")
            findings.Add(new("net.ipv4.ip_forward", ipForward, "IPv4 forwarding is off: containers cannot reach anything beyond their bridge"));
        var nfCall = readSysctl("net.bridge.bridge-nf-call-iptables");
        if (nfCall is null)
            findings.Add(new("net.bridge.bridge-nf-call-iptables", null, "br_netfilter is not loaded: bridged traffic bypasses iptables, so isolation between networks relies on routing alone"));
        var disableIPv6 = readSysctl("net.ipv6.conf.default.disable_ipv6");
        if (disableIPv6 == "1")
            findings.Add(new("net.ipv6.conf.default.disable_ipv6", disableIPv6, "IPv6 is disabled on new interfaces: --ipv6 networks get no IPv6 gateway on their bridge"));
        var ipv6Forward = readSysctl("net.ipv6.conf.all.forwarding");
        if (ipv6Forward is not null && ipv6Forward != "1")
            findings.Add(new("net.ipv6.conf.all.forwarding", ipv6Forward, "IPv6 forwarding is off: IPv6 traffic does not leave a bridge"));
        return findings;
    }

    public static void Report(SkeinRuntime runtime, ILogger log)
    {
        foreach (var finding in Check(runtime.Kernel.TryReadSysctl))
            log.LogWarning("{Setting} = {Value}: {Problem}", finding.Setting, finding.Value ?? "(absent)", finding.Problem);
    }
}
