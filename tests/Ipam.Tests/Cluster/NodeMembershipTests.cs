using System.Text.Json;
using Skein.Ipam.Cluster;
using Skein.Ipam.Store;
using Skein.Ipam.Tests.Store;

namespace Skein.Ipam.Tests.Cluster;

/// <summary>Node identity and liveness (cluster-store §4.6) on each backend.</summary>
public abstract class NodeMembershipTests : ClusterTestBase
{
    [SkippableFact]
    public async Task Start_claims_the_node_key_ephemerally_and_counts_incarnations()
    {
        SkipIfUnavailable();
        string state = NewStateDir();
        var first = await StartMemberAsync(await HostClientAsync(), "node-a", stateDir: state);
        Assert.Equal(1, first.Incarnation);
        Assert.Equal("node-a", first.NodeId);
        var entry = await Shared.GetAsync($"{Root}/nodes/node-a", None);
        Assert.NotNull(entry);
        Assert.True(entry.Ephemeral);
        using (var node = JsonDocument.Parse(entry.Value))
        {
            Assert.Equal("192.0.2.10", node.RootElement.GetProperty("addr").GetString());
            Assert.Equal("192.0.2.10", node.RootElement.GetProperty("vtep").GetString());
            Assert.Equal(1, node.RootElement.GetProperty("incarnation").GetInt64());
        }
        Assert.Equal(first.Liveness.Id, (await File.ReadAllTextAsync(Path.Combine(state, "liveness-id"))).Trim());
        await first.DisposeAsync();
        Assert.Null(await Shared.GetAsync($"{Root}/nodes/node-a", None));

        var second = await StartMemberAsync(await HostClientAsync(), "node-a", stateDir: state);
        Assert.Equal(2, second.Incarnation);
        Assert.Equal(2, (await NodeInfoAsync("node-a"))!.Incarnation);
        Assert.NotNull(await Shared.GetAsync($"{Root}/nodes/node-a", None));
    }

    [SkippableFact]
    public async Task Bad_options_are_refused_naming_the_setting()
    {
        SkipIfUnavailable();
        var error = await Assert.ThrowsAsync<SkeinException>(() =>
            NodeMembership.StartAsync(Shared, Options("Node_A"), Time, _ => { }, None));
        Assert.Contains("node id 'Node_A'", error.Message);
        error = await Assert.ThrowsAsync<SkeinException>(() =>
            NodeMembership.StartAsync(Shared, Options("node-a", address: "not-an-ip"), Time, _ => { }, None));
        Assert.Contains("advertise address 'not-an-ip'", error.Message);
        error = await Assert.ThrowsAsync<SkeinException>(() =>
            NodeMembership.StartAsync(Shared, Options("node-a") with { ReclaimAfter = TimeSpan.FromSeconds(5) }, Time, _ => { }, None));
        Assert.Contains("reclaim-after", error.Message);
    }

    [SkippableFact]
    public async Task A_second_live_process_with_the_same_node_id_is_refused()
    {
        SkipIfUnavailable();
        SkipUnlessMultiClient();
        var first = await StartMemberAsync(await OpenClientAsync(), "node-a");
        var duplicate = await Assert.ThrowsAsync<DuplicateNodeIdException>(() =>
            NodeMembership.StartAsync(OpenClientSync(), Options("node-a", address: "192.0.2.99"), Time, _ => { }, None));
        Assert.Equal("node-a", duplicate.NodeId);
        Assert.Contains("node id 'node-a' is already in use", duplicate.Message);
        Assert.Contains("192.0.2.10", duplicate.Message);
        // The refused process changed nothing: still the first one's key and incarnation.
        Assert.Contains("192.0.2.10", await ValueAsync("nodes/node-a"));
        Assert.Equal(1, (await NodeInfoAsync("node-a"))!.Incarnation);
        Assert.Equal(1, first.Incarnation);
    }

    private IClusterStore OpenClientSync() => OpenClientAsync().GetAwaiter().GetResult();

    [SkippableFact]
    public async Task A_restart_destroys_the_previous_liveness_recorded_in_the_state_directory()
    {
        SkipIfUnavailable();
        SkipUnlessMultiClient();
        string state = NewStateDir();
        var crashed = await StartMemberAsync(await OpenClientAsync(), "node-a", stateDir: state);
        string oldId = crashed.Liveness.Id;
        // Without the recorded id the old process's key would still be held and the restart refused as a duplicate.
        var restarted = await StartMemberAsync(await OpenClientAsync(), "node-a", stateDir: state);
        Assert.NotEqual(oldId, restarted.Liveness.Id);
        Assert.Equal(2, restarted.Incarnation);
        Assert.Equal(restarted.Liveness.Id, (await File.ReadAllTextAsync(Path.Combine(state, "liveness-id"))).Trim());
        Assert.Contains("\"incarnation\":2", await ValueAsync("nodes/node-a"));
    }

    [SkippableFact]
    public async Task After_liveness_loss_the_node_key_comes_back_and_Republish_is_raised()
    {
        SkipIfUnavailable();
        Skip.If(Backend.KillLiveness is null, "this backend's liveness is the process itself; it cannot be lost while the process runs");
        var log = new TestLog();
        var membership = await StartMemberAsync(await HostClientAsync(), "node-a", log);
        var republished = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        membership.Republish += async ct =>
        {
            // The node key is re-claimed before the owner is asked to re-publish.
            republished.TrySetResult(await membership.Store.GetAsync($"{Root}/nodes/node-a", ct) is not null);
        };
        string oldId = membership.Liveness.Id;
        await Backend.KillLiveness!(membership.Liveness);
        Assert.True(await republished.Task.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.NotEqual(oldId, membership.Liveness.Id);
        var entry = await Shared.GetAsync($"{Root}/nodes/node-a", None);
        Assert.NotNull(entry);
        Assert.True(entry.Ephemeral);
        Assert.True(log.Contains("liveness recreated"), log.ToString());
        Assert.Equal(1, membership.Incarnation);
    }
}

public sealed class EmbeddedNodeMembershipTests : NodeMembershipTests
{
    protected override ClusterBackend CreateBackend() => new EmbeddedBackend();
}

public sealed class EtcdNodeMembershipTests(EtcdFixture fixture) : NodeMembershipTests, IClassFixture<EtcdFixture>
{
    protected override ClusterBackend CreateBackend() => new EtcdBackend(fixture);
}

public sealed class ConsulNodeMembershipTests(FakeConsulFixture fixture) : NodeMembershipTests, IClassFixture<FakeConsulFixture>
{
    protected override ClusterBackend CreateBackend() => new ConsulBackend(fixture);
}
