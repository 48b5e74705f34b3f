using System.Text;
using System.Text.Json.Nodes;

namespace Skein.Driver.Tests.TestSupport;

/// <summary>
/// Everything a plugin call could change, as text: every store key with its version and value, every link with its
/// master, MTU, MAC and addresses, and the firewall rules. Two equal snapshots mean a call changed nothing.
/// </summary>
public static class StateSnapshot
{
    public static async Task<string> TakeAsync(PluginTestHost host)
    {
        var text = new StringBuilder();
        var runtime = await host.Host.Ready;
        foreach (var store in new[] { runtime.ClusterStore, runtime.DriverStore }.Distinct())
        {
            var (entries, _) = await store.ListAsync("", keysOnly: false, CancellationToken.None);
            foreach (var entry in entries.OrderBy(e => e.Key, StringComparer.Ordinal))
                text.Append(entry.Key).Append(" v").Append(entry.Version).Append(' ').AppendLine(Convert.ToBase64String(entry.Value.Span));
        }
        var addresses = (JsonArray)JsonNode.Parse(host.Ns.IpJson("addr", "show"))!;
        foreach (var link in addresses.OfType<JsonObject>().OrderBy(l => l["ifname"]!.GetValue<string>(), StringComparer.Ordinal))
        {
            text.Append(link["ifname"]).Append(" master=").Append(link["master"]).Append(" mtu=").Append(link["mtu"])
                .Append(" mac=").Append(link["address"]).Append(" up=").Append(link["flags"]!.AsArray().Any(f => f!.GetValue<string>() == "UP"));
            // Link-local addresses and carrier flags settle asynchronously after a link comes up: not ours to compare.
            foreach (var address in link["addr_info"]!.AsArray().OfType<JsonObject>().Where(a => a["scope"]?.GetValue<string>() != "link"))
                text.Append(' ').Append(address["local"]).Append('/').Append(address["prefixlen"]);
            text.AppendLine();
        }
        foreach (var line in host.FirewallRules().Split('\n'))
            if (!line.StartsWith('#'))
                text.AppendLine(line.StartsWith(':') ? line.Split(' ')[0] : line);
        return text.ToString();
    }
}
