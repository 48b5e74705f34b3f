using System.Net;
using Skein.Driver.Firewall;

namespace Skein.Driver.Tests.Firewall;

/// <summary>The iptables commands of one backend: what the lab's "dockerd" uses, and so what skein must use.</summary>
internal sealed record FirewallLabBackend(string Iptables, string Ip6tables, string IptablesRestore, string Ip6tablesRestore)
{
    /// <summary>Whatever <c>iptables</c> resolves to on this machine (nft on bookworm).</summary>
    public static readonly FirewallLabBackend Default = new("iptables", "ip6tables", "iptables-restore", "ip6tables-restore");
    public static readonly FirewallLabBackend Legacy = new("iptables-legacy", "ip6tables-legacy", "iptables-legacy-restore", "ip6tables-legacy-restore");
}

/// <summary>A "container": a namespace whose eth0 hangs off a bridge in the lab's host namespace.</summary>
internal sealed record LabContainer(FirewallScratchNamespace Ns, string HostVeth, IPAddress IPv4, IPAddress? IPv6);

/// <summary>
/// dockerd's situation rebuilt inside scratch namespaces, never touching the real host:
/// <code>
///   host (H): FORWARD policy DROP (iptables and ip6tables), DOCKER-USER chain + jump, bridge-nf-call-iptables = 1,
///             ip_forward = 1, and a Docker-like "docker0" bridge with Docker's egress accept.
///   bridges in H: A skbr-a000000001 10.201.1.0/24 + fd00:201:1::/64 (A1, A2)
///                 B skbr-b000000002 10.201.2.0/24 (B1)
///                 I skbr-c000000003 10.201.3.0/24, internal (I1, I2)
///                 docker0           10.201.9.0/24 (D1)
///   outside (O): 198.51.100.2/24 (and .4), linked to H (198.51.100.1 and .3), with a route to 10.201.0.0/16 via H,
///                so that what fails, fails because of the firewall and not for want of a route.
/// </code>
/// </summary>
internal sealed class FirewallLab : IDisposable
{
    public static readonly IPAddress HostOutside = IPAddress.Parse("198.51.100.1");
    public static readonly IPAddress HostOutsideSecond = IPAddress.Parse("198.51.100.3");
    public static readonly IPAddress OutsideAddress = IPAddress.Parse("198.51.100.2");
    /// <summary>A second address of the outside namespace: a host on the underlay that is not a listed VTEP.</summary>
    public static readonly IPAddress OutsideStranger = IPAddress.Parse("198.51.100.4");

    private readonly List<FirewallScratchNamespace> _namespaces = [];

    public FirewallScratchNamespace Host { get; }
    public FirewallScratchNamespace Outside { get; }
    public LabContainer A1 { get; }
    public LabContainer A2 { get; }
    public LabContainer B1 { get; }
    public LabContainer I1 { get; }
    public LabContainer I2 { get; }
    public LabContainer D1 { get; }

    public NetworkFirewall NetworkA { get; } = new("skbr-a000000001", [IPNetwork.Parse("10.201.1.0/24"), IPNetwork.Parse("fd00:201:1::/64")], Internal: false);
    public NetworkFirewall NetworkB { get; } = new("skbr-b000000002", [IPNetwork.Parse("10.201.2.0/24")], Internal: false);
    public NetworkFirewall NetworkI { get; } = new("skbr-c000000003", [IPNetwork.Parse("10.201.3.0/24")], Internal: true);

    public FirewallLabBackend Backend { get; }

    public FirewallLab(FirewallLabBackend backend)
    {
        Backend = backend;
        try
        {
            Host = Track(FirewallScratchNamespace.Create("h"));
            Outside = Track(FirewallScratchNamespace.Create("o"));
            SetUpHost();
            A1 = AddContainer("a1", NetworkA.BridgeName, "10.201.1.2", "fd00:201:1::2");
            A2 = AddContainer("a2", NetworkA.BridgeName, "10.201.1.3", "fd00:201:1::3");
            B1 = AddContainer("b1", NetworkB.BridgeName, "10.201.2.2", null);
            I1 = AddContainer("i1", NetworkI.BridgeName, "10.201.3.2", null);
            I2 = AddContainer("i2", NetworkI.BridgeName, "10.201.3.3", null);
            D1 = AddContainer("d1", "docker0", "10.201.9.2", null);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>A firewall that programs the lab's host namespace.</summary>
    public IptablesFirewall NewFirewall(Action<string>? log = null) => new(Options(log));

    public IptablesOptions Options(Action<string>? log = null, bool publishOnLoopback = false) => new()
    {
        PublishOnLoopback = publishOnLoopback,
        CommandPrefix = ["nsenter", $"--net={Host.Path}"],
        Log = log,
        ReadSysctl = Host.Sysctl,
        IptablesCommand = Backend.Iptables,
        Ip6tablesCommand = Backend.Ip6tables,
        IptablesRestoreCommand = Backend.IptablesRestore,
        Ip6tablesRestoreCommand = Backend.Ip6tablesRestore,
    };

    /// <summary>Rules of a table in the lab host, as iptables lists them.</summary>
    public string Rules(string table = "filter", bool ipv6 = false) =>
        Host.MustExec(ipv6 ? Backend.Ip6tables : Backend.Iptables, "-w", "-t", table, "-S");

    /// <summary>Runs the lab backend's iptables inside the lab host.</summary>
    public string Iptables(params string[] args) => Host.MustExec([Backend.Iptables, "-w", .. args]);

    public string Ip6tables(params string[] args) => Host.MustExec([Backend.Ip6tables, "-w", .. args]);

    public string AllRules() => Rules("filter") + Rules("nat") + Rules("filter", ipv6: true);

    private void SetUpHost()
    {
        var h = Host;
        // dockerd's filter table: FORWARD policy DROP and DOCKER-USER first (in this namespace only).
        foreach (var tool in new[] { Backend.Iptables, Backend.Ip6tables })
        {
            h.MustExec(tool, "-w", "-P", "FORWARD", "DROP");
            h.MustExec(tool, "-w", "-N", "DOCKER-USER");
            h.MustExec(tool, "-w", "-A", "DOCKER-USER", "-j", "RETURN");
            h.MustExec(tool, "-w", "-A", "FORWARD", "-j", "DOCKER-USER");
        }
        // What Docker adds for its own bridge: its containers may leave it.
        Iptables("-A", "FORWARD", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT");
        h.MustExec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1");
        if (h.Sysctl("net.bridge.bridge-nf-call-iptables") != "1")
            h.MustExec("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1", "net.bridge.bridge-nf-call-ip6tables=1");

        h.Ip("link", "add", "hout", "type", "veth", "peer", "name", "eth0", "netns", Outside.Name);
        h.Ip("addr", "add", $"{HostOutside}/24", "dev", "hout");
        h.Ip("addr", "add", $"{HostOutsideSecond}/24", "dev", "hout");
        h.Ip("link", "set", "hout", "up");
        Outside.Ip("addr", "add", $"{OutsideAddress}/24", "dev", "eth0");
        Outside.Ip("addr", "add", $"{OutsideStranger}/24", "dev", "eth0");
        Outside.Ip("link", "set", "eth0", "up");
        Outside.Ip("route", "add", "10.201.0.0/16", "via", HostOutside.ToString());

        AddBridge(NetworkA.BridgeName, "10.201.1.1/24", "fd00:201:1::1/64");
        AddBridge(NetworkB.BridgeName, "10.201.2.1/24", null);
        AddBridge(NetworkI.BridgeName, "10.201.3.1/24", null);
        AddBridge("docker0", "10.201.9.1/24", null);
    }

    private void AddBridge(string name, string ipv4, string? ipv6)
    {
        // A fixed MAC, as skein's driver gives its bridges: otherwise the bridge takes the lowest port MAC, which
        // changes as containers come and go and leaves the others' ARP entry for their gateway stale.
        var mac = "02:" + string.Join(':', Guid.NewGuid().ToByteArray().Take(5).Select(b => b.ToString("x2")));
        Host.Ip("link", "add", name, "address", mac, "type", "bridge");
        Host.Ip("addr", "add", ipv4, "dev", name);
        if (ipv6 is not null) Host.Ip("addr", "add", ipv6, "dev", name, "nodad");
        Host.Ip("link", "set", name, "up");
    }

    /// <summary>Another container on a bridge for one test; disposing its namespace removes its veth too.</summary>
    public LabContainer AddTemporaryContainer(string role, string bridge, string ipv4) => AddContainer(role, bridge, ipv4, null);

    private LabContainer AddContainer(string role, string bridge, string ipv4, string? ipv6)
    {
        var ns = Track(FirewallScratchNamespace.Create(role));
        var hostVeth = "skv" + Guid.NewGuid().ToString("N")[..12];
        Host.Ip("link", "add", hostVeth, "type", "veth", "peer", "name", "eth0", "netns", ns.Name);
        Host.Ip("link", "set", hostVeth, "master", bridge, "up");
        // As skein's driver (and Docker without userland proxy) does: br_netfilter bridges a DNAT'd frame back
        // out of the port it came in on when a container reaches its own published port; that needs hairpin.
        Host.Ip("link", "set", hostVeth, "type", "bridge_slave", "hairpin", "on");
        var prefix = ipv4[..ipv4.LastIndexOf('.')];
        ns.Ip("addr", "add", $"{ipv4}/24", "dev", "eth0");
        ns.Ip("link", "set", "eth0", "up");
        ns.Ip("route", "add", "default", "via", $"{prefix}.1");
        if (ipv6 is not null)
        {
            ns.Ip("addr", "add", $"{ipv6}/64", "dev", "eth0", "nodad");
            ns.Ip("-6", "route", "add", "default", "via", ipv6[..ipv6.LastIndexOf(':')] + ":1");
        }
        return new LabContainer(ns, hostVeth, IPAddress.Parse(ipv4), ipv6 is null ? null : IPAddress.Parse(ipv6));
    }

    private FirewallScratchNamespace Track(FirewallScratchNamespace ns)
    {
        _namespaces.Add(ns);
        return ns;
    }

    /// <summary>Deleting the namespaces deletes every link and every rule the tests made: they all live inside.</summary>
    public void Dispose()
    {
        foreach (var ns in Enumerable.Reverse(_namespaces)) ns.Dispose();
        _namespaces.Clear();
    }
}
