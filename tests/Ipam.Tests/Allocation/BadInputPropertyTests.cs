using System.Text;
using System.Text.Json;
using CsCheck;
using Skein.Ipam.Allocation;
using Skein.Ipam.Protocol;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>
/// Thousands of generated request bodies (garbage bytes, broken JSON, wrong types, bad CIDRs,
/// unknown or malformed PoolIDs, hostile names, and some valid calls) go through the parser and
/// the service as the plugin host would send them. Nothing may crash; every refusal is a
/// SkeinException with a short one-line message; and a refused call leaves the store exactly as it was.
/// </summary>
public sealed class BadInputPropertyTests
{
    private static readonly string[] FieldNames =
        ["AddressSpace", "Pool", "SubPool", "Options", "V6", "PoolID", "Address", "addressspace", "POOL", "poolid", "Unknown", ""];

    private static readonly string[] Strings =
    [
        "", "LocalDefault", "GlobalDefault", "rec-local", "Local Default", "../etc", "a/b", new string('x', 80),
        "10.30.0.0/24", "10.30.0.0/16", "10.30.0.128/25", "10.30.1.0/24", "10.31.0.0/24", "0.0.0.0/24", "0.0.0.0/0", "::/56",
        "fd30::/64", "10.30.0.1/24", "10.30.0.0/33", "10.30.0/24", "010.30.0.0/24", "fd30::/129", "fe80::1%eth0/64",
        "10.30.0.5", "10.30.0.200", "10.30.0.0", "10.30.0.255", "10.31.0.1", "999.1.1.1", "fd30::5", "1", "\u0000\u001b[31m",
        "LocalDefault/10.30.0.0/24", "LocalDefault/10.30.0.0/24/10.30.0.128/25", "LocalDefault/10.30.0.0/24/",
        "LocalDefault/10.30.0.0/24/10.30.0.0/25", "LocalDefault/10.99.0.0/16", "LocalDefault/10.30.0.1/24", "x/y/z",
        "LocalDefault/fd30::/64", "LocalDefault/10.30.0.0/24/10.40.0.0/24", "/10.30.0.0/24",
    ];

    private static readonly Gen<string> GenString = Gen.OneOf(
        Gen.OneOf(Strings),
        Gen.Char["0123456789abcdef.:/-%LocalDefault "].Array[0, 24].Select(chars => new string(chars)));

    private static readonly Gen<string> GenMac = Gen.OneOf(
        Gen.Byte.Array[6].Select(b => string.Join(':', b.Select(x => x.ToString("x2")))),
        Gen.OneOf("02:42:ac:11:00:02", "zz:zz:zz:zz:zz:zz", "02:42:ac:11:00", "", "02-42-AC-11-00-03"));

    private static readonly Gen<string> GenOptions = Gen.OneOf(
        Gen.Const("null"), Gen.Const("{}"), Gen.Const("[]"), Gen.Const("[1]"), Gen.Const("\"a=b\""), Gen.Const("{\"a\":1}"),
        Gen.Const("{\"RequestAddressType\":\"com.docker.network.gateway\"}"),
        GenMac.Select(mac => $"{{\"com.docker.network.endpoint.macaddress\":{JsonSerializer.Serialize(mac)}}}"),
        Gen.OneOf("blue", "BLUE", "a b", "", "net-1", new string('n', 70)).Select(name => $"{{\"skein.network\":{JsonSerializer.Serialize(name)}}}"));

    private static readonly Gen<string> GenValue = Gen.Frequency(
        (6, GenString.Select(s => JsonSerializer.Serialize(s))),
        (2, GenOptions),
        (1, Gen.OneOf("true", "false", "null", "0", "-1.5e3", "[]", "{}", "[\"x\"]", "{\"x\":{\"y\":[]}}")));

    private static readonly Gen<string> GenObject =
        Gen.Select(Gen.OneOf(FieldNames), GenValue).Array[0, 6]
            .Select(fields => "{" + string.Join(",", fields.Select(f => $"{JsonSerializer.Serialize(f.Item1)}:{f.Item2}")) + "}");

    private static readonly Gen<byte[]> GenBody = Gen.Frequency(
        (6, GenObject.Select(Encoding.UTF8.GetBytes)),
        (1, Gen.Byte.Array[0, 40]),
        (1, Gen.Char["{}[]\":,0123456789abcdefnultrsPoolID .:/-\\"].Array[0, 40].Select(c => Encoding.UTF8.GetBytes(new string(c)))),
        (1, GenObject.Select(o => Encoding.UTF8.GetBytes(o.Length > 2 ? o[..^1] : o))));

    [Fact]
    public async Task Generated_bodies_never_crash_and_refusals_change_nothing()
    {
        await using var env = await IpamTestEnvironment.CreateAsync();
        var ipam = env.NewService();
        string id = await ipam.PoolAsync("10.30.0.0/24", "10.30.0.128/25");
        await ipam.GatewayAsync(id);
        await ipam.AuxAsync(id, "10.30.0.5");
        await ipam.EndpointAsync(id, "02:42:ac:11:00:02");
        int refused = 0, accepted = 0;

        await Gen.Select(Gen.Int[0, 3], GenBody).SampleAsync(async (call, body) =>
        {
            string before = await env.SnapshotAsync();
            try
            {
                switch (call)
                {
                    case 0: await ipam.RequestPoolAsync(IpamRequestParser.ParseRequestPool(body), CancellationToken.None); break;
                    case 1: await ipam.ReleasePoolAsync(IpamRequestParser.ParseReleasePool(body), CancellationToken.None); break;
                    case 2: await ipam.RequestAddressAsync(IpamRequestParser.ParseRequestAddress(body), CancellationToken.None); break;
                    default: await ipam.ReleaseAddressAsync(IpamRequestParser.ParseReleaseAddress(body), CancellationToken.None); break;
                }
                accepted++;
            }
            catch (SkeinException e)
            {
                refused++;
                Assert.True(e.Kind is ErrorKind.Invalid or ErrorKind.NotFound or ErrorKind.Conflict, $"{e.Kind}: {e.Message}");
                Assert.False(string.IsNullOrWhiteSpace(e.Message));
                Assert.True(e.Message.Length < 400, e.Message);
                Assert.DoesNotContain('\n', e.Message);
                Assert.DoesNotContain("\u001b", e.Message);
                Assert.False(e.Message.StartsWith("IpamDriver.", StringComparison.Ordinal), "the engine prefixes the call name itself: " + e.Message);
                Assert.Equal(before, await env.SnapshotAsync());
            }
        }, iter: 4000, threads: 1);

        Assert.True(refused > 2000, $"only {refused} refusals");
        Assert.True(accepted > 0, "no generated body was a valid call");
    }
}
