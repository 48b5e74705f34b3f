using Skein.Driver.Plugin;
using Skein.Ipam;

namespace Skein.Driver.Cli;

/// <summary>`skein serve`: runs the plugin until SIGTERM/SIGINT; exits 1 when start-up fails (systemd restarts it).</summary>
public static class ServeCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        ServeOptions options;
        try
        {
            options = ServeOptions.Parse(args, Environment.GetEnvironmentVariable);
        }
        catch (SkeinException ex)
        {
            await Console.Error.WriteLineAsync($"skein serve: {ex.Message}").ConfigureAwait(false);
            return 2;
        }

        PluginHost host;
        try
        {
            host = await PluginHost.StartAsync(options).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await Console.Error.WriteLineAsync($"skein serve: cannot listen on {options.SocketPath}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
        await using (host.ConfigureAwait(false))
        {
            var shutdown = host.WaitForShutdownAsync();
            var first = await Task.WhenAny(shutdown, host.Ready).ConfigureAwait(false);
            if (first == host.Ready && host.Ready.IsFaulted)
                return 1;
            await shutdown.ConfigureAwait(false);
            return 0;
        }
    }
}
