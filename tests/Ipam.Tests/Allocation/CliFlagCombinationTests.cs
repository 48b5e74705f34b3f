using System.Net;
using Skein.Ipam.Addressing;
using Skein.Ipam.Allocation;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>
/// Every combination of the IPAM-facing flags of plugin-protocol §3.7 (--subnet, --ip-range,
/// --gateway, --aux-address, --ipam-opt, --ipv6, --ip/--ip6, --mac-address), driven through the
/// calls the engine makes for `network create`, two `run`s and `network rm`, in its order.
/// </summary>
public sealed class CliFlagCombinationTests
{
    public static IEnumerable<object[]> Combinations()
    {
        foreach (bool subnet in new[] { false, true })
        foreach (bool ipRange in new[] { false, true })
        foreach (bool gateway in new[] { false, true })
        foreach (bool aux in new[] { false, true })
        foreach (bool ipamOpt in new[] { false, true })
        foreach (bool ipv6 in new[] { false, true })
        foreach (bool staticIp in new[] { false, true })
        {
            // The engine accepts --ip-range, --gateway, --aux-address and --ip only with --subnet.
            if (!subnet && (ipRange || gateway || aux || staticIp))
                continue;
            yield return [subnet, ipRange, gateway, aux, ipamOpt, ipv6, staticIp];
        }
    }

    private sealed record Family(string PoolId, IpPrefix Pool, IpPrefix Window, string? Gateway, string? Aux, string? Static);

    [Theory]
    [MemberData(nameof(Combinations))]
    public async Task Network_lifecycle_with_flags(bool subnet, bool ipRange, bool gateway, bool aux, bool ipamOpt, bool ipv6, bool staticIp)
    {
        await using var env = await IpamTestEnvironment.CreateAsync();
        var ipam = env.NewService();
        string? name = ipamOpt ? "net-x" : null;
        var families = new List<Family>();

        // docker network create
        foreach (bool v6 in ipv6 ? new[] { false, true } : [false])
        {
            string pool = !subnet ? "" : v6 ? "fd10::/64" : "10.10.0.0/16";
            string range = !ipRange ? "" : v6 ? "fd10::100/120" : "10.10.5.0/24";
            string poolId = await ipam.PoolAsync(pool, range, v6, name: name);
            var id = PoolId.Parse(poolId);
            if (subnet)
                Assert.Equal(pool, id.Pool.ToString());
            Assert.Equal(v6, id.Pool.IsV6);
            string? gw = gateway ? (v6 ? "fd10::fe" : "10.10.0.254") : null;
            string granted = await ipam.GatewayAsync(poolId, gw ?? "");
            if (gw is not null)
                Assert.Equal($"{gw}/{id.Pool.Length}", granted);
            else
                Assert.Equal(ipRange ? id.Window.Network : id.Pool.AddressAt(1), IPAddress.Parse(granted.Split('/')[0]));
            string? auxAddress = aux ? (v6 ? "fd10::10" : "10.10.0.10") : null;
            if (auxAddress is not null)
                Assert.Equal($"{auxAddress}/{id.Pool.Length}", await ipam.AuxAsync(poolId, auxAddress));
            string? staticAddress = staticIp ? (v6 ? "fd10::1:5" : "10.10.1.77") : null;
            families.Add(new Family(poolId, id.Pool, id.Window, granted.Split('/')[0], auxAddress, staticAddress));
        }

        // docker run --ip/--ip6 --mac-address ..., then a plain docker run
        var granted2 = new List<(string PoolId, string Address)>();
        for (int container = 0; container < 2; container++)
        {
            string mac = IpamCalls.Mac(0x100 + container);
            foreach (var family in families)
            {
                string? wanted = container == 0 ? family.Static : null;
                string address = (await ipam.EndpointAsync(family.PoolId, mac, wanted ?? "")).Split('/')[0];
                var ip = IPAddress.Parse(address);
                if (wanted is not null)
                    Assert.Equal(wanted, address);
                else
                    Assert.True(family.Window.Contains(ip), $"{address} outside {family.Window}");
                Assert.NotEqual(family.Gateway, address);
                Assert.NotEqual(family.Aux, address);
                Assert.NotEqual(family.Pool.Network, ip);
                granted2.Add((family.PoolId, address));
                // A retried call (same MAC) answers the same address.
                Assert.Equal(address, (await ipam.EndpointAsync(family.PoolId, mac, wanted ?? "")).Split('/')[0]);
            }
        }
        Assert.Equal(granted2.Count, granted2.Select(g => g.Address).Distinct().Count());

        // docker rm -f; docker network rm
        foreach (var (poolId, address) in granted2)
            await ipam.ReleaseAsync(poolId, address);
        foreach (var family in families)
        {
            await ipam.ReleaseAsync(family.PoolId, family.Gateway!);
            if (family.Aux is not null)
                await ipam.ReleaseAsync(family.PoolId, family.Aux);
            await ipam.ReleasePoolAsync(family.PoolId);
        }
        Assert.Empty(await env.KeysAsync());
    }
}
