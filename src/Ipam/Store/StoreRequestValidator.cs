namespace Skein.Ipam.Store;

/// <summary>
/// Client-side checks every backend runs before anything is sent or written, so that a bad key,
/// an oversized value or an oversized transaction fails the same way on embedded, Consul and etcd
/// (cluster-store §4.3 limits, §1.6 key alphabet) and changes no state.
/// </summary>
public static class StoreRequestValidator
{
    /// <summary>A full key: one or more '/'-separated segments of [a-z0-9._-], no empty segment, no "..".</summary>
    public static void ValidateKey(string key, StoreLimits limits)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length == 0)
            throw new StoreRejectedException("store key is empty");
        if (key.Length > limits.MaxKeyBytes)
            throw new StoreRejectedException($"store key '{Shorten(key)}' is {key.Length} bytes, the limit is {limits.MaxKeyBytes}");
        CheckAlphabet(key, "store key");
        if (key[0] == '/' || key[^1] == '/' || key.Contains("//", StringComparison.Ordinal))
            throw new StoreRejectedException($"store key '{key}' has an empty segment (leading, trailing or doubled '/')");
        CheckNoTraversal(key, "store key");
    }

    /// <summary>A listing/watch prefix: empty, or key characters optionally ending in '/'.</summary>
    public static void ValidatePrefix(string prefix, StoreLimits limits)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        if (prefix.Length == 0)
            return;
        if (prefix.Length > limits.MaxKeyBytes)
            throw new StoreRejectedException($"store prefix '{Shorten(prefix)}' is {prefix.Length} bytes, the limit is {limits.MaxKeyBytes}");
        CheckAlphabet(prefix, "store prefix");
        if (prefix[0] == '/' || prefix.Contains("//", StringComparison.Ordinal))
            throw new StoreRejectedException($"store prefix '{prefix}' has an empty segment (leading or doubled '/')");
        CheckNoTraversal(prefix, "store prefix");
    }

    public static void ValidateValue(string key, ReadOnlyMemory<byte> value, StoreLimits limits)
    {
        if (value.Length > limits.MaxValueBytes)
            throw new StoreRejectedException($"value for store key '{key}' is {value.Length} bytes, the limit is {limits.MaxValueBytes}");
    }

    public static void ValidatePrecondition(string key, Precondition pre)
    {
        ArgumentNullException.ThrowIfNull(pre);
        if (pre is Precondition.VersionCondition { Version: <= 0 } v)
            throw new StoreRejectedException($"precondition on store key '{key}' names version {v.Version}; versions start at 1 (use Precondition.Absent for 'does not exist')");
    }

    /// <summary>
    /// A transaction: at most MaxTxnOps operations, each valid, and no key written twice
    /// (etcd refuses duplicate keys in one txn, §2.4; a Check plus one write on the same key is fine).
    /// </summary>
    public static void ValidateTxn(IReadOnlyList<TxnOp> ops, StoreLimits limits)
    {
        ArgumentNullException.ThrowIfNull(ops);
        if (ops.Count == 0)
            throw new StoreRejectedException("store transaction has no operations");
        if (ops.Count > limits.MaxTxnOps)
            throw new StoreRejectedException($"store transaction has {ops.Count} operations, the limit is {limits.MaxTxnOps}");
        var written = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < ops.Count; i++)
        {
            switch (ops[i])
            {
                case TxnOp.Check check:
                    ValidateKey(check.Key, limits);
                    ValidatePrecondition(check.Key, check.Pre);
                    break;
                case TxnOp.Put put:
                    ValidateKey(put.Key, limits);
                    ValidateValue(put.Key, put.Value, limits);
                    ValidatePrecondition(put.Key, put.Pre);
                    if (!written.Add(put.Key))
                        throw new StoreRejectedException($"store transaction writes key '{put.Key}' twice (operation {i})");
                    break;
                case TxnOp.Delete delete:
                    ValidateKey(delete.Key, limits);
                    ValidatePrecondition(delete.Key, delete.Pre);
                    if (!written.Add(delete.Key))
                        throw new StoreRejectedException($"store transaction writes key '{delete.Key}' twice (operation {i})");
                    break;
                case null:
                    throw new StoreRejectedException($"store transaction operation {i} is null");
                default:
                    throw new StoreRejectedException($"store transaction operation {i} has unknown kind {ops[i].GetType().Name}");
            }
        }
    }

    /// <summary>The key an operation names and the condition it carries.</summary>
    public static (string Key, Precondition Pre) KeyAndPrecondition(TxnOp op) => op switch
    {
        TxnOp.Check c => (c.Key, c.Pre),
        TxnOp.Put p => (p.Key, p.Pre),
        TxnOp.Delete d => (d.Key, d.Pre),
        _ => throw new StoreRejectedException($"unknown transaction operation {op?.GetType().Name ?? "null"}"),
    };

    /// <summary>Whether the key lies under the prefix (plain string prefix: "a/" does not match "ab").</summary>
    public static bool IsUnder(string key, string prefix) => key.StartsWith(prefix, StringComparison.Ordinal);

    private static void CheckAlphabet(string text, string what)
    {
        foreach (var c in text)
        {
            if (c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '_' or '-' or '/')
                continue;
            throw new StoreRejectedException($"{what} '{Shorten(text)}' contains '{Printable(c)}'; only [a-z0-9._-] segments separated by '/' are allowed");
        }
    }

    private static void CheckNoTraversal(string text, string what)
    {
        foreach (var segment in text.Split('/'))
        {
            if (segment is "." or "..")
                throw new StoreRejectedException($"{what} '{text}' contains the segment '{segment}'");
        }
    }

    private static string Printable(char c) => char.IsControl(c) || char.IsWhiteSpace(c) ? $"\\u{(int)c:x4}" : c.ToString();

    private static string Shorten(string text) => text.Length <= 80 ? text : string.Concat(text.AsSpan(0, 77), "...");
}
