using System.Runtime.CompilerServices;

namespace Skein.Benchmarks;

/// <summary>
/// The shell-scripted benchmarks (tests/Benchmarks/scripts) drive this assembly with a first argument
/// "scripted-latency" or "scripted-startup". Program.Main hands every argument to BenchmarkDotNet, so
/// these are routed here before Main runs; any other argument leaves BenchmarkDotNet in charge.
/// A module initializer runs inside the module's type initializer, so code of this assembly on any
/// other thread would wait for it to finish: the async work is pumped on this one thread instead.
/// </summary>
internal static class ScriptedEntry
{
#pragma warning disable CA2255 // a deliberate module initializer: this is an executable, not a library
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Dispatch()
    {
        var args = Environment.GetCommandLineArgs();
        if (args.Length < 2)
            return;
        Func<string[], Task<int>>? command = args[1] switch
        {
            "scripted-latency" => LatencyBench.RunAsync,
            "scripted-startup" => ScriptedStartupBench.RunAsync,
            _ => null,
        };
        if (command is null)
            return;
        int code;
        try
        {
            code = SingleThreadPump.Run(() => command(args[2..]));
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"{args[1]}: {e.Message}");
            code = 1;
        }
        Environment.Exit(code);
    }

    /// <summary>Value of "--name VALUE" or the default.</summary>
    internal static string Option(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    internal static double Percentile(List<double> sorted, double p)
    {
        if (sorted.Count == 0)
            return double.NaN;
        var rank = p / 100 * (sorted.Count - 1);
        var low = (int)Math.Floor(rank);
        var high = (int)Math.Ceiling(rank);
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
    }

    /// <summary>Runs an async entry point with every continuation posted back to the calling thread.</summary>
    private sealed class SingleThreadPump : SynchronizationContext
    {
        private readonly System.Collections.Concurrent.BlockingCollection<(SendOrPostCallback, object?)> queue = [];

        public override void Post(SendOrPostCallback d, object? state) => queue.Add((d, state));

        public override void Send(SendOrPostCallback d, object? state) => throw new NotSupportedException();

        public static int Run(Func<Task<int>> entry)
        {
            var previous = Current;
            var pump = new SingleThreadPump();
            SetSynchronizationContext(pump);
            try
            {
                var task = entry();
                // The entry's last continuation runs here too, so checking between callbacks suffices.
                while (!task.IsCompleted)
                    if (pump.queue.TryTake(out var item, 100))
                        item.Item1(item.Item2);
                return task.GetAwaiter().GetResult();
            }
            finally
            {
                SetSynchronizationContext(previous);
            }
        }
    }
}
