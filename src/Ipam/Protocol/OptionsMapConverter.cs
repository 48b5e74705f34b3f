using System.Text.Json;
using System.Text.Json.Serialization;

namespace Skein.Ipam.Protocol;

/// <summary>
/// Reads Go's map[string]string option bags: the engine sends null, {} or (from some releases) []
/// for "no options", and these all mean the same. Any value that is not a string is refused,
/// as Go's decoder refuses it.
/// </summary>
public sealed class OptionsMapConverter : JsonConverter<Dictionary<string, string>?>
{
    public override bool HandleNull => true;

    public override Dictionary<string, string>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.StartArray:
                if (!reader.Read() || reader.TokenType != JsonTokenType.EndArray)
                    throw new OptionsFormatException("must be an object of string values (a non-empty array was sent)");
                return [];
            case JsonTokenType.StartObject:
                var map = new Dictionary<string, string>(StringComparer.Ordinal);
                while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                {
                    string key = reader.GetString() ?? "";
                    if (!reader.Read())
                        throw new OptionsFormatException("is cut short");
                    if (reader.TokenType != JsonTokenType.String)
                        throw new OptionsFormatException($"value of '{Skein.Ipam.Addressing.IpAddressText.Printable(key)}' must be a string, not {Describe(reader.TokenType)}");
                    map[key] = reader.GetString() ?? "";
                }
                return map;
            default:
                throw new OptionsFormatException($"must be an object of string values, not {Describe(reader.TokenType)}");
        }
    }

    public override void Write(Utf8JsonWriter writer, Dictionary<string, string>? value, JsonSerializerOptions options)
    {
        if (value is null)
        {
            writer.WriteNullValue();
            return;
        }
        writer.WriteStartObject();
        foreach (var (key, item) in value)
            writer.WriteString(key, item);
        writer.WriteEndObject();
    }

    internal static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => token.ToString(),
    };
}

/// <summary>A wrong Options bag; its message is already fit for the user.</summary>
public sealed class OptionsFormatException(string message) : JsonException(message);
