using System.Net;
using System.Net.Sockets;
using Skein.Driver.Cli;
using Skein.Driver.Netlink;
using Skein.Driver.Network;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Plugin;
using Skein.Driver.Tests.TestSupport;
using Skein.Ipam;
using static Skein.Driver.Tests.TestSupport.TraceBodies;

namespace Skein.Driver.Tests.Plugin;

/// <summary>The socket's life: mode, stale files, a live owner, removal on exit, answering before start-up ends.</summary>
public sealed class PluginHostTests
{
    [SkippableFact]
    public async Task The_socket_is_0660_and_removed_on_shutdown()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, File.GetUnixFileMode(host.SocketPath));
        await host.StopHostAsync();
        Assert.False(File.Exists(host.SocketPath));
    }

    [SkippableFact]
    public async Task A_stale_socket_file_is_replaced_and_a_live_one_is_not_taken_over()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        await host.StopHostAsync();

        // A socket file left by a killed process: bound once, nobody listening. (.NET unlinks on Dispose, so
        // another process makes it and exits.)
        NetNsCommand.Run("python3", "-c", $"import socket; socket.socket(socket.AF_UNIX).bind('{host.SocketPath}')");
        Assert.True(File.Exists(host.SocketPath));
        await host.RestartAsync();
        Assert.Equal("""{"Implements":["NetworkDriver","IpamDriver"]}""", (await host.CallOkAsync("Plugin.Activate", null)).Body);

        // A second skein on the same socket refuses to start instead of stealing it.
        var second = await Assert.ThrowsAsync<SkeinException>(() => PluginHost.StartAsync(host.Host.Options with { StateDir = host.StateDir + "-second" }));
        Assert.Contains("already serving", second.Message);
        Assert.True((await host.CallAsync("Plugin.Activate", null)).Ok);
    }

    [SkippableFact]
    public async Task Activate_and_capabilities_answer_while_start_up_is_still_running()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        using var release = new ManualResetEventSlim(false);
        await using var host = await PluginTestHost.StartAsync(
            new SkeinRuntime.Overrides(WrapKernel: k => new SlowStartKernel(k, release)), waitReady: false);
        Assert.False(host.Host.Ready.IsCompleted);
        Assert.True((await host.CallAsync("Plugin.Activate", null)).Ok);
        Assert.True((await host.CallAsync("NetworkDriver.GetCapabilities", null)).Ok);
        Assert.True((await host.CallAsync("IpamDriver.GetCapabilities", null)).Ok);
        // Bad input is refused at once, before start-up is over.
        Assert.Equal(HttpStatusCode.BadRequest, (await host.CallAsync("NetworkDriver.CreateNetwork", "{}")).Status);

        var net = NewId();
        var create = host.CallAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        await Task.Delay(300);
        Assert.False(create.IsCompleted);
        release.Set();
        Assert.True((await create).Ok, (await create).ToString());
        Assert.NotNull(host.Link(LinkNames.Bridge(net)));
    }

    [SkippableFact]
    public async Task Periodic_reconciliation_rebuilds_a_bridge_deleted_while_running()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync(reconcileInterval: TimeSpan.FromMilliseconds(200));
        var net = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        host.Ns.Exec("ip", "link", "del", LinkNames.Bridge(net));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (host.Link(LinkNames.Bridge(net)) is null && DateTime.UtcNow < deadline)
            await Task.Delay(100);
        Assert.NotNull(host.Link(LinkNames.Bridge(net)));
        Assert.Equal(["10.123.0.1/24"], host.Addresses(LinkNames.Bridge(net)));
    }

    [SkippableFact]
    public async Task Status_lists_networks_and_endpoints_of_the_running_plugin()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep));
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(0, await StatusCommand.RunAsync(["--socket", host.SocketPath], output, error));
        var text = output.ToString();
        Assert.Contains("1 network(s), 1 endpoint(s)", text);
        Assert.Contains(LinkNames.Bridge(net), text);
        Assert.Contains(LinkNames.HostVeth(ep), text);
        Assert.Contains("10.123.0.2/24", text);

        // Stopped: the records are read from the state directory instead.
        await host.StopHostAsync();
        var offline = new StringWriter();
        Assert.Equal(0, await StatusCommand.RunAsync(["--socket", host.SocketPath, "--state-dir", host.StateDir], offline, error));
        Assert.Contains("no skein answers", error.ToString());
        Assert.Contains(LinkNames.HostVeth(ep), offline.ToString());
        Assert.Equal(1, await StatusCommand.RunAsync(["--socket", host.SocketPath, "--state-dir", host.StateDir + "-none"], new StringWriter(), error));
    }

    [SkippableFact]
    public async Task Doctor_reports_the_namespace_settings_and_the_firewall()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        host.Ns.Exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=0");
        var output = new StringWriter();
        var code = await DoctorCommand.RunAsync(["--netns", host.Ns.Path], output, new StringWriter());
        var text = output.ToString();
        Assert.Equal(1, code);
        Assert.Contains("net.ipv4.ip_forward", text);
        Assert.Contains("PROBLEM net.ipv4.ip_forward", text);
        Assert.Contains("iptables", text);
    }

    /// <summary>Holds start-up in the reconciliation's first kernel read until the test lets it go.</summary>
    private sealed class SlowStartKernel(IHostKernel inner, ManualResetEventSlim release) : IHostKernel
    {
        public Link? GetLink(string name) => inner.GetLink(name);
        public IReadOnlyList<Link> ListLinks()
        {
            release.Wait(TimeSpan.FromSeconds(30));
            return inner.ListLinks();
        }
        public void AddLink(LinkSpec spec) => inner.AddLink(spec);
        public bool DeleteLink(string name) => inner.DeleteLink(name);
        public void SetLinkUp(int index) => inner.SetLinkUp(index);
        public void SetMtu(int index, int mtu) => inner.SetMtu(index, mtu);
        public void SetMaster(int index, int masterIndex) => inner.SetMaster(index, masterIndex);
        public bool GetHairpin(int index) => inner.GetHairpin(index);
        public void SetHairpin(int index, bool on) => inner.SetHairpin(index, on);
        public IReadOnlyList<AddressInfo> ListAddresses(int index) => inner.ListAddresses(index);
        public void AddAddress(int index, IpPrefix address, AddressFlags flags) => inner.AddAddress(index, address, flags);
        public void DeleteAddress(int index, IpPrefix address) => inner.DeleteAddress(index, address);
        public void SetIPv4DeviceConf(int index, IPv4DeviceConf key, int value) => inner.SetIPv4DeviceConf(index, key, value);
        public int GetIPv4DeviceConf(int index, IPv4DeviceConf key) => inner.GetIPv4DeviceConf(index, key);
        public string? TryReadSysctl(string key) => inner.TryReadSysctl(key);
        public IReadOnlyList<AddressInfo> ListAllAddresses() => inner.ListAllAddresses();
        public BridgePortSettings GetBridgePortSettings(int index) => inner.GetBridgePortSettings(index);
        public void SetBridgePortSettings(int index, BridgePortSettings settings) => inner.SetBridgePortSettings(index, settings);
        public IPv6AddressGenerationMode? GetIPv6AddressGenerationMode(int index) => inner.GetIPv6AddressGenerationMode(index);
        public void SetIPv6AddressGenerationMode(int index, IPv6AddressGenerationMode mode) => inner.SetIPv6AddressGenerationMode(index, mode);
        public IReadOnlyList<FdbEntry> ListFdb(int index) => inner.ListFdb(index);
        public void AppendFdb(FdbEntry entry) => inner.AppendFdb(entry);
        public void ReplaceFdb(FdbEntry entry) => inner.ReplaceFdb(entry);
        public bool DeleteFdb(FdbEntry entry) => inner.DeleteFdb(entry);
        public IReadOnlyList<Neighbor> ListNeighbors(int index) => inner.ListNeighbors(index);
        public void ReplaceNeighbor(Neighbor neighbor) => inner.ReplaceNeighbor(neighbor);
        public bool DeleteNeighbor(Neighbor neighbor) => inner.DeleteNeighbor(neighbor);
        public IReadOnlyList<ClsactQdisc> ListClsactQdiscs() => inner.ListClsactQdiscs();
        public void AddClsactQdisc(int index, uint ingressBlock) => inner.AddClsactQdisc(index, ingressBlock);
        public bool DeleteClsactQdisc(int index) => inner.DeleteClsactQdisc(index);
        public IReadOnlyList<MacRedirectFilter> ListFilters(FilterAttachment at) => inner.ListFilters(at);
        public void AddMacRedirect(FilterAttachment at, MacRedirectFilter filter, uint hashTable) => inner.AddMacRedirect(at, filter, hashTable);
        public void AddMacHashTable(FilterAttachment at, ushort priority, uint table) => inner.AddMacHashTable(at, priority, table);
        public bool DeleteFilterPriority(FilterAttachment at, ushort priority, ushort protocol) => inner.DeleteFilterPriority(at, priority, protocol);
        public bool DeleteFilter(FilterAttachment at, MacRedirectFilter filter) => inner.DeleteFilter(at, filter);
        public void Dispose() => inner.Dispose();
    }
}
