using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Skein.Ipam.Protocol;

/// <summary>
/// Turns an IpamDriver request body into its record, or a SkeinException(Invalid) that names the
/// field that was wrong. Messages do not repeat the call's name: the engine already prefixes it
/// ("IpamDriver.RequestPool: ..."). The body is first walked with a reader so a wrong type is
/// reported as "field 'V6' must be true or false, not a string" rather than a serializer path;
/// only then is it deserialized through <see cref="IpamJsonContext"/>. Like Go's decoder:
/// field names match case-insensitively, unknown fields are ignored, null means "not given".
/// </summary>
public static class IpamRequestParser
{
    /// <summary>Real requests are a few hundred bytes; anything this large is not from the engine.</summary>
    public const int MaxBodyBytes = 64 * 1024;

    private enum FieldKind { String, Boolean, Options }

    private static readonly (string Name, FieldKind Kind)[] RequestPoolFields =
        [("AddressSpace", FieldKind.String), ("Pool", FieldKind.String), ("SubPool", FieldKind.String), ("Options", FieldKind.Options), ("V6", FieldKind.Boolean)];
    private static readonly (string Name, FieldKind Kind)[] ReleasePoolFields = [("PoolID", FieldKind.String)];
    private static readonly (string Name, FieldKind Kind)[] RequestAddressFields =
        [("PoolID", FieldKind.String), ("Address", FieldKind.String), ("Options", FieldKind.Options)];
    private static readonly (string Name, FieldKind Kind)[] ReleaseAddressFields = [("PoolID", FieldKind.String), ("Address", FieldKind.String)];

    public static RequestPoolRequest ParseRequestPool(ReadOnlySpan<byte> body) =>
        Parse(body, RequestPoolFields, IpamJsonContext.Default.RequestPoolRequest);

    public static ReleasePoolRequest ParseReleasePool(ReadOnlySpan<byte> body) =>
        Parse(body, ReleasePoolFields, IpamJsonContext.Default.ReleasePoolRequest);

    public static RequestAddressRequest ParseRequestAddress(ReadOnlySpan<byte> body) =>
        Parse(body, RequestAddressFields, IpamJsonContext.Default.RequestAddressRequest);

    public static ReleaseAddressRequest ParseReleaseAddress(ReadOnlySpan<byte> body) =>
        Parse(body, ReleaseAddressFields, IpamJsonContext.Default.ReleaseAddressRequest);

    private static T Parse<T>(ReadOnlySpan<byte> body, (string Name, FieldKind Kind)[] fields, JsonTypeInfo<T> typeInfo)
        where T : class
    {
        if (body.Length > MaxBodyBytes)
            throw SkeinException.Invalid($"the request body is {body.Length} bytes, more than the {MaxBodyBytes} accepted");
        if (IsBlank(body))
            throw SkeinException.Invalid("the request body is empty; this call needs a JSON object (the engine sends an empty body when it repeats a call after a time-out)");

        CheckShape(body, fields);
        try
        {
            return JsonSerializer.Deserialize(body, typeInfo)
                ?? throw SkeinException.Invalid("the request body is null; this call needs a JSON object");
        }
        catch (OptionsFormatException e)
        {
            throw SkeinException.Invalid($"request body field 'Options' {e.Message}");
        }
        catch (JsonException e)
        {
            // CheckShape accepts everything the serializer does; this is a safety net, not a path.
            throw SkeinException.Invalid($"the request body could not be read ({FirstSentence(e.Message)})");
        }
    }

    private static void CheckShape(ReadOnlySpan<byte> body, (string Name, FieldKind Kind)[] fields)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 16 });
        try
        {
            if (!reader.Read())
                throw SkeinException.Invalid("the request body is empty; this call needs a JSON object");
            if (reader.TokenType == JsonTokenType.Null)
                throw SkeinException.Invalid("the request body is null; this call needs a JSON object");
            if (reader.TokenType != JsonTokenType.StartObject)
                throw SkeinException.Invalid($"the request body must be a JSON object, not {OptionsMapConverter.Describe(reader.TokenType)}");

            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                string name = reader.GetString() ?? "";
                reader.Read();
                var field = Array.Find(fields, f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase));
                if (field.Name is null || reader.TokenType == JsonTokenType.Null)
                {
                    reader.Skip();
                    continue;
                }
                CheckField(ref reader, field.Name, field.Kind);
            }
            // Anything after the object other than whitespace is refused by the reader below.
            while (reader.Read())
            {
            }
        }
        catch (JsonException e)
        {
            throw SkeinException.Invalid($"the request body is not valid JSON (byte {reader.BytesConsumed}: {FirstSentence(e.Message)})");
        }
    }

    private static void CheckField(ref Utf8JsonReader reader, string field, FieldKind kind)
    {
        switch (kind)
        {
            case FieldKind.String when reader.TokenType != JsonTokenType.String:
                throw SkeinException.Invalid($"request body field '{field}' must be a string, not {OptionsMapConverter.Describe(reader.TokenType)}");
            case FieldKind.Boolean when reader.TokenType is not (JsonTokenType.True or JsonTokenType.False):
                throw SkeinException.Invalid($"request body field '{field}' must be true or false, not {OptionsMapConverter.Describe(reader.TokenType)}");
            case FieldKind.Options:
                CheckOptions(ref reader, field);
                return;
        }
        reader.Skip();
    }

    private static void CheckOptions(ref Utf8JsonReader reader, string field)
    {
        if (reader.TokenType == JsonTokenType.StartArray)
        {
            reader.Read();
            if (reader.TokenType != JsonTokenType.EndArray)
                throw SkeinException.Invalid($"request body field '{field}' must be an object of string values, not a non-empty array");
            return;
        }
        if (reader.TokenType != JsonTokenType.StartObject)
            throw SkeinException.Invalid($"request body field '{field}' must be an object of string values, not {OptionsMapConverter.Describe(reader.TokenType)}");
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            string key = reader.GetString() ?? "";
            reader.Read();
            if (reader.TokenType != JsonTokenType.String)
                throw SkeinException.Invalid($"request body field '{field}': the value of '{Addressing.IpAddressText.Printable(key)}' must be a string, not {OptionsMapConverter.Describe(reader.TokenType)}");
        }
    }

    private static bool IsBlank(ReadOnlySpan<byte> body)
    {
        foreach (byte b in body)
        {
            if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n'))
                return false;
        }
        return true;
    }

    private static string FirstSentence(string message)
    {
        // The reader quotes the offending bytes; keep them printable and short.
        int end = message.IndexOf(". ", StringComparison.Ordinal);
        return Addressing.IpAddressText.Printable(end > 0 ? message[..end] : message.TrimEnd('.'), limit: 160);
    }
}
