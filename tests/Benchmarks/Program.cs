namespace Skein.Benchmarks;

/// <summary>
/// BenchmarkDotNet benchmarks (netlink, IPAM) by default; the scripted ones (tests/Benchmarks/scripts) are named
/// by their first argument: scripted-latency, scripted-startup, scripted-store,
/// scripted-cluster-alloc.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        Func<string[], Task<int>>? scripted = args.Length == 0 ? null : args[0] switch
        {
            "scripted-latency" => LatencyBench.RunAsync,
            "scripted-startup" => ScriptedStartupBench.RunAsync,
            "scripted-store" => StoreBench.RunAsync,
            "scripted-cluster-alloc" => ClusterAllocationBench.RunAsync,
            _ => null,
        };
        if (scripted is null)
        {
            BenchmarkDotNet.Running.BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
            return 0;
        }
        try
        {
            return await scripted(args[1..]);
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"{args[0]}: {e.Message}");
            return 1;
        }
    }
}
