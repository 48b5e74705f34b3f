using System.Net;
using System.Net.NetworkInformation;
using Skein.Driver.Netlink;
using Skein.Driver.Overlay.Dataplane;
using Skein.Ipam;

namespace Skein.Driver.Tests.Overlay.Dataplane;

/// <summary>What a peer view turns into before the kernel is touched, and the checks on a device record (no root needed).</summary>
public class DesiredPeerStateTests
{
    private static readonly OverlayDevice Device = new("skbr-0123456789", "skx-0123456789a", 4242, IPAddress.Parse("198.18.99.1"), 4789, 1450);

    private static PhysicalAddress Mac(string text) => PhysicalAddress.Parse(text);
    private static IPAddress Ip(string text) => IPAddress.Parse(text);

    [Fact]
    public void A_view_becomes_flood_destinations_unicast_entries_and_neighbours()
    {
        var view = new PeerView(
            [Ip("198.18.99.2"), Ip("198.18.99.3")],
            [
                new RemoteEndpoint(Mac("02-00-00-00-00-02"), Ip("10.77.0.2"), Ip("fd77::2"), Ip("198.18.99.2")),
                new RemoteEndpoint(Mac("02-00-00-00-00-03"), Ip("10.77.0.3"), null, Ip("198.18.99.3")),
                new RemoteEndpoint(Mac("02-00-00-00-00-04"), null, Ip("fd77::4"), Ip("198.18.99.3")),
            ]);

        var state = DesiredPeerState.From(Device, view);

        Assert.Equal([Ip("198.18.99.2"), Ip("198.18.99.3")], state.FloodVteps.OrderBy(a => a.ToString()));
        Assert.Equal(3, state.UnicastVteps.Count);
        Assert.Equal(Ip("198.18.99.3"), state.UnicastVteps[Mac("02-00-00-00-00-04")]);
        Assert.Equal(4, state.Neighbors.Count);
        Assert.Equal(Mac("02-00-00-00-00-02"), state.Neighbors[Ip("fd77::2")]);
        Assert.Empty(state.Skipped);
    }

    [Fact]
    public void Repeated_identical_entries_are_one_entry()
    {
        var endpoint = new RemoteEndpoint(Mac("02-00-00-00-00-02"), Ip("10.77.0.2"), null, Ip("198.18.99.2"));
        var state = DesiredPeerState.From(Device, new PeerView([Ip("198.18.99.2"), Ip("198.18.99.2")], [endpoint, endpoint with { }]));
        Assert.Single(state.FloodVteps);
        Assert.Single(state.UnicastVteps);
        Assert.Single(state.Neighbors);
        Assert.Empty(state.Skipped);
    }

    [Fact]
    public void The_local_VTEP_and_wrong_family_VTEPs_are_skipped_with_a_reason()
    {
        var view = new PeerView(
            [Ip("198.18.99.1"), Ip("2001:db8::2"), Ip("239.1.1.1"), Ip("198.18.99.2")],
            [
                new RemoteEndpoint(Mac("02-00-00-00-00-01"), Ip("10.77.0.9"), null, Ip("198.18.99.1")),
                new RemoteEndpoint(Mac("02-00-00-00-00-05"), Ip("10.77.0.5"), null, Ip("2001:db8::5")),
            ]);

        var state = DesiredPeerState.From(Device, view);

        Assert.Equal([Ip("198.18.99.2")], state.FloodVteps);
        Assert.Empty(state.UnicastVteps);
        Assert.Empty(state.Neighbors);
        Assert.Equal(5, state.Skipped.Count);
        Assert.Contains(state.Skipped, s => s.Contains("198.18.99.1") && s.Contains("local VTEP"));
        Assert.Contains(state.Skipped, s => s.Contains("2001:db8::2") && s.Contains("IPv6"));
        Assert.Contains(state.Skipped, s => s.Contains("239.1.1.1") && s.Contains("unicast"));
        Assert.Contains(state.Skipped, s => s.Contains("02:00:00:00:00:05") && s.Contains("2001:db8::5"));
    }

    [Fact]
    public void Bad_endpoint_fields_are_skipped_naming_what_is_wrong()
    {
        var vtep = Ip("198.18.99.2");
        var view = new PeerView([vtep],
        [
            new RemoteEndpoint(Mac("01-00-5E-00-00-01"), Ip("10.77.0.2"), null, vtep),
            new RemoteEndpoint(Mac("00-00-00-00-00-00"), Ip("10.77.0.3"), null, vtep),
            new RemoteEndpoint(Mac("02-00-00-00-00-04"), Ip("fd77::4"), null, vtep),
            new RemoteEndpoint(Mac("02-00-00-00-00-05"), null, Ip("10.77.0.5"), vtep),
            new RemoteEndpoint(Mac("02-00-00-00-00-06"), Ip("10.77.0.6"), null, vtep),
        ]);

        var state = DesiredPeerState.From(Device, view);

        Assert.Equal([Mac("02-00-00-00-00-06")], state.UnicastVteps.Keys);
        Assert.Equal(4, state.Skipped.Count);
        Assert.Equal(2, state.Skipped.Count(s => s.Contains("not a unicast address")));
        Assert.Contains(state.Skipped, s => s.Contains("IPv4 address fd77::4 is not IPv4"));
        Assert.Contains(state.Skipped, s => s.Contains("IPv6 address 10.77.0.5 is not IPv6"));
    }

    [Fact]
    public void A_MAC_behind_two_VTEPs_is_left_out_entirely()
    {
        var view = new PeerView([Ip("198.18.99.2"), Ip("198.18.99.3")],
        [
            new RemoteEndpoint(Mac("02-00-00-00-00-02"), Ip("10.77.0.2"), null, Ip("198.18.99.2")),
            new RemoteEndpoint(Mac("02-00-00-00-00-02"), Ip("10.77.0.3"), null, Ip("198.18.99.3")),
            new RemoteEndpoint(Mac("02-00-00-00-00-04"), Ip("10.77.0.4"), null, Ip("198.18.99.3")),
        ]);

        var state = DesiredPeerState.From(Device, view);

        Assert.Equal([Mac("02-00-00-00-00-04")], state.UnicastVteps.Keys);
        Assert.Equal([Ip("10.77.0.4")], state.Neighbors.Keys);
        var reason = Assert.Single(state.Skipped);
        Assert.Contains("02:00:00:00:00:02", reason);
        Assert.Contains("198.18.99.2, 198.18.99.3", reason);
    }

    [Fact]
    public void An_address_claimed_by_two_MACs_gets_no_neighbour_entry_but_both_MACs_stay_reachable()
    {
        var view = new PeerView([Ip("198.18.99.2")],
        [
            new RemoteEndpoint(Mac("02-00-00-00-00-02"), Ip("10.77.0.2"), Ip("fd77::2"), Ip("198.18.99.2")),
            new RemoteEndpoint(Mac("02-00-00-00-00-03"), Ip("10.77.0.2"), null, Ip("198.18.99.2")),
        ]);

        var state = DesiredPeerState.From(Device, view);

        Assert.Equal(2, state.UnicastVteps.Count);
        Assert.Equal([Ip("fd77::2")], state.Neighbors.Keys);
        Assert.Contains("10.77.0.2", Assert.Single(state.Skipped));
    }

    [Fact]
    public void A_null_view_is_refused()
    {
        Assert.Throws<ArgumentNullException>(() => DesiredPeerState.From(Device, null!));
        Assert.Throws<ArgumentNullException>(() => DesiredPeerState.From(Device, new PeerView(null!, [])));
    }

    [Theory]
    [InlineData("", "skx-0123456789a", 42, "198.18.99.1", 4789, 1450, "bridge name")]
    [InlineData("skbr-0123456789", "skx-0123456789abcdef", 42, "198.18.99.1", 4789, 1450, "longer than 15 bytes")]
    [InlineData("skbr-0123456789", "skx-0123456789a", 0, "198.18.99.1", 4789, 1450, "VNI 0")]
    [InlineData("skbr-0123456789", "skx-0123456789a", 16777216, "198.18.99.1", 4789, 1450, "VNI 16777216")]
    [InlineData("skbr-0123456789", "skx-0123456789a", 42, "198.18.99.1", 0, 1450, "port")]
    [InlineData("skbr-0123456789", "skx-0123456789a", 42, "198.18.99.1", 4789, 67, "MTU 67")]
    [InlineData("skbr-0123456789", "skx-0123456789a", 42, "0.0.0.0", 4789, 1450, "unicast")]
    [InlineData("skbr-0123456789", "skx-0123456789a", 42, "239.0.0.1", 4789, 1450, "unicast")]
    [InlineData("skbr-0123456789", "skx-0123456789a", 42, "::ffff:198.18.99.1", 4789, 1450, "IPv4-mapped")]
    public void A_bad_device_record_is_refused_naming_the_field(string bridge, string vxlan, int vni, string vtep, int port, int mtu, string expected)
    {
        var device = new OverlayDevice(bridge, vxlan, vni, IPAddress.Parse(vtep), (ushort)port, mtu);
        var ex = Assert.Throws<SkeinException>(() => OverlayDataplane.Validate(device));
        Assert.Equal(ErrorKind.Invalid, ex.Kind);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void The_VXLAN_settings_follow_the_underlay_family()
    {
        var v4 = OverlayDataplane.Spec(Device, 7);
        Assert.Equal((false, (bool?)false, (bool?)null, 7, 1450, (ushort)4789), (v4.Learning, v4.UdpChecksum, v4.UdpZeroChecksum6Tx, v4.MasterIndex!.Value, v4.Mtu!.Value, v4.Port));
        Assert.Null(v4.Group);
        var v6 = OverlayDataplane.Spec(Device with { LocalVtep = IPAddress.Parse("2001:db8::1") }, 7);
        Assert.Equal(((bool?)null, (bool?)false, (bool?)false), (v6.UdpChecksum, v6.UdpZeroChecksum6Tx, v6.UdpZeroChecksum6Rx));
    }

    [Fact]
    public void A_kept_link_must_match_VNI_port_local_address_and_learning()
    {
        Link Reported(VxlanSpec spec) => new(9, spec.Name, "vxlan", 1450, null, 3, true, spec);
        var good = OverlayDataplane.Spec(Device, 3);
        Assert.Null(OverlayDataplane.Mismatch(Reported(good), Device));
        Assert.Contains("VNI is 7", OverlayDataplane.Mismatch(Reported(good with { Vni = 7 }), Device));
        Assert.Contains("UDP port is 8472", OverlayDataplane.Mismatch(Reported(good with { Port = 8472 }), Device));
        Assert.Contains("local address is 198.18.99.9", OverlayDataplane.Mismatch(Reported(good with { Local = IPAddress.Parse("198.18.99.9") }), Device));
        Assert.Contains("learning", OverlayDataplane.Mismatch(Reported(good with { Learning = true }), Device));
        Assert.Contains("group", OverlayDataplane.Mismatch(Reported(good with { Group = IPAddress.Parse("239.1.1.1") }), Device));
        Assert.Contains("checksums", OverlayDataplane.Mismatch(Reported(good with { UdpChecksum = true }), Device));
        // MTU, master and state are repaired in place, not by recreating.
        Assert.Null(OverlayDataplane.Mismatch(new Link(9, good.Name, "vxlan", 1300, null, null, false, good), Device));
    }

    [Fact]
    public void Vxlan_names_are_15_bytes_stable_distinct_and_recognised()
    {
        string a = OverlayNames.Vxlan(new string('a', 64));
        Assert.Equal(15, a.Length);
        Assert.StartsWith("skx-", a);
        Assert.Equal(a, OverlayNames.Vxlan(new string('a', 64)));
        Assert.NotEqual(a, OverlayNames.Vxlan("blue"));
        Assert.True(OverlayNames.IsVxlan(a));
        Assert.False(OverlayNames.IsVxlan("skx-0123"));
        Assert.False(OverlayNames.IsVxlan("skbr-0123456789"));
        Assert.False(OverlayNames.IsVxlan("skx-0123456789G"));
        Assert.Throws<ArgumentException>(() => OverlayNames.Vxlan(""));
    }
}
