using System.Text.Json.Serialization;

namespace Skein.Ipam.Store.Consul;

// Consul's HTTP API uses Go field names verbatim (cluster-store §1.3, §1.7, §1.8); these records mirror them.

/// <summary>One entry of GET /v1/kv (always inside an array) and of a txn result.</summary>
internal sealed record ConsulKvPair
{
    public string Key { get; init; } = "";
    public ulong CreateIndex { get; init; }
    public ulong ModifyIndex { get; init; }
    public ulong LockIndex { get; init; }
    public ulong Flags { get; init; }
    /// <summary>Standard base64; null for an empty value (or for non-read txn verbs).</summary>
    public string? Value { get; init; }
    public string? Session { get; init; }
}

/// <summary>One element of the PUT /v1/txn body: exactly one of KV, Node, Service, Check; we send only KV.</summary>
internal sealed record ConsulTxnOp(ConsulTxnKvOp KV);

internal sealed record ConsulTxnKvOp
{
    public required string Verb { get; init; }
    public required string Key { get; init; }
    /// <summary>Base64 here, unlike the plain KV endpoint.</summary>
    public string? Value { get; init; }
    public ulong? Index { get; init; }
    public string? Session { get; init; }
}

internal sealed record ConsulTxnResponse
{
    public List<ConsulTxnResult>? Results { get; init; }
    public List<ConsulTxnError>? Errors { get; init; }
}

internal sealed record ConsulTxnResult
{
    public ConsulKvPair? KV { get; init; }
}

internal sealed record ConsulTxnError
{
    public int OpIndex { get; init; }
    public string What { get; init; } = "";
}

/// <summary>PUT /v1/session/create body. Checks = [] drops the default serfHealth check (§1.8).</summary>
internal sealed record ConsulSessionCreate
{
    public string Name { get; init; } = "";
    public string? TTL { get; init; }
    public string Behavior { get; init; } = "delete";
    public string LockDelay { get; init; } = "1ms";
    public List<string>? Checks { get; init; }
}

internal sealed record ConsulSessionId
{
    public string ID { get; init; } = "";
}

/// <summary>Session entry as returned by renew/info.</summary>
internal sealed record ConsulSessionEntry
{
    public string ID { get; init; } = "";
    public string Name { get; init; } = "";
    public string? TTL { get; init; }
    public string Behavior { get; init; } = "";
    public ulong CreateIndex { get; init; }
    public ulong ModifyIndex { get; init; }
    /// <summary>Nanoseconds, as Consul encodes time.Duration in this struct.</summary>
    public long LockDelay { get; init; }
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(List<ConsulKvPair>))]
[JsonSerializable(typeof(List<string>))]
[JsonSerializable(typeof(List<ConsulTxnOp>))]
[JsonSerializable(typeof(ConsulTxnResponse))]
[JsonSerializable(typeof(ConsulSessionCreate))]
[JsonSerializable(typeof(ConsulSessionId))]
[JsonSerializable(typeof(List<ConsulSessionEntry>))]
internal sealed partial class ConsulJsonContext : JsonSerializerContext;
