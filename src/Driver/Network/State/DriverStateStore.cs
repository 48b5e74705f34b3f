using System.Text.Json;
using Skein.Ipam.Store;

namespace Skein.Driver.Network.State;

/// <summary>
/// The driver's host-local records in the store: one key per network and per endpoint, under "local/driver/".
/// Only this host writes them, so plain puts suffice; every write completes before the kernel is touched.
/// </summary>
public sealed class DriverStateStore(IClusterStore store, string rootPrefix = DriverStateStore.DefaultRoot)
{
    public const string DefaultRoot = "local/driver";

    private string NetworksPrefix => $"{rootPrefix}/networks/";
    private string EndpointsPrefix => $"{rootPrefix}/endpoints/";

    public string NetworkKey(string networkId) => NetworksPrefix + networkId;
    public string EndpointKey(string endpointId) => EndpointsPrefix + endpointId;

    public async Task<(IReadOnlyList<NetworkRecord> Networks, IReadOnlyList<EndpointRecord> Endpoints)> LoadAsync(CancellationToken ct)
    {
        var (networkEntries, _) = await store.ListAsync(NetworksPrefix, keysOnly: false, ct).ConfigureAwait(false);
        var (endpointEntries, _) = await store.ListAsync(EndpointsPrefix, keysOnly: false, ct).ConfigureAwait(false);
        var networks = networkEntries.Select(e => Decode(e, DriverStateJsonContext.Default.NetworkRecord)).ToList();
        var endpoints = endpointEntries.Select(e => Decode(e, DriverStateJsonContext.Default.EndpointRecord)).ToList();
        return (networks, endpoints);
    }

    public Task PutNetworkAsync(NetworkRecord record, CancellationToken ct) =>
        store.PutAsync(NetworkKey(record.NetworkId), JsonSerializer.SerializeToUtf8Bytes(record, DriverStateJsonContext.Default.NetworkRecord), Precondition.None, ephemeral: false, ct);

    public Task PutEndpointAsync(EndpointRecord record, CancellationToken ct) =>
        store.PutAsync(EndpointKey(record.EndpointId), JsonSerializer.SerializeToUtf8Bytes(record, DriverStateJsonContext.Default.EndpointRecord), Precondition.None, ephemeral: false, ct);

    public Task DeleteNetworkAsync(string networkId, CancellationToken ct) =>
        store.DeleteAsync(NetworkKey(networkId), Precondition.None, ct);

    public Task DeleteEndpointAsync(string endpointId, CancellationToken ct) =>
        store.DeleteAsync(EndpointKey(endpointId), Precondition.None, ct);

    private static T Decode<T>(KvEntry entry, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        try
        {
            return JsonSerializer.Deserialize(entry.Value.Span, type)
                   ?? throw new InvalidDataException($"store key '{entry.Key}' holds JSON null");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"store key '{entry.Key}' does not hold a valid driver record: {ex.Message}", ex);
        }
    }
}
