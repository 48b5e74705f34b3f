using Skein.Driver.Firewall;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Plugin;

namespace Skein.Driver.Cli;

/// <summary>
/// `skein doctor [--netns PATH]`: the host settings skein depends on but cannot set itself (decisions #13, #16):
/// forwarding, br_netfilter, the iptables backend, skein's jumps and DOCKER-USER. Exit 0 when healthy.
/// </summary>
public static class DoctorCommand
{
    public static Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        string? netns = Environment.GetEnvironmentVariable("SKEIN_NETNS") is { Length: > 0 } env ? env : null;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--netns" && i + 1 < args.Length)
                netns = args[++i];
            else if (args[i].StartsWith("--netns=", StringComparison.Ordinal))
                netns = args[i]["--netns=".Length..];
            else
            {
                error.WriteLine($"skein doctor: unknown argument '{args[i]}' (known: --netns PATH)");
                return Task.FromResult(2);
            }
        }

        var problems = 0;
        using var kernel = RtNetlinkKernel.Open(netns);
        foreach (var setting in new[] { "net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.ipv6.conf.all.forwarding", "net.ipv6.conf.default.disable_ipv6" })
            output.WriteLine($"{setting,-40} {kernel.TryReadSysctl(setting) ?? "(absent)"}");
        foreach (var finding in StartupChecks.Check(kernel.TryReadSysctl))
        {
            output.WriteLine($"PROBLEM {finding.Setting}: {finding.Problem}");
            problems++;
        }

        var firewall = new IptablesFirewall(new IptablesOptions
        {
            CommandPrefix = netns is null ? [] : ["nsenter", $"--net={netns}"],
            ReadSysctl = netns is null ? null : kernel.TryReadSysctl,
        });
        try
        {
            var report = firewall.Inspect();
            output.WriteLine($"iptables {report.IptablesVersion} ({report.Backend})");
            output.WriteLine($"FORWARD policy {report.ForwardPolicy ?? "?"}; DOCKER-USER {(report.DockerUserPresent ? "present" : "absent")}; skein FORWARD jump {(report.ForwardJumpInPlace ? "in place" : "missing")}; NAT jumps {(report.NatJumpsInPlace ? "in place" : "missing")}");
            foreach (var problem in report.Problems)
            {
                output.WriteLine($"PROBLEM firewall: {problem}");
                problems++;
            }
        }
        catch (Exception ex)
        {
            output.WriteLine($"PROBLEM firewall: cannot inspect iptables: {KernelFailure.Describe(ex) ?? ex.Message}");
            problems++;
        }
        output.WriteLine(problems == 0 ? "healthy" : $"{problems} problem(s)");
        return Task.FromResult(problems == 0 ? 0 : 1);
    }
}
