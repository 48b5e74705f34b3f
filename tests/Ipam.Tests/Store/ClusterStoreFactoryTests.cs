using Skein.Ipam.Store;
using Skein.Ipam.Store.Embedded;

namespace Skein.Ipam.Tests.Store;

public sealed class ClusterStoreFactoryTests
{
    private static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.FirstOrDefault(v => v.Name == name).Value;

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    [InlineData("embedded")]
    [InlineData("EMBEDDED")]
    public void Empty_or_embedded_means_the_embedded_store(string? url)
    {
        Assert.Equal(StoreKind.Embedded, ClusterStoreFactory.Parse(url, Env()).Kind);
    }

    [Fact]
    public async Task Embedded_store_opens_in_the_store_subdirectory_of_the_state_dir()
    {
        using var state = new TempDirectory("factory");
        await using var store = await ClusterStoreFactory.OpenAsync("embedded", state.Path, environment: Env());
        var embedded = Assert.IsType<EmbeddedStore>(store);
        Assert.Equal(Path.Combine(state.Path, "store"), embedded.Directory);
        Assert.True(File.Exists(Path.Combine(state.Path, "store", "lock")));
    }

    [Fact]
    public async Task Cluster_urls_open_the_matching_client_without_contacting_the_store()
    {
        await using (var consul = await ClusterStoreFactory.OpenAsync("consul://127.0.0.1:1/x", "/nonexistent", environment: Env()))
            Assert.IsType<Skein.Ipam.Store.Consul.ConsulStore>(consul);
        await using (var etcd = await ClusterStoreFactory.OpenAsync("etcd://127.0.0.1:1/x", "/nonexistent", environment: Env()))
            Assert.IsType<Skein.Ipam.Store.Etcd.EtcdStore>(etcd);
    }

    [Theory]
    [InlineData("consul://10.0.0.1:8500/skein/v1", "http://10.0.0.1:8500/", "skein/v1")]
    [InlineData("consul://consul.example", "http://consul.example:8500/", "skein/v1")]
    [InlineData("consul://consul.example/", "http://consul.example:8500/", "skein/v1")]
    [InlineData("consul+https://consul.example/prod/skein", "https://consul.example:8501/", "prod/skein")]
    [InlineData("consul+http://h:9000/x", "http://h:9000/", "x")]
    [InlineData("consul://[fd00::1]:8500/p", "http://[fd00::1]:8500/", "p")]
    [InlineData("consul://[fd00::1]/p", "http://[fd00::1]:8500/", "p")]
    [InlineData("etcd://127.0.0.1:2379/skein/v1", "http://127.0.0.1:2379/", "skein/v1")]
    [InlineData("etcd://etcd1", "http://etcd1:2379/", "skein/v1")]
    [InlineData("etcd+https://etcd1:2379/a", "https://etcd1:2379/", "a")]
    public void Cluster_urls_parse_to_base_address_and_root(string url, string baseAddress, string root)
    {
        var location = ClusterStoreFactory.Parse(url, Env());
        Assert.Equal(new Uri(baseAddress), location.BaseAddress);
        Assert.Equal(root, location.RootPrefix);
        Assert.Equal(url.StartsWith("consul", StringComparison.Ordinal) ? StoreKind.Consul : StoreKind.Etcd, location.Kind);
    }

    [Theory]
    [InlineData("redis://h:1", "unknown scheme")]
    [InlineData("consul:h", "not a store URL")]
    [InlineData("h:8500", "not a store URL")]
    [InlineData("consul://h:8500/Skein", "invalid root prefix")]
    [InlineData("consul://h:8500/a/../b", "invalid root prefix")]
    [InlineData("consul://h:8500/p?token=x", "query")]
    [InlineData("consul://user:secret@h:8500/p", "credentials")]
    [InlineData("etcd://", "names no etcd host")]
    [InlineData("consul://h:notaport/p", "invalid host or port")]
    public void Bad_urls_fail_naming_the_problem(string url, string fragment)
    {
        var error = Assert.Throws<ArgumentException>(() => ClusterStoreFactory.Parse(url, Env()));
        Assert.Contains(fragment, error.Message);
        Assert.DoesNotContain("secret", error.Message);
    }

    [Fact]
    public void Consul_without_host_uses_CONSUL_HTTP_ADDR_and_CONSUL_HTTP_SSL()
    {
        Assert.Equal(new Uri("http://127.0.0.1:8500/"), ClusterStoreFactory.Parse("consul://", Env()).BaseAddress);
        Assert.Equal(new Uri("http://agent:8600/"), ClusterStoreFactory.Parse("consul://", Env(("CONSUL_HTTP_ADDR", "agent:8600"))).BaseAddress);
        Assert.Equal(new Uri("https://agent:8501/"), ClusterStoreFactory.Parse("consul://", Env(("CONSUL_HTTP_ADDR", "https://agent"))).BaseAddress);
        Assert.Equal(new Uri("https://agent:9999/"), ClusterStoreFactory.Parse("consul:///p", Env(("CONSUL_HTTP_ADDR", "agent:9999"), ("CONSUL_HTTP_SSL", "true"))).BaseAddress);
        // An explicit host in --store wins over the environment.
        Assert.Equal(new Uri("http://mine:8500/"), ClusterStoreFactory.Parse("consul://mine", Env(("CONSUL_HTTP_ADDR", "agent:8600"))).BaseAddress);
    }

    [Fact]
    public void Consul_token_from_variable_wins_over_token_file_and_is_never_printed()
    {
        using var dir = new TempDirectory("token");
        var file = Path.Combine(dir.Path, "token");
        File.WriteAllText(file, "  file-secret \n");

        var fromFile = ClusterStoreFactory.Parse("consul://h", Env(("CONSUL_HTTP_TOKEN_FILE", file)));
        Assert.Equal("file-secret", fromFile.Token);
        Assert.DoesNotContain("file-secret", fromFile.ToString());
        Assert.Contains("token set", fromFile.ToString());

        var fromVar = ClusterStoreFactory.Parse("consul://h", Env(("CONSUL_HTTP_TOKEN", "var-secret"), ("CONSUL_HTTP_TOKEN_FILE", file)));
        Assert.Equal("var-secret", fromVar.Token);

        var missing = Assert.Throws<ArgumentException>(() => ClusterStoreFactory.Parse("consul://h", Env(("CONSUL_HTTP_TOKEN_FILE", Path.Combine(dir.Path, "nope")))));
        Assert.Contains("CONSUL_HTTP_TOKEN_FILE", missing.Message);
    }

    [Fact]
    public void Consul_tls_settings_come_from_the_environment()
    {
        var location = ClusterStoreFactory.Parse("consul+https://h", Env(
            ("CONSUL_CACERT", "/ca.pem"), ("CONSUL_CLIENT_CERT", "/c.pem"), ("CONSUL_CLIENT_KEY", "/k.pem"),
            ("CONSUL_TLS_SERVER_NAME", "server.dc1.consul"), ("CONSUL_HTTP_SSL_VERIFY", "false")));
        Assert.Equal("/ca.pem", location.CaFile);
        Assert.Equal("/c.pem", location.ClientCertFile);
        Assert.Equal("/k.pem", location.ClientKeyFile);
        Assert.Equal("server.dc1.consul", location.TlsServerName);
        Assert.False(location.VerifyTls);
        Assert.True(ClusterStoreFactory.Parse("consul+https://h", Env()).VerifyTls);
    }

    [Fact]
    public void Etcd_credentials_come_from_the_environment()
    {
        var combined = ClusterStoreFactory.Parse("etcd://h", Env(("ETCDCTL_USER", "skein:pw")));
        Assert.Equal(("skein", "pw"), (combined.User, combined.Password));
        Assert.DoesNotContain("pw", combined.ToString());
        var separate = ClusterStoreFactory.Parse("etcd://h", Env(("ETCDCTL_USER", "skein"), ("ETCDCTL_PASSWORD", "pw2"), ("ETCDCTL_CACERT", "/ca")));
        Assert.Equal(("skein", "pw2", "/ca"), (separate.User, separate.Password, separate.CaFile));
        Assert.Throws<ArgumentException>(() => ClusterStoreFactory.Parse("etcd://h", Env(("ETCDCTL_USER", "skein"))));
    }
}
