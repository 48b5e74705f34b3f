using System.Net;
using System.Net.Sockets;
using System.Text;
using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.EndToEnd;

/// <summary>Forwarding, NAT and isolation with dockerd's own iptables in place (FORWARD policy DROP).</summary>
public class ConnectivityTests(TestHost host) : IClassFixture<TestHost>
{
    [SkippableFact]
    public async Task Published_tcp_and_udp_ports_are_reachable_from_outside_and_gone_after_removal()
    {
        host.RequireReady();
        await using var scope = host.Scope();
        var net = await scope.NetworkAsync("pub", "--subnet", "10.80.0.0/24");
        var server = await scope.RunAsync("srv", net, ["-p", "18081:80", "-p", "18082:53/udp"],
            "sh", "-c", "while true; do echo tcp-ok | nc -l -p 80; done");

        var tcp = await Shell.EventuallyAsync(async () =>
            (await host.OutsideAsync("busybox", "nc", "-w", "2", TestHost.HostIp, "18081")).Stdout.Contains("tcp-ok"), TimeSpan.FromSeconds(10));
        Assert.True(tcp, "tcp port 18081 not reachable from the outside namespace");

        // UDP: a listener inside the container's namespace, a sender in the outside one; the answer
        // proves the reverse translation too
        var pid = await host.DockerOkAsync("inspect", "-f", "{{.State.Pid}}", server);
        using var listener = NetnsSocket.Create($"/proc/{pid}/ns/net", SocketType.Dgram, ProtocolType.Udp);
        listener.Bind(new IPEndPoint(IPAddress.Any, 53));
        using var sender = NetnsSocket.Create($"/run/netns/{host.OutsideNetns}", SocketType.Dgram, ProtocolType.Udp);
        sender.Bind(new IPEndPoint(IPAddress.Any, 0));
        var udp = await Shell.EventuallyAsync(async () =>
        {
            await sender.SendToAsync("udp-ok"u8.ToArray(), new IPEndPoint(IPAddress.Parse(TestHost.HostIp), 18082));
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                var buffer = new byte[64];
                var got = await listener.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), wait.Token);
                if (Encoding.ASCII.GetString(buffer, 0, got.ReceivedBytes) != "udp-ok")
                    return false;
                await listener.SendToAsync("udp-back"u8.ToArray(), got.RemoteEndPoint);
                var back = await sender.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), wait.Token);
                return Encoding.ASCII.GetString(buffer, 0, back.ReceivedBytes) == "udp-back";
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(10));
        Assert.True(udp, "udp port 18082 not reachable from the outside namespace (or no answer came back)");

        await host.DockerOkAsync("rm", "-f", server);
        var after = await host.OutsideAsync("busybox", "nc", "-w", "2", TestHost.HostIp, "18081");
        Assert.DoesNotContain("tcp-ok", after.Stdout);
    }

    [SkippableFact]
    public async Task Egress_to_the_outside_works_and_internal_networks_are_blocked()
    {
        host.RequireReady();
        await using var scope = host.Scope();
        var open = await scope.NetworkAsync("open");
        var closed = await scope.NetworkAsync("closed", "--internal");
        var a = await scope.RunAsync("a", open);
        var b = await scope.RunAsync("b", closed);

        Assert.True(await scope.PingsAsync(a, TestHost.OutsideIp), "no egress from a skein network");
        // TCP out: the outside has no route back to container subnets, so this works only through masquerade
        var seen = await Shell.EventuallyAsync(async () =>
        {
            var listener = host.OutsideAsync("busybox", "timeout", "5", "busybox", "nc", "-l", "-p", "9099");
            await Task.Delay(300);
            await scope.ExecAsync(a, "sh", "-c", $"echo egress-ok | nc -w 2 {TestHost.OutsideIp} 9099");
            return (await listener).Stdout.Contains("egress-ok");
        }, TimeSpan.FromSeconds(15));
        Assert.True(seen, "TCP from a container to the outside failed");
        Assert.False((await scope.ExecAsync(b, "ping", "-c", "2", "-W", "1", TestHost.OutsideIp)).Ok, "an --internal network reached the outside");
        Assert.False((await scope.ExecAsync(b, "ping", "-c", "1", "-W", "1", TestHost.HostIp)).Ok, "an --internal network reached the host");
    }

    [SkippableFact]
    public async Task Two_skein_networks_are_isolated_from_each_other()
    {
        host.RequireReady();
        await using var scope = host.Scope();
        var netA = await scope.NetworkAsync("isoa");
        var netB = await scope.NetworkAsync("isob");
        var a1 = await scope.RunAsync("a1", netA);
        var a2 = await scope.RunAsync("a2", netA);
        var b1 = await scope.RunAsync("b1", netB);
        var ipA2 = await scope.IPv4Async(a2, netA);
        var ipB1 = await scope.IPv4Async(b1, netB);

        Assert.True(await scope.PingsAsync(a1, ipA2), "control: same-network ping failed");
        Assert.False((await scope.ExecAsync(a1, "ping", "-c", "2", "-W", "1", ipB1)).Ok, $"{a1} on {netA} reached {b1} on {netB}");
        Assert.False((await scope.ExecAsync(b1, "ping", "-c", "2", "-W", "1", ipA2)).Ok, $"{b1} on {netB} reached {a2} on {netA}");

        // and from Docker's own default bridge, both ways
        var onBridge = await scope.RunAsync("br", "bridge");
        var ipBridge = await scope.IPv4Async(onBridge, "bridge");
        Assert.False((await scope.ExecAsync(onBridge, "ping", "-c", "2", "-W", "1", ipA2)).Ok, $"a container on docker0 reached {a2} on {netA}");
        Assert.False((await scope.ExecAsync(a1, "ping", "-c", "2", "-W", "1", ipBridge)).Ok, $"{a1} on {netA} reached a container on docker0");
    }
}
