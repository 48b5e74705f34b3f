using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Skein.Driver.Tests.Firewall;

/// <summary>What one test command did.</summary>
internal readonly record struct ShellResult(int ExitCode, string Output, string Error)
{
    public bool Ok => ExitCode == 0;
}

/// <summary>Runs test-side commands (ip, iptables, sysctl) without a shell.</summary>
internal static class TestShell
{
    public static ShellResult Run(params string[] argv)
    {
        var start = new ProcessStartInfo(argv[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in argv.Skip(1)) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(20_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"`{string.Join(' ', argv)}` did not finish in 20 s");
        }
        process.WaitForExit();
        return new ShellResult(process.ExitCode, output.Result, error.Result);
    }

    public static string MustRun(params string[] argv)
    {
        var result = Run(argv);
        if (!result.Ok)
            throw new InvalidOperationException($"`{string.Join(' ', argv)}` failed ({result.ExitCode}): {result.Error.Trim()}");
        return result.Output;
    }

    public static bool IsRoot => Environment.UserName == "root" || geteuid() == 0;

    public static bool HasCommand(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin")
            .Split(':').Append("/usr/sbin").Append("/sbin")
            .Any(dir => File.Exists(Path.Combine(dir, name)));

    [DllImport("libc")]
    private static extern uint geteuid();
}

/// <summary>
/// A network namespace created for one test fixture and always deleted again. Private to the firewall tests
/// until the shared helper under TestSupport lands. Sockets can be opened inside it from the test process.
/// </summary>
internal sealed class FirewallScratchNamespace : IDisposable
{
    private const int CloneNewNet = 0x40000000;
    private bool _disposed;

    public string Name { get; }
    public string Path => $"/run/netns/{Name}";

    private FirewallScratchNamespace(string name)
    {
        Name = name;
    }

    public static FirewallScratchNamespace Create(string role)
    {
        var name = $"skfw-{role}-{Guid.NewGuid().ToString("N")[..6]}";
        TestShell.MustRun("ip", "netns", "add", name);
        var scratch = new FirewallScratchNamespace(name);
        try
        {
            scratch.Ip("link", "set", "lo", "up");
        }
        catch
        {
            scratch.Dispose();
            throw;
        }
        return scratch;
    }

    /// <summary><c>ip -n NAME ...</c>, failing the test on error.</summary>
    public string Ip(params string[] args) => TestShell.MustRun(["ip", "-n", Name, .. args]);

    /// <summary>Runs a command inside the namespace.</summary>
    public ShellResult Exec(params string[] argv) => TestShell.Run(["ip", "netns", "exec", Name, .. argv]);

    public string MustExec(params string[] argv) => TestShell.MustRun(["ip", "netns", "exec", Name, .. argv]);

    public string? Sysctl(string name)
    {
        var result = Exec("sysctl", "-n", name);
        return result.Ok ? result.Output.Trim() : null;
    }

    /// <summary>
    /// Opens a socket that belongs to this namespace: a dedicated thread enters the namespace, creates the socket
    /// and ends. The socket keeps its namespace for life, whichever thread uses it afterwards.
    /// </summary>
    public Socket OpenSocket(AddressFamily family, SocketType type, ProtocolType protocol)
    {
        Socket? socket = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle(Path, FileMode.Open, FileAccess.Read);
                if (setns((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                    throw new InvalidOperationException($"setns({Path}) failed: errno {Marshal.GetLastPInvokeError()}");
                socket = new Socket(family, type, protocol);
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null) throw failure;
        return socket!;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        TestShell.Run("ip", "netns", "del", Name);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);
}
