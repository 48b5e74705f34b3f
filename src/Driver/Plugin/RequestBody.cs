using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Skein.Ipam;

namespace Skein.Driver.Plugin;

/// <summary>A body over the configured limit: refused before it is parsed (HTTP 413).</summary>
public sealed class RequestTooLargeException(string message) : SkeinException(ErrorKind.Invalid, message);

/// <summary>
/// Reads a plugin call's body by hand: Docker sends no Content-Type and sometimes no body at all, which
/// minimal-API binding would answer with 415/400 and no Err.
/// </summary>
public static class RequestBody
{
    /// <summary>The raw body, at most maxBytes long; longer bodies are refused without reading them to the end.</summary>
    public static async Task<byte[]> ReadBytesAsync(HttpRequest request, int maxBytes, CancellationToken ct)
    {
        if (request.ContentLength is long declared && declared > maxBytes)
            throw new RequestTooLargeException($"request body of {declared} bytes is larger than the {maxBytes}-byte limit");
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(maxBytes + 1, 64 * 1024));
        try
        {
            var length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, maxBytes + 1));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                var read = await request.Body.ReadAsync(buffer.AsMemory(length), ct).ConfigureAwait(false);
                if (read == 0)
                    break;
                length += read;
                if (length > maxBytes)
                    throw new RequestTooLargeException($"request body is larger than the {maxBytes}-byte limit");
            }
            return buffer.AsSpan(0, length).ToArray();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>True when the body holds nothing but whitespace (Go's encoder ends bodies with '\n').</summary>
    public static bool IsBlank(ReadOnlySpan<byte> body) => body.Trim(" \t\r\n"u8).IsEmpty;

    /// <summary>
    /// Parses a body that the call needs. Empty bodies and a bare `null` are refused: after a managed plugin's
    /// time-out the engine repeats a call with an empty body (decisions #9), and guessing would be wrong. Messages do
    /// not name the call: the engine puts "NetworkDriver.CreateNetwork: " in front of every Err itself.
    /// </summary>
    public static T Parse<T>(ReadOnlySpan<byte> body, JsonTypeInfo<T> typeInfo) where T : class
    {
        if (IsBlank(body))
            throw SkeinException.Invalid("the request body is empty; this call needs a JSON object (a call repeated after a time-out arrives without its body)");
        T? value;
        try
        {
            value = JsonSerializer.Deserialize(body, typeInfo);
        }
        catch (JsonException ex)
        {
            throw SkeinException.Invalid(DescribeJsonError(ex));
        }
        return value ?? throw SkeinException.Invalid("the request body is JSON null; this call needs a JSON object");
    }

    /// <summary>Where the body went wrong, in words that survive trimming of framework messages.</summary>
    public static string DescribeJsonError(JsonException ex)
    {
        var where = string.IsNullOrEmpty(ex.Path) || ex.Path == "$" ? "the body" : $"field {ex.Path}";
        var position = ex.LineNumber is long line && ex.BytePositionInLine is long column
            ? $" (line {line + 1}, byte {column + 1})"
            : "";
        // The framework's text says what was expected ("could not be converted to System.String", "'}' is
        // invalid after a value"); keep it but drop its own copy of the path and position.
        var detail = ex.Message;
        var cut = detail.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut > 0)
            detail = detail[..cut];
        return $"malformed JSON in {where}{position}: {detail}";
    }
}
