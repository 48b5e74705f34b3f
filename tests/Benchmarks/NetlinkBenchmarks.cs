using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Skein.Driver.Netlink;

namespace Skein.Benchmarks;

/// <summary>
/// rtnetlink in-process vs. the same work done by running `ip`/`bridge`, same run, inside a scratch
/// namespace this benchmark creates and removes (needs root). Each group's baseline is the command
/// variant, so the Ratio column reads "time in-process / time with commands".
///   Links: a veth pair created and deleted (what an endpoint costs), per pair; LinkCreate: creation only.
///   Fdb:   reconciling a VXLAN device's 1,000-entry FDB to the next desired set (500 entries go,
///          500 come, each set has two flood entries), per reconcile: one dump, then changes.
/// Run: dotnet run -c Release --project tests/Benchmarks -- --filter '*Netlink*'   (about 2 minutes)
/// </summary>
[Config(typeof(NetlinkBenchmarkConfig))]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class NetlinkBenchmarks
{
    private const int LinksPerInvocation = 50;
    private const int FdbSize = 1000;
    private const int ReconcilesPerInvocation = 10; // the fast variants repeat, to lift iterations above timer noise

    private readonly string _namespace = $"sknl-bench-{Environment.ProcessId}";
    private RtNetlink _netlink = null!;
    private int _vxlan;
    private List<FdbEntry>[] _sets = null!;
    private int _target;

    [GlobalSetup]
    public void Setup()
    {
        if (!Environment.IsPrivilegedProcess) throw new InvalidOperationException("the netlink benchmark needs root to create its scratch namespace");
        Run("ip", $"netns add {_namespace}");
        _netlink = RtNetlink.OpenNamespace($"/var/run/netns/{_namespace}");
        _netlink.AddLink(new VxlanSpec("vx0", 42) { Learning = false, Local = IPAddress.Parse("198.18.0.1") });
        _vxlan = _netlink.GetLink("vx0")!.Index;
        _sets = [DesiredSet(0), DesiredSet(FdbSize / 2)];
        _netlink.SyncFdb(_vxlan, _sets[0]);
        _target = 1;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _netlink?.Dispose();
        Run("ip", $"netns del {_namespace}");
    }

    /// <summary>Not timed: every reconcile must leave exactly the set it aimed for.</summary>
    [IterationCleanup(Targets = [nameof(FdbReconcile_BridgeCommands), nameof(FdbReconcile_BridgeBatch), nameof(FdbReconcile_InProcess)])]
    public void CheckFdb()
    {
        var held = _netlink.ListFdb(_vxlan).Where(e => e.Self && e.Destination is not null).Select(e => (e.MacAddress, e.Destination!)).ToHashSet();
        var expected = _sets[1 - _target].Select(e => (e.MacAddress, e.Destination!)).ToHashSet();
        if (!held.SetEquals(expected)) throw new InvalidOperationException($"FDB holds {held.Count} entries, not the {expected.Count} asked for");
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = LinksPerInvocation), BenchmarkCategory("Links")]
    public void LinkCreateDelete_IpCommands()
    {
        for (int i = 0; i < LinksPerInvocation; i++)
        {
            Run("ip", $"-n {_namespace} link add bench{i} type veth peer name benchp{i}");
            Run("ip", $"-n {_namespace} link del bench{i}");
        }
    }

    [Benchmark(OperationsPerInvoke = LinksPerInvocation), BenchmarkCategory("Links")]
    public void LinkCreateDelete_InProcess()
    {
        for (int i = 0; i < LinksPerInvocation; i++)
        {
            _netlink.AddLink(new VethSpec($"bench{i}", $"benchp{i}"));
            _netlink.DeleteLink($"bench{i}");
        }
    }

    /// <summary>Creation alone (deletion, which waits for RCU grace periods in the kernel, is untimed).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = LinksPerInvocation), BenchmarkCategory("LinkCreate")]
    public void LinkCreate_IpCommands()
    {
        for (int i = 0; i < LinksPerInvocation; i++)
            Run("ip", $"-n {_namespace} link add bench{i} type veth peer name benchp{i}");
    }

    [Benchmark(OperationsPerInvoke = LinksPerInvocation), BenchmarkCategory("LinkCreate")]
    public void LinkCreate_InProcess()
    {
        for (int i = 0; i < LinksPerInvocation; i++)
            _netlink.AddLink(new VethSpec($"bench{i}", $"benchp{i}"));
    }

    [IterationCleanup(Targets = [nameof(LinkCreate_IpCommands), nameof(LinkCreate_InProcess)])]
    public void DeleteCreatedLinks()
    {
        for (int i = 0; i < LinksPerInvocation; i++)
            _netlink.DeleteLink($"bench{i}");
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Fdb")]
    public void FdbReconcile_BridgeCommands()
    {
        foreach (var command in ReconcileCommands(NextTarget()))
            Run("bridge", $"-n {_namespace} {command}");
    }

    [Benchmark(OperationsPerInvoke = ReconcilesPerInvocation), BenchmarkCategory("Fdb")]
    public void FdbReconcile_BridgeBatch()
    {
        for (int i = 0; i < ReconcilesPerInvocation; i++)
        {
            var script = string.Join('\n', ReconcileCommands(NextTarget())) + "\n";
            Run("bridge", $"-n {_namespace} -batch -", script);
        }
    }

    [Benchmark(OperationsPerInvoke = ReconcilesPerInvocation), BenchmarkCategory("Fdb")]
    public void FdbReconcile_InProcess()
    {
        for (int i = 0; i < ReconcilesPerInvocation; i++)
        {
            var result = _netlink.SyncFdb(_vxlan, NextTarget());
            if (result.Changes != FdbSize + 2) throw new InvalidOperationException($"unexpected reconcile: {result}");
        }
    }

    private List<FdbEntry> NextTarget()
    {
        var target = _sets[_target];
        _target = 1 - _target;
        return target;
    }

    /// <summary>What a shell-based reconciler does: read `bridge -j fdb show`, diff, emit del/append lines.</summary>
    private List<string> ReconcileCommands(List<FdbEntry> desired)
    {
        var held = new HashSet<(string Mac, string Dst)>();
        using (var json = JsonDocument.Parse(Run("bridge", $"-n {_namespace} -j fdb show dev vx0")))
        {
            foreach (var entry in json.RootElement.EnumerateArray())
                if (entry.TryGetProperty("dst", out var dst))
                    held.Add((entry.GetProperty("mac").GetString()!, dst.GetString()!));
        }
        var wanted = desired.Select(e => (Mac: Colon(e.MacAddress), Dst: e.Destination!.ToString())).ToHashSet();
        var commands = new List<string>();
        foreach (var (mac, dst) in held.Except(wanted)) commands.Add($"fdb del {mac} dev vx0 dst {dst} self");
        foreach (var (mac, dst) in wanted.Except(held)) commands.Add($"fdb append {mac} dev vx0 dst {dst} self permanent");
        return commands;
    }

    private List<FdbEntry> DesiredSet(int first)
    {
        var set = Enumerable.Range(first, FdbSize)
            .Select(i => new FdbEntry(_vxlan, new PhysicalAddress([0x02, 0, 0, (byte)(i >> 16), (byte)(i >> 8), (byte)i]), IPAddress.Parse($"198.18.{1 + i % 200}.{2 + i % 250}")))
            .ToList();
        // Flood entries: one shared by both sets, one that changes.
        set.Add(new FdbEntry(_vxlan, FdbEntry.FloodMac, IPAddress.Parse("198.18.0.2")));
        set.Add(new FdbEntry(_vxlan, FdbEntry.FloodMac, IPAddress.Parse(first == 0 ? "198.18.0.3" : "198.18.0.4")));
        return set;
    }

    private static string Colon(PhysicalAddress mac) => string.Join(':', mac.GetAddressBytes().Select(b => b.ToString("x2")));

    private static string Run(string file, string arguments, string? input = null)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = input is not null,
            UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        if (input is not null)
        {
            process.StandardInput.Write(input);
            process.StandardInput.Close();
        }
        string output = process.StandardOutput.ReadToEnd();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{file} {arguments} failed: {error}");
        return output;
    }
}

/// <summary>In-process (no separate build), one warm-up and nine measured iterations of one invocation each.</summary>
public sealed class NetlinkBenchmarkConfig : ManualConfig
{
    public NetlinkBenchmarkConfig()
    {
        AddJob(Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithStrategy(RunStrategy.Monitoring)
            .WithLaunchCount(1)
            .WithWarmupCount(1)
            .WithIterationCount(9)
            .WithInvocationCount(1)
            .WithUnrollFactor(1));
    }
}
