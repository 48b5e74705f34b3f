using Skein.Ipam.Allocation;
using Skein.Ipam.Protocol;

namespace Skein.Ipam.Tests.TestSupport;

/// <summary>The engine's IPAM calls, shaped as the engine sends them (plugin-protocol §3).</summary>
public static class IpamCalls
{
    public static async Task<string> PoolAsync(this IpamService ipam, string pool = "", string subPool = "", bool v6 = false,
        string space = "LocalDefault", string? name = null)
    {
        var options = name is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["skein.network"] = name };
        var response = await ipam.RequestPoolAsync(new RequestPoolRequest
        {
            AddressSpace = space, Pool = pool, SubPool = subPool, Options = options, V6 = v6,
        }, CancellationToken.None);
        Assert.Empty(response.Data);
        return response.PoolID;
    }

    public static async Task<string> GatewayAsync(this IpamService ipam, string poolId, string address = "") =>
        (await ipam.RequestAddressAsync(new RequestAddressRequest
        {
            PoolID = poolId, Address = address,
            Options = new() { [IpamLabels.RequestAddressType] = IpamLabels.GatewayRequest },
        }, CancellationToken.None)).Address;

    public static async Task<string> AuxAsync(this IpamService ipam, string poolId, string address) =>
        (await ipam.RequestAddressAsync(new RequestAddressRequest { PoolID = poolId, Address = address, Options = null }, CancellationToken.None)).Address;

    public static async Task<string> EndpointAsync(this IpamService ipam, string poolId, string mac, string address = "") =>
        (await ipam.RequestAddressAsync(new RequestAddressRequest
        {
            PoolID = poolId, Address = address, Options = new() { [IpamLabels.MacAddress] = mac },
        }, CancellationToken.None)).Address;

    public static Task ReleaseAsync(this IpamService ipam, string poolId, string address) =>
        ipam.ReleaseAddressAsync(new ReleaseAddressRequest { PoolID = poolId, Address = address.Split('/')[0] }, CancellationToken.None);

    public static Task ReleasePoolAsync(this IpamService ipam, string poolId) =>
        ipam.ReleasePoolAsync(new ReleasePoolRequest { PoolID = poolId }, CancellationToken.None);

    public static string Mac(int n) => $"02:42:{(n >> 24) & 0xff:x2}:{(n >> 16) & 0xff:x2}:{(n >> 8) & 0xff:x2}:{n & 0xff:x2}";

    public static async Task<SkeinException> FailsAsync(Func<Task> call, ErrorKind kind, string text)
    {
        var error = await Assert.ThrowsAsync<SkeinException>(call);
        Assert.Equal(kind, error.Kind);
        Assert.Contains(text, error.Message);
        return error;
    }
}
