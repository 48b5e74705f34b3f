using System.Net;
using Skein.Driver.Firewall;
using Skein.Driver.Network;
using Skein.Driver.Plugin;
using Skein.Driver.Tests.TestSupport;
using static Skein.Driver.Tests.TestSupport.TraceBodies;

namespace Skein.Driver.Tests.Network;

/// <summary>A step that fails half-way through a creation undoes the steps before it and leaves no record.</summary>
public sealed class RollbackTests
{
    [SkippableFact]
    public async Task A_failed_gateway_address_removes_the_new_bridge_and_the_record()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        FaultyKernel? faulty = null;
        await using var host = await PluginTestHost.StartAsync(new SkeinRuntime.Overrides(WrapKernel: k => faulty = new FaultyKernel(k)));
        var net = NewId();
        faulty!.FailWhen = (op, link) => op == nameof(FaultyKernel.AddAddress) && link == LinkNames.Bridge(net);

        var reply = await host.CallAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        Assert.Equal(HttpStatusCode.InternalServerError, reply.Status);
        Assert.Contains("add gateway addresses", reply.Err);
        Assert.Contains("injected", reply.Err);
        Assert.Empty(host.SkeinLinkNames());
        Assert.Empty(host.Runtime.Driver.Networks);
        Assert.DoesNotContain(LinkNames.Bridge(net), host.FirewallRules());

        // Nothing was left in the store either: a restart finds no network.
        await host.RestartAsync();
        Assert.Empty(host.Runtime.Driver.Networks);
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        Assert.NotNull(host.Link(LinkNames.Bridge(net)));
    }

    [SkippableFact]
    public async Task A_failed_last_veth_step_removes_the_pair_and_the_endpoint_record()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        FaultyKernel? faulty = null;
        await using var host = await PluginTestHost.StartAsync(new SkeinRuntime.Overrides(WrapKernel: k => faulty = new FaultyKernel(k)));
        var net = NewId();
        var ep = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        var links = host.SkeinLinkNames();
        // The pair is created up and attached; make the attach step fail by failing SetMaster after a detach.
        faulty!.FailWhen = (op, link) => op == nameof(FaultyKernel.AddLink) && link == LinkNames.HostVeth(ep);

        var reply = await host.CallAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep));
        Assert.Equal(HttpStatusCode.InternalServerError, reply.Status);
        Assert.Contains("create the veth pair", reply.Err);
        Assert.Equal(links, host.SkeinLinkNames());
        Assert.Empty(host.Runtime.Driver.Endpoints);

        faulty.FailWhen = (_, _) => false;
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep));
        Assert.NotNull(host.Link(LinkNames.HostVeth(ep)));
    }

    [SkippableFact]
    public async Task A_failed_forwarding_step_after_the_address_undoes_address_and_bridge()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        FaultyKernel? faulty = null;
        await using var host = await PluginTestHost.StartAsync(new SkeinRuntime.Overrides(WrapKernel: k => faulty = new FaultyKernel(k)));
        var net = NewId();
        faulty!.FailWhen = (op, _) => op == nameof(FaultyKernel.SetIPv4DeviceConf);
        var reply = await host.CallAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        Assert.Equal(HttpStatusCode.InternalServerError, reply.Status);
        Assert.Contains("enable IPv4 forwarding", reply.Err);
        Assert.Empty(host.SkeinLinkNames());
    }

    [SkippableFact]
    public async Task A_firewall_refusal_deletes_the_bridge_that_was_already_built()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        RefusingFirewall? firewall = null;
        await using var host = await PluginTestHost.StartAsync(new SkeinRuntime.Overrides(WrapFirewall: f => firewall = new RefusingFirewall(f)));
        var net = NewId();
        firewall!.RefuseNetworks = true;
        var reply = await host.CallAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        Assert.Equal(HttpStatusCode.InternalServerError, reply.Status);
        Assert.Contains("program the firewall", reply.Err);
        Assert.Contains("iptables-restore", reply.Err);
        Assert.Empty(host.SkeinLinkNames());
        Assert.Empty(host.Runtime.Driver.Networks);
    }

    [SkippableFact]
    public async Task DeleteNetwork_never_refuses_even_when_the_kernel_does()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        FaultyKernel? faulty = null;
        await using var host = await PluginTestHost.StartAsync(new SkeinRuntime.Overrides(WrapKernel: k => faulty = new FaultyKernel(k)));
        var net = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        faulty!.FailWhen = (op, _) => op == nameof(FaultyKernel.DeleteLink);
        Assert.Equal("{}", (await host.CallOkAsync("NetworkDriver.DeleteNetwork", NetworkBody(net))).Body);
        Assert.Empty(host.Runtime.Driver.Networks);
        // The bridge the kernel refused to delete is an orphan now; the next reconciliation removes it.
        Assert.NotNull(host.Link(LinkNames.Bridge(net)));
        faulty.FailWhen = (_, _) => false;
        await host.Runtime.Driver.ReconcileAsync(CancellationToken.None);
        Assert.Empty(host.SkeinLinkNames());
    }

    private sealed class RefusingFirewall(IFirewall inner) : IFirewall
    {
        public bool RefuseNetworks { get; set; }
        public void EnsureBaseChains() => inner.EnsureBaseChains();
        public void ApplyNetwork(NetworkFirewall network)
        {
            if (RefuseNetworks)
                throw new FirewallCommandException("iptables-restore --noflush", 2, "iptables-restore: line 3 failed (injected by the test)");
            inner.ApplyNetwork(network);
        }
        public void RemoveNetwork(string bridgeName) => inner.RemoveNetwork(bridgeName);
        public void ApplyPortMappings(EndpointPorts endpoint) => inner.ApplyPortMappings(endpoint);
        public void RemovePortMappings(string endpointId) => inner.RemovePortMappings(endpointId);
        public void Reconcile(IReadOnlyCollection<NetworkFirewall> networks, IReadOnlyCollection<EndpointPorts> endpoints) => inner.Reconcile(networks, endpoints);
        public FirewallReport Inspect() => inner.Inspect();
    }
}
