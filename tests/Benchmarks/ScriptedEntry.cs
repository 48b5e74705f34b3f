namespace Skein.Benchmarks;

/// <summary>Helpers shared by the scripted (non-BenchmarkDotNet) benchmarks that Program.Main dispatches to.</summary>
internal static class ScriptedEntry
{
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
}
