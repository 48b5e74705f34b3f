using System.Net;
using System.Net.NetworkInformation;
using Microsoft.Extensions.Logging.Abstractions;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Overlay.Dataplane;
using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Overlay.Dataplane;

/// <summary>
/// Two "hosts" (namespaces) joined by an underlay veth, each with a plain bridge that carries the same gateway
/// (10.77.0.1/24, fd77::1/64 nodad) and one "container" namespace whose eth0 sits on that bridge. The overlay
/// itself is left to <see cref="OverlayDataplane"/>. Everything lives in namespaces the lab made and goes with
/// them on Dispose, also when construction fails half-way.
/// </summary>
internal sealed class OverlayLab : IDisposable
{
    public const int Vni = 4242;
    public const ushort Port = 4799;
    public const string Bridge = "br0";
    public static readonly string Vxlan = OverlayNames.Vxlan("overlay-lab");

    public sealed class Host(string name, string underlay, string bridgeMac, string containerMac, string containerV4, string containerV6)
    {
        public string Name { get; } = name;
        public IPAddress Underlay { get; set; } = IPAddress.Parse(underlay);
        public string BridgeMac { get; } = bridgeMac;
        public PhysicalAddress ContainerMac { get; } = PhysicalAddress.Parse(containerMac.Replace(':', '-').ToUpperInvariant());
        public string ContainerMacText { get; } = containerMac;
        public IPAddress ContainerV4 { get; } = IPAddress.Parse(containerV4);
        public IPAddress ContainerV6 { get; } = IPAddress.Parse(containerV6);
        public NetNs Ns { get; set; } = null!;
        public NetNs Container { get; set; } = null!;
        public RtNetlinkKernel Kernel { get; set; } = null!;
        public OverlayDataplane Dataplane { get; set; } = null!;
        public OverlayDevice Device { get; set; } = null!;

        /// <summary>What the other host should be told about this one.</summary>
        public RemoteEndpoint AsRemote => new(ContainerMac, ContainerV4, ContainerV6, Underlay);

        public PeerView View => new([Underlay], [AsRemote]);
    }

    private readonly List<IDisposable> _owned = [];

    public Host A { get; } = new("A", "198.18.99.1", "02:77:aa:00:00:01", "02:77:00:00:00:02", "10.77.0.2", "fd77::2");
    public Host B { get; } = new("B", "198.18.99.2", "02:77:bb:00:00:01", "02:77:00:00:00:03", "10.77.0.3", "fd77::3");

    /// <param name="ipv6Underlay">Join the hosts over IPv6 (2001:db8:99::1 and ::2) instead of IPv4.</param>
    public OverlayLab(bool ipv6Underlay = false)
    {
        if (ipv6Underlay)
        {
            A.Underlay = IPAddress.Parse("2001:db8:99::1");
            B.Underlay = IPAddress.Parse("2001:db8:99::2");
        }
        try
        {
            foreach (var host in new[] { A, B })
            {
                host.Ns = Own(NetNs.Create());
                host.Container = Own(NetNs.Create());
                host.Kernel = Own(new RtNetlinkKernel(RtNetlink.OpenNamespace(host.Ns.Path)));
                host.Dataplane = new OverlayDataplane(host.Kernel, NullLogger.Instance);
            }
            using (var net = RtNetlink.OpenNamespace(A.Ns.Path))
            using (var bFd = B.Ns.Open())
                net.AddLink(new VethSpec("ul0", "ul0") { PeerNamespaceFd = (int)bFd.DangerousGetHandle() });
            foreach (var host in new[] { A, B })
            {
                BuildHost(host);
                host.Device = new OverlayDevice(Bridge, Vxlan, Vni, host.Underlay, Port, OverlayDataplane.DefaultMtu(host.Kernel, host.Underlay));
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private T Own<T>(T disposable) where T : IDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    private static void BuildHost(Host host)
    {
        using var net = RtNetlink.OpenNamespace(host.Ns.Path);
        int underlay = net.GetLink("ul0")!.Index;
        if (host.Underlay.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)
            net.AddAddress(underlay, new IpPrefix(host.Underlay, 64), AddressFlags.NoDad);
        else
            net.AddAddress(underlay, new IpPrefix(host.Underlay, 24));
        net.SetLinkUp(underlay);

        net.AddLink(new BridgeSpec(Bridge) { Mtu = 1450, MacAddress = Mac(host.BridgeMac) });
        int bridge = net.GetLink(Bridge)!.Index;
        net.AddAddress(bridge, IpPrefix.Parse("10.77.0.1/24"));
        net.AddAddress(bridge, IpPrefix.Parse("fd77::1/64"), AddressFlags.NoDad);
        net.SetLinkUp(bridge);

        net.AddLink(new VethSpec("vc0", "ce0") { Mtu = 1450, PeerMtu = 1450, MasterIndex = bridge, Up = true });
        using (var containerFd = host.Container.Open())
            net.MoveToNamespace(net.GetLink("ce0")!.Index, (int)containerFd.DangerousGetHandle());
        using var container = RtNetlink.OpenNamespace(host.Container.Path);
        int eth = container.GetLink("ce0")!.Index;
        container.Rename(eth, "eth0");
        container.SetMacAddress(eth, host.ContainerMac);
        container.AddAddress(eth, new IpPrefix(host.ContainerV4, 24));
        container.AddAddress(eth, new IpPrefix(host.ContainerV6, 64), AddressFlags.NoDad);
        container.SetLinkUp(eth);
    }

    public static PhysicalAddress Mac(string text) => PhysicalAddress.Parse(text.Replace(':', '-').ToUpperInvariant());

    /// <summary>Echoes from <paramref name="from"/>'s container; true when a reply came back.</summary>
    public static bool Ping(Host from, IPAddress to, int count = 1) => Ping(from, to, count, waitSeconds: 2);

    /// <summary>True when one echo got no reply within a second (for what must not be reachable).</summary>
    public static bool Unreachable(Host from, IPAddress to) => !Ping(from, to, 1, waitSeconds: 1);

    private static bool Ping(Host from, IPAddress to, int count, int waitSeconds)
    {
        var args = new List<string> { "ping" };
        if (to.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6) args.Add("-6");
        args.AddRange(["-c", count.ToString(System.Globalization.CultureInfo.InvariantCulture), "-i", "0.2", "-W", waitSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), to.ToString()]);
        return from.Container.TryExec([.. args]).ExitCode == 0;
    }

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
        {
            try
            {
                _owned[i].Dispose();
            }
            catch
            {
                // Best effort: the namespaces (and every link in them) go regardless.
            }
        }
        _owned.Clear();
    }
}
