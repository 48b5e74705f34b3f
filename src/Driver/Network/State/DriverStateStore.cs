using System.Collections.Concurrent;
using System.Text.Json;
using Skein.Ipam.Store;

namespace Skein.Driver.Network.State;

/// <summary>
/// The driver's host-local records in the store: one key per network and per endpoint, under "local/driver/".
/// Only this host writes them, so plain puts suffice; every write completes before the kernel is touched.
/// <para>
/// A put whose stored bytes would equal what this instance last stored (or loaded) for the key is skipped: each
/// one is a durable write (an fsync on the embedded store) that Docker waits for. Endpoint records are stored in
/// their durable form, in which <see cref="EndpointRecord.ExternallyConnected"/> is set only when there are port
/// mappings: without mappings the flag has no kernel consequence (no rule exists for it, recovery programs
/// nothing for it, a Revoke of it removes nothing), so the Program/Revoke pair of a container without -p
/// changes nothing durable and writes nothing.
/// </para>
/// </summary>
public sealed class DriverStateStore(IClusterStore store, string rootPrefix = DriverStateStore.DefaultRoot)
{
    public const string DefaultRoot = "local/driver";

    // What this instance knows the store holds, by key; a key is absent when unknown (never written or loaded,
    // deleted, or a write that failed and may or may not have landed).
    private readonly ConcurrentDictionary<string, byte[]> _stored = new(StringComparer.Ordinal);

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
        _stored.Clear();
        foreach (var entry in networkEntries.Concat(endpointEntries))
            _stored[entry.Key] = entry.Value.ToArray();
        return (networks, endpoints);
    }

    /// <summary>How many puts were skipped because the store already held the same bytes (a test and profiling aid).</summary>
    public long SkippedWrites => Interlocked.Read(ref _skippedWrites);
    private long _skippedWrites;

    public Task PutNetworkAsync(NetworkRecord record, CancellationToken ct) =>
        PutAsync(NetworkKey(record.NetworkId), JsonSerializer.SerializeToUtf8Bytes(record, DriverStateJsonContext.Default.NetworkRecord), ct);

    public Task PutEndpointAsync(EndpointRecord record, CancellationToken ct) =>
        PutAsync(EndpointKey(record.EndpointId), JsonSerializer.SerializeToUtf8Bytes(Durable(record), DriverStateJsonContext.Default.EndpointRecord), ct);

    public Task DeleteNetworkAsync(string networkId, CancellationToken ct) => DeleteAsync(NetworkKey(networkId), ct);

    public Task DeleteEndpointAsync(string endpointId, CancellationToken ct) => DeleteAsync(EndpointKey(endpointId), ct);

    /// <summary>The record as stored: the connected flag only where it has something to program (see the class comment).</summary>
    public static EndpointRecord Durable(EndpointRecord record) =>
        record.ExternallyConnected && record.PortMappings.Count == 0 ? record with { ExternallyConnected = false } : record;

    private async Task PutAsync(string key, byte[] value, CancellationToken ct)
    {
        if (_stored.TryGetValue(key, out var stored) && stored.AsSpan().SequenceEqual(value))
        {
            Interlocked.Increment(ref _skippedWrites);
            return;
        }
        _stored.TryRemove(key, out _);
        await store.PutAsync(key, value, Precondition.None, ephemeral: false, ct).ConfigureAwait(false);
        _stored[key] = value;
    }

    private async Task DeleteAsync(string key, CancellationToken ct)
    {
        _stored.TryRemove(key, out _);
        await store.DeleteAsync(key, Precondition.None, ct).ConfigureAwait(false);
    }

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
