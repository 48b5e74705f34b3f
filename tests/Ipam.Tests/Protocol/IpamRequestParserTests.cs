using System.Text;
using System.Text.Json;
using Skein.Ipam.Protocol;

namespace Skein.Ipam.Tests.Protocol;

public sealed class IpamRequestParserTests
{
    private static byte[] B(string text) => Encoding.UTF8.GetBytes(text);

    [Fact]
    public void Reads_the_bodies_the_engine_sends()
    {
        var pool = IpamRequestParser.ParseRequestPool(B("{\"AddressSpace\":\"LocalDefault\",\"Pool\":\"10.50.0.0/16\",\"SubPool\":\"10.50.1.0/24\",\"Options\":{\"pool-hint\":\"x\"},\"V6\":false}\n"));
        Assert.Equal("LocalDefault", pool.AddressSpace);
        Assert.Equal("10.50.0.0/16", pool.Pool);
        Assert.Equal("10.50.1.0/24", pool.SubPool);
        Assert.Equal("x", pool.Options!["pool-hint"]);
        Assert.False(pool.V6);

        var address = IpamRequestParser.ParseRequestAddress(B("{\"PoolID\":\"LocalDefault/10.50.0.0/16\",\"Address\":\"10.50.0.10\",\"Options\":null}"));
        Assert.Equal("LocalDefault/10.50.0.0/16", address.PoolID);
        Assert.Equal("10.50.0.10", address.Address);
        Assert.Null(address.Options);

        Assert.Equal("p", IpamRequestParser.ParseReleasePool(B("{\"PoolID\":\"p\"}")).PoolID);
        var release = IpamRequestParser.ParseReleaseAddress(B("{\"PoolID\":\"p\",\"Address\":\"10.0.0.1\"}"));
        Assert.Equal("10.0.0.1", release.Address);
    }

    [Theory]
    [InlineData("{\"PoolID\":\"p\"}")]
    [InlineData("{\"PoolID\":\"p\",\"Options\":null}")]
    [InlineData("{\"PoolID\":\"p\",\"Options\":{}}")]
    [InlineData("{\"PoolID\":\"p\",\"Options\":[]}")]
    public void Null_absent_empty_object_and_empty_array_options_mean_none(string body)
    {
        var request = IpamRequestParser.ParseRequestAddress(B(body));
        Assert.True(request.Options is null or { Count: 0 });
    }

    [Fact]
    public void Field_names_match_case_insensitively_and_unknown_fields_are_ignored()
    {
        var request = IpamRequestParser.ParseRequestPool(B("{\"addressspace\":\"S\",\"POOL\":\"10.0.0.0/8\",\"v6\":true,\"Extra\":[1,{\"a\":2}]}"));
        Assert.Equal("S", request.AddressSpace);
        Assert.Equal("10.0.0.0/8", request.Pool);
        Assert.True(request.V6);
    }

    [Theory]
    [InlineData("", "body is empty")]
    [InlineData("  \n", "body is empty")]
    [InlineData("null", "body is null")]
    [InlineData("[]", "must be a JSON object, not an array")]
    [InlineData("5", "must be a JSON object, not a number")]
    [InlineData("\"x\"", "must be a JSON object, not a string")]
    [InlineData("{", "not valid JSON")]
    [InlineData("{\"Pool\":}", "not valid JSON")]
    [InlineData("{\"Pool\":\"a\"} x", "not valid JSON")]
    [InlineData("{'Pool':'a'}", "not valid JSON")]
    [InlineData("{\"Pool\":5}", "field 'Pool' must be a string, not a number")]
    [InlineData("{\"AddressSpace\":{}}", "field 'AddressSpace' must be a string, not an object")]
    [InlineData("{\"SubPool\":[\"a\"]}", "field 'SubPool' must be a string, not an array")]
    [InlineData("{\"V6\":\"true\"}", "field 'V6' must be true or false, not a string")]
    [InlineData("{\"V6\":1}", "field 'V6' must be true or false, not a number")]
    [InlineData("{\"Options\":\"a=b\"}", "field 'Options' must be an object of string values, not a string")]
    [InlineData("{\"Options\":{\"a\":1}}", "the value of 'a' must be a string, not a number")]
    [InlineData("{\"Options\":{\"a\":null}}", "the value of 'a' must be a string, not null")]
    [InlineData("{\"Options\":[\"a\"]}", "not a non-empty array")]
    public void Refuses_bad_request_pool_bodies_naming_what_was_wrong(string body, string reason)
    {
        var error = Assert.Throws<SkeinException>(() => IpamRequestParser.ParseRequestPool(B(body)));
        Assert.Equal(ErrorKind.Invalid, error.Kind);
        Assert.DoesNotContain("IpamDriver", error.Message); // the engine prefixes the call itself
        Assert.Contains(reason, error.Message);
    }

    [Theory]
    [InlineData("{\"PoolID\":1}", "field 'PoolID' must be a string")]
    [InlineData("{\"PoolID\":\"p\",\"Address\":false}", "field 'Address' must be a string, not a boolean")]
    public void Refuses_wrong_types_in_address_calls(string body, string reason)
    {
        Assert.Contains(reason, Assert.Throws<SkeinException>(() => IpamRequestParser.ParseRequestAddress(B(body))).Message);
        Assert.Contains(reason, Assert.Throws<SkeinException>(() => IpamRequestParser.ParseReleaseAddress(B(body))).Message);
    }

    [Fact]
    public void Refuses_oversized_bodies()
    {
        string body = "{\"PoolID\":\"" + new string('a', IpamRequestParser.MaxBodyBytes) + "\"}";
        var error = Assert.Throws<SkeinException>(() => IpamRequestParser.ParseReleasePool(B(body)));
        Assert.Contains("more than the", error.Message);
    }

    [Fact]
    public void Refuses_absurd_nesting()
    {
        string body = "{\"X\":" + string.Concat(Enumerable.Repeat("[", 100)) + string.Concat(Enumerable.Repeat("]", 100)) + "}";
        Assert.Contains("not valid JSON", Assert.Throws<SkeinException>(() => IpamRequestParser.ParseReleasePool(B(body))).Message);
    }

    [Fact]
    public void Responses_use_the_go_field_names()
    {
        Assert.Equal("{\"RequiresMACAddress\":true,\"RequiresRequestReplay\":false}",
            JsonSerializer.Serialize(new GetCapabilitiesResponse { RequiresMACAddress = true }, IpamJsonContext.Default.GetCapabilitiesResponse));
        Assert.Equal("{\"LocalDefaultAddressSpace\":\"LocalDefault\",\"GlobalDefaultAddressSpace\":\"GlobalDefault\"}",
            JsonSerializer.Serialize(new GetAddressSpacesResponse { LocalDefaultAddressSpace = "LocalDefault", GlobalDefaultAddressSpace = "GlobalDefault" }, IpamJsonContext.Default.GetAddressSpacesResponse));
        Assert.Equal("{\"PoolID\":\"LocalDefault/10.0.0.0/24\",\"Pool\":\"10.0.0.0/24\",\"Data\":{}}",
            JsonSerializer.Serialize(new RequestPoolResponse { PoolID = "LocalDefault/10.0.0.0/24", Pool = "10.0.0.0/24" }, IpamJsonContext.Default.RequestPoolResponse));
        Assert.Equal("{\"Address\":\"10.0.0.2/24\",\"Data\":{}}",
            JsonSerializer.Serialize(new RequestAddressResponse { Address = "10.0.0.2/24" }, IpamJsonContext.Default.RequestAddressResponse));
        Assert.Equal("{\"AddressSpace\":\"S\",\"Pool\":\"\",\"SubPool\":null,\"Options\":{\"a\":\"b\"},\"V6\":true}",
            JsonSerializer.Serialize(new RequestPoolRequest { AddressSpace = "S", Pool = "", Options = new() { ["a"] = "b" }, V6 = true }, IpamJsonContext.Default.RequestPoolRequest));
    }
}
