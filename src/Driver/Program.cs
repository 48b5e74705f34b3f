using Skein.Driver.Cli;

namespace Skein.Driver;

public static class Program
{
    private const string Usage = """
        usage: skein COMMAND [options]
          serve   [--socket PATH] [--state-dir DIR] [--store URL] [--netns PATH]
                  [--advertise-addr IP] [--vxlan-port N] [--node-id ID] [--reclaim-after SECONDS]
                  [--driver-scope local|global]
                  run the Docker network and IPAM plugin (env: SKEIN_SOCKET, SKEIN_STATE_DIR, SKEIN_STORE, SKEIN_NETNS,
                  SKEIN_ADVERTISE_ADDR, SKEIN_VXLAN_PORT, SKEIN_NODE_ID, SKEIN_RECLAIM_AFTER, SKEIN_DRIVER_SCOPE); a consul:// or etcd://
                  store with --advertise-addr makes networks with a --subnet or skein.network span hosts over VXLAN
          status  [--socket PATH] [--state-dir DIR] [--json]  networks and endpoints (from the store when stopped)
          doctor  [--netns PATH]             host settings skein depends on
          replay  TRACE.jsonl [--socket PATH] replay a recorded Docker trace against a running plugin
        """;

    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            await Console.Out.WriteLineAsync(Usage).ConfigureAwait(false);
            return args.Length == 0 ? 2 : 0;
        }
        var rest = args[1..];
        return args[0] switch
        {
            "serve" => await ServeCommand.RunAsync(rest).ConfigureAwait(false),
            "status" => await StatusCommand.RunAsync(rest, Console.Out, Console.Error).ConfigureAwait(false),
            "doctor" => await DoctorCommand.RunAsync(rest, Console.Out, Console.Error).ConfigureAwait(false),
            "replay" => await Replay.ReplayCommand.RunAsync(rest).ConfigureAwait(false),
            _ => await UnknownAsync(args[0]).ConfigureAwait(false),
        };
    }

    private static async Task<int> UnknownAsync(string command)
    {
        await Console.Error.WriteLineAsync($"skein: unknown command '{command}'\n{Usage}").ConfigureAwait(false);
        return 2;
    }
}
