using System.Text.Json.Serialization;

namespace Skein.Ipam.Store.Etcd;

// The etcd v3 JSON gateway mapping (cluster-store §2.2): bytes as standard base64 (byte[] in
// System.Text.Json), int64 as JSON strings (NumberHandling below), snake_case output, fields at their
// default value omitted — so everything here is optional with a default. Lease messages keep the
// proto's capitalised ID/TTL; "ttl" would be silently ignored.

internal sealed record EtcdHeader
{
    [JsonPropertyName("revision")] public long Revision { get; init; }
}

internal sealed record EtcdKv
{
    [JsonPropertyName("key")] public byte[] Key { get; init; } = [];
    [JsonPropertyName("create_revision")] public long CreateRevision { get; init; }
    [JsonPropertyName("mod_revision")] public long ModRevision { get; init; }
    [JsonPropertyName("version")] public long Version { get; init; }
    [JsonPropertyName("value")] public byte[]? Value { get; init; }
    [JsonPropertyName("lease")] public long Lease { get; init; }
}

internal sealed record EtcdRangeRequest
{
    [JsonPropertyName("key")] public required byte[] Key { get; init; }
    [JsonPropertyName("range_end")] public byte[]? RangeEnd { get; init; }
    [JsonPropertyName("limit")] public long? Limit { get; init; }
    [JsonPropertyName("revision")] public long? Revision { get; init; }
    [JsonPropertyName("keys_only")] public bool? KeysOnly { get; init; }
}

internal sealed record EtcdRangeResponse
{
    [JsonPropertyName("header")] public EtcdHeader? Header { get; init; }
    [JsonPropertyName("kvs")] public List<EtcdKv>? Kvs { get; init; }
    [JsonPropertyName("more")] public bool More { get; init; }
    [JsonPropertyName("count")] public long Count { get; init; }
}

internal sealed record EtcdPutRequest
{
    [JsonPropertyName("key")] public required byte[] Key { get; init; }
    [JsonPropertyName("value")] public required byte[] Value { get; init; }
    /// <summary>A put without lease detaches the key from its lease (§2.3), so ephemeral updates repeat it.</summary>
    [JsonPropertyName("lease")] public long? Lease { get; init; }
}

internal sealed record EtcdPutResponse
{
    [JsonPropertyName("header")] public EtcdHeader? Header { get; init; }
}

internal sealed record EtcdDeleteRangeRequest
{
    [JsonPropertyName("key")] public required byte[] Key { get; init; }
    [JsonPropertyName("range_end")] public byte[]? RangeEnd { get; init; }
}

internal sealed record EtcdDeleteRangeResponse
{
    [JsonPropertyName("header")] public EtcdHeader? Header { get; init; }
    [JsonPropertyName("deleted")] public long Deleted { get; init; }
}

internal sealed record EtcdCompare
{
    [JsonPropertyName("result")] public string Result { get; init; } = "EQUAL";
    /// <summary>VERSION, CREATE, MOD, VALUE or LEASE.</summary>
    [JsonPropertyName("target")] public required string Target { get; init; }
    [JsonPropertyName("key")] public required byte[] Key { get; init; }
    [JsonPropertyName("create_revision")] public long? CreateRevision { get; init; }
    [JsonPropertyName("mod_revision")] public long? ModRevision { get; init; }
}

internal sealed record EtcdRequestOp
{
    [JsonPropertyName("request_range")] public EtcdRangeRequest? RequestRange { get; init; }
    [JsonPropertyName("request_put")] public EtcdPutRequest? RequestPut { get; init; }
    [JsonPropertyName("request_delete_range")] public EtcdDeleteRangeRequest? RequestDeleteRange { get; init; }
}

internal sealed record EtcdTxnRequest
{
    [JsonPropertyName("compare")] public List<EtcdCompare> Compare { get; init; } = [];
    [JsonPropertyName("success")] public List<EtcdRequestOp> Success { get; init; } = [];
    [JsonPropertyName("failure")] public List<EtcdRequestOp> Failure { get; init; } = [];
}

internal sealed record EtcdResponseOp
{
    [JsonPropertyName("response_range")] public EtcdRangeResponse? ResponseRange { get; init; }
    [JsonPropertyName("response_put")] public EtcdPutResponse? ResponsePut { get; init; }
    [JsonPropertyName("response_delete_range")] public EtcdDeleteRangeResponse? ResponseDeleteRange { get; init; }
}

internal sealed record EtcdTxnResponse
{
    [JsonPropertyName("header")] public EtcdHeader? Header { get; init; }
    /// <summary>Omitted when false (§2.2).</summary>
    [JsonPropertyName("succeeded")] public bool Succeeded { get; init; }
    [JsonPropertyName("responses")] public List<EtcdResponseOp>? Responses { get; init; }
}

internal sealed record EtcdLeaseGrantRequest
{
    [JsonPropertyName("TTL")] public required long Ttl { get; init; }
}

internal sealed record EtcdLeaseGrantResponse
{
    [JsonPropertyName("ID")] public long Id { get; init; }
    [JsonPropertyName("TTL")] public long Ttl { get; init; }
    [JsonPropertyName("error")] public string? Error { get; init; }
}

internal sealed record EtcdLeaseIdRequest
{
    [JsonPropertyName("ID")] public required long Id { get; init; }
}

internal sealed record EtcdLeaseKeepAliveResult
{
    [JsonPropertyName("ID")] public long Id { get; init; }
    /// <summary>Missing for an expired or revoked lease (§2.5).</summary>
    [JsonPropertyName("TTL")] public long Ttl { get; init; }
}

internal sealed record EtcdStreamError
{
    [JsonPropertyName("grpc_code")] public int GrpcCode { get; init; }
    [JsonPropertyName("http_code")] public int HttpCode { get; init; }
    [JsonPropertyName("message")] public string? Message { get; init; }
}

internal sealed record EtcdLeaseKeepAliveLine
{
    [JsonPropertyName("result")] public EtcdLeaseKeepAliveResult? Result { get; init; }
    [JsonPropertyName("error")] public EtcdStreamError? Error { get; init; }
}

internal sealed record EtcdWatchCreate
{
    [JsonPropertyName("key")] public required byte[] Key { get; init; }
    [JsonPropertyName("range_end")] public byte[]? RangeEnd { get; init; }
    [JsonPropertyName("start_revision")] public long StartRevision { get; init; }
}

internal sealed record EtcdWatchRequest
{
    [JsonPropertyName("create_request")] public required EtcdWatchCreate CreateRequest { get; init; }
}

internal sealed record EtcdEvent
{
    /// <summary>Absent for PUT; "DELETE" for deletions (§2.2).</summary>
    [JsonPropertyName("type")] public string? Type { get; init; }
    [JsonPropertyName("kv")] public EtcdKv? Kv { get; init; }
}

internal sealed record EtcdWatchResult
{
    [JsonPropertyName("header")] public EtcdHeader? Header { get; init; }
    [JsonPropertyName("created")] public bool Created { get; init; }
    [JsonPropertyName("canceled")] public bool Canceled { get; init; }
    [JsonPropertyName("compact_revision")] public long CompactRevision { get; init; }
    [JsonPropertyName("cancel_reason")] public string? CancelReason { get; init; }
    [JsonPropertyName("events")] public List<EtcdEvent>? Events { get; init; }
}

internal sealed record EtcdWatchLine
{
    [JsonPropertyName("result")] public EtcdWatchResult? Result { get; init; }
    [JsonPropertyName("error")] public EtcdStreamError? Error { get; init; }
}

internal sealed record EtcdAuthenticateRequest
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("password")] public required string Password { get; init; }
}

internal sealed record EtcdAuthenticateResponse
{
    [JsonPropertyName("token")] public string? Token { get; init; }
}

/// <summary>Gateway error body (§2.8).</summary>
internal sealed record EtcdErrorBody
{
    [JsonPropertyName("error")] public string? Error { get; init; }
    [JsonPropertyName("message")] public string? Message { get; init; }
    [JsonPropertyName("code")] public int Code { get; init; }
}

[JsonSourceGenerationOptions(
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.AllowReadingFromString | JsonNumberHandling.WriteAsString)]
[JsonSerializable(typeof(EtcdRangeRequest))]
[JsonSerializable(typeof(EtcdRangeResponse))]
[JsonSerializable(typeof(EtcdPutRequest))]
[JsonSerializable(typeof(EtcdPutResponse))]
[JsonSerializable(typeof(EtcdDeleteRangeRequest))]
[JsonSerializable(typeof(EtcdDeleteRangeResponse))]
[JsonSerializable(typeof(EtcdTxnRequest))]
[JsonSerializable(typeof(EtcdTxnResponse))]
[JsonSerializable(typeof(EtcdLeaseGrantRequest))]
[JsonSerializable(typeof(EtcdLeaseGrantResponse))]
[JsonSerializable(typeof(EtcdLeaseIdRequest))]
[JsonSerializable(typeof(EtcdLeaseKeepAliveLine))]
[JsonSerializable(typeof(EtcdWatchRequest))]
[JsonSerializable(typeof(EtcdWatchLine))]
[JsonSerializable(typeof(EtcdAuthenticateRequest))]
[JsonSerializable(typeof(EtcdAuthenticateResponse))]
[JsonSerializable(typeof(EtcdErrorBody))]
internal sealed partial class EtcdJsonContext : JsonSerializerContext;
