using System.Text.RegularExpressions;
using Microsoft.Win32.SafeHandles;

namespace Skein.Driver.Tests.TestSupport;

/// <summary>
/// A uniquely named network namespace for a kernel test, made with `ip netns add` and removed with
/// `ip netns del` on Dispose (deleting a namespace also destroys the virtual links inside it).
/// Names are "skt-PID-N"; namespaces left behind by a test process that no longer runs are removed
/// the first time a new one is created. Use with <c>Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason)</c>.
/// </summary>
public sealed partial class NetNs : IDisposable
{
    private const string Prefix = "skt";
    private static int s_counter;
    private static int s_staleCleaned;
    private bool _disposed;

    private NetNs(string name) => Name = name;

    public string Name { get; }

    /// <summary>/var/run/netns/NAME: what <c>RtNetlink.OpenNamespace(path)</c> accepts.</summary>
    public string Path => $"/var/run/netns/{Name}";

    /// <summary>True when namespaces can be made here: root and iproute2 present.</summary>
    public static bool IsSupported => Environment.IsPrivilegedProcess && NetNsCommand.Exists("ip");

    public static string SkipReason => Environment.IsPrivilegedProcess
        ? "needs iproute2 (`ip`) to create network namespaces"
        : "needs root to create network namespaces (run the tests as root to include the kernel tests)";

    /// <summary>Creates the namespace and brings its loopback up.</summary>
    public static NetNs Create()
    {
        if (Interlocked.Exchange(ref s_staleCleaned, 1) == 0) RemoveStale();
        string name = $"{Prefix}-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}";
        NetNsCommand.Run("ip", "netns", "add", name);
        var ns = new NetNs(name);
        try
        {
            ns.Exec("ip", "link", "set", "lo", "up");
        }
        catch
        {
            ns.Dispose();
            throw;
        }
        return ns;
    }

    /// <summary>Runs a command inside the namespace (`ip netns exec`); throws with its stderr when it fails.</summary>
    public string Exec(params string[] command) => NetNsCommand.Run("ip", ["netns", "exec", Name, .. command]);

    /// <summary>Runs a command inside the namespace and returns its exit code and output without throwing.</summary>
    public NetNsCommand.Result TryExec(params string[] command) => NetNsCommand.TryRun("ip", ["netns", "exec", Name, .. command]);

    /// <summary>`ip -j ARGS` in the namespace, for checking what the kernel holds.</summary>
    public string IpJson(params string[] args) => NetNsCommand.Run("ip", ["-n", Name, "-j", .. args]);

    /// <summary>`bridge -j ARGS` in the namespace.</summary>
    public string BridgeJson(params string[] args) => NetNsCommand.Run("bridge", ["-n", Name, "-j", .. args]);

    /// <summary>Opens the namespace file; the fd stays valid while the handle lives.</summary>
    public SafeFileHandle Open() => File.OpenHandle(Path, FileMode.Open, FileAccess.Read);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        // Processes still inside keep the namespace alive but the name goes; retry once on a busy mount.
        var result = NetNsCommand.TryRun("ip", "netns", "del", Name);
        if (result.ExitCode != 0 && File.Exists(Path))
        {
            Thread.Sleep(100);
            NetNsCommand.TryRun("ip", "netns", "del", Name);
        }
    }

    private static void RemoveStale()
    {
        if (!Directory.Exists("/var/run/netns")) return;
        foreach (var path in Directory.GetFiles("/var/run/netns"))
        {
            var match = StaleName().Match(System.IO.Path.GetFileName(path));
            if (!match.Success) continue;
            int pid = int.Parse(match.Groups[1].Value);
            if (pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}"))
                NetNsCommand.TryRun("ip", "netns", "del", System.IO.Path.GetFileName(path));
        }
    }

    [GeneratedRegex(@"^skt-(\d+)-\d+$")]
    private static partial Regex StaleName();
}
