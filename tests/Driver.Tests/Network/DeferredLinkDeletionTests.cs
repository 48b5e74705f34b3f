using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Logging;
using Skein.Driver.Netlink;
using Skein.Driver.Network;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Network.Setup;
using Skein.Driver.Plugin;
using Skein.Driver.Tests.TestSupport;
using static Skein.Driver.Tests.TestSupport.TraceBodies;

namespace Skein.Driver.Tests.Network;

/// <summary>
/// Veth pairs are deleted after DeleteEndpoint is answered. The deleter alone (against a recording kernel), then
/// the driver against a scratch namespace: the answer does not wait, a pair wanted again under the same name is
/// never deleted by the old request, and a process that dies with deletions pending leaves no link after restart.
/// </summary>
public sealed class DeferredLinkDeletionTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Schedule_returns_before_the_deletion_which_then_runs_in_order()
    {
        using var gate = new SemaphoreSlim(0);
        var completed = new ConcurrentQueue<string>();
        var kernel = InterceptingKernel.Create(null, name =>
        {
            gate.Wait();
            completed.Enqueue(name);
            return true;
        });
        var deleter = new DeferredLinkDeleter(kernel.Kernel, NullLog());

        deleter.Schedule(["skv000000000001", "skc000000000001"], "endpoint one");
        Assert.Equal(1, deleter.Pending);
        Assert.False(deleter.WhenIdleAsync().IsCompleted);
        Assert.Empty(completed);

        gate.Release(2);
        await deleter.WhenIdleAsync().WaitAsync(Bound);
        Assert.Equal(["skv000000000001", "skc000000000001"], completed);
        Assert.Equal(["skv000000000001", "skc000000000001"], kernel.Deleted);
        Assert.Equal(0, deleter.Pending);
    }

    [Fact]
    public async Task A_queued_deletion_of_a_name_wanted_again_runs_at_once_in_the_caller()
    {
        using var firstEntered = new SemaphoreSlim(0);
        using var releaseFirst = new SemaphoreSlim(0);
        var kernel = InterceptingKernel.Create(null, name =>
        {
            if (name == "first")
            {
                firstEntered.Release();
                releaseFirst.Wait();
            }
            return true;
        });
        var deleter = new DeferredLinkDeleter(kernel.Kernel, NullLog());
        deleter.Schedule(["first"], "endpoint one");
        Assert.True(await firstEntered.WaitAsync(Bound), "the background deletion never started");
        deleter.Schedule(["x", "y"], "endpoint two");

        // The worker is stuck on "first"; the caller deletes x and y itself instead of waiting behind it.
        deleter.DeleteNowIfPending("y");
        Assert.Equal(["first", "x", "y"], kernel.Deleted);
        Assert.Equal(1, deleter.Pending);

        releaseFirst.Release();
        await deleter.WhenIdleAsync().WaitAsync(Bound);
        // Nothing was deleted twice: the taken-over batch is not run again by the worker.
        Assert.Equal(["first", "x", "y"], kernel.Deleted);
    }

    [Fact]
    public async Task A_name_whose_deletion_is_in_flight_is_waited_for()
    {
        using var entered = new SemaphoreSlim(0);
        using var release = new SemaphoreSlim(0);
        var kernel = InterceptingKernel.Create(null, name =>
        {
            entered.Release();
            release.Wait();
            return true;
        });
        var deleter = new DeferredLinkDeleter(kernel.Kernel, NullLog());
        deleter.Schedule(["x"], "endpoint one");
        Assert.True(await entered.WaitAsync(Bound), "the background deletion never started");

        var waiting = Task.Run(() => deleter.DeleteNowIfPending("x"));
        // It cannot finish while the deletion it waits for is held in the kernel call.
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted);
        release.Release();
        await waiting.WaitAsync(Bound);
        Assert.Equal(["x"], kernel.Deleted);
        await deleter.WhenIdleAsync().WaitAsync(Bound);
    }

    [Fact]
    public async Task A_failed_deletion_is_logged_and_the_rest_of_the_batch_still_runs()
    {
        var kernel = InterceptingKernel.Create(null, name => name == "bad"
            ? throw new NetlinkException(16, "delete link bad (injected by the test)", "device busy")
            : true);
        var lines = new ConcurrentQueue<string>();
        var deleter = new DeferredLinkDeleter(kernel.Kernel, new ListLogger(lines));
        deleter.Schedule(["bad", "good"], "endpoint one");
        await deleter.WhenIdleAsync().WaitAsync(Bound);
        Assert.Equal(["bad", "good"], kernel.Deleted);
        Assert.Contains(lines, l => l.Contains("bad", StringComparison.Ordinal) && l.Contains("endpoint one", StringComparison.Ordinal) && l.Contains("reconciler", StringComparison.Ordinal));
    }

    [Fact]
    public void Nothing_pending_means_nothing_is_touched()
    {
        var kernel = InterceptingKernel.Create(null, _ => throw new InvalidOperationException("no deletion expected"));
        var deleter = new DeferredLinkDeleter(kernel.Kernel, NullLog());
        deleter.DeleteNowIfPending("skv000000000001");
        Assert.True(deleter.WhenIdleAsync().IsCompleted);
        Assert.Empty(kernel.Deleted);
    }

    [SkippableFact]
    public async Task DeleteEndpoint_answers_before_the_pair_is_deleted_and_the_pair_goes_afterwards()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        using var release = new SemaphoreSlim(0);
        var net = NewId();
        var ep = NewId();
        await using var host = await PluginTestHost.StartAsync(new SkeinRuntime.Overrides(WrapKernel: k =>
            InterceptingKernel.Create(k, name =>
            {
                if (name == LinkNames.HostVeth(ep))
                    release.Wait();
                return k.DeleteLink(name);
            }).Kernel));
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep));

        await host.CallOkAsync("NetworkDriver.DeleteEndpoint", Endpoint(net, ep));
        // Answered and forgotten while the kernel deletion is still held back.
        Assert.Empty(host.Runtime.Driver.Endpoints);
        Assert.NotNull(host.Link(LinkNames.HostVeth(ep)));

        release.Release();
        await LinkWait.AssertGoneAsync(host, LinkNames.HostVeth(ep), LinkNames.ContainerVeth(ep));
        Assert.NotNull(host.Link(LinkNames.Bridge(net)));
    }

    [SkippableFact]
    public async Task A_pair_created_again_under_the_same_name_while_its_deletion_waits_is_not_deleted_later()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        using var release = new SemaphoreSlim(0);
        var net = NewId();
        var first = NewId();
        var again = NewId();
        await using var host = await PluginTestHost.StartAsync(new SkeinRuntime.Overrides(WrapKernel: k =>
            InterceptingKernel.Create(k, name =>
            {
                if (name == LinkNames.HostVeth(first))
                    release.Wait();
                return k.DeleteLink(name);
            }).Kernel));
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, first, "10.123.0.2/24", "02:42:0a:7b:00:02"));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, again, "10.123.0.3/24", "02:42:0a:7b:00:03"));

        // The background deleter is held on the first pair, so the second pair's deletion stays queued behind it
        // when the engine creates that endpoint again (its names are the same hash of the same id).
        await host.CallOkAsync("NetworkDriver.DeleteEndpoint", Endpoint(net, first));
        await host.CallOkAsync("NetworkDriver.DeleteEndpoint", Endpoint(net, again));
        var ifIndexBefore = host.Link(LinkNames.HostVeth(again))!["ifindex"]!.GetValue<int>();
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, again, "10.123.0.3/24", "02:42:0a:7b:00:03"));
        var recreated = host.Link(LinkNames.HostVeth(again))!;
        Assert.NotEqual(ifIndexBefore, recreated["ifindex"]!.GetValue<int>());

        release.Release();
        await LinkWait.AssertGoneAsync(host, LinkNames.HostVeth(first), LinkNames.ContainerVeth(first));
        await host.Runtime.Driver.ReconcileAsync(CancellationToken.None); // also waits for nothing; the pair must survive it
        var after = host.Link(LinkNames.HostVeth(again));
        Assert.NotNull(after);
        Assert.Equal(recreated["ifindex"]!.GetValue<int>(), after!["ifindex"]!.GetValue<int>());
        Assert.Equal(LinkNames.Bridge(net), after["master"]!.GetValue<string>());
        Assert.Equal("02:42:0a:7b:00:03", host.Link(LinkNames.ContainerVeth(again))!["address"]!.GetValue<string>());
    }

    [SkippableFact]
    public async Task A_process_that_dies_with_a_deletion_pending_leaves_no_link_after_restart()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        // Held until the test ends: as for a process killed before its background deletion ran.
        using var never = new SemaphoreSlim(0);
        var net = NewId();
        var ep = NewId();
        var other = NewId();
        var hostVeth = LinkNames.HostVeth(ep);
        await using var host = await PluginTestHost.StartAsync(new SkeinRuntime.Overrides(WrapKernel: k =>
            InterceptingKernel.Create(k, name =>
            {
                if (name == hostVeth)
                {
                    never.Wait();
                    throw new ObjectDisposedException("kernel", "the test's simulated crash");
                }
                return k.DeleteLink(name);
            }).Kernel));
        try
        {
            await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
            await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep, "10.123.0.2/24", "02:42:0a:7b:00:02"));
            await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, other, "10.123.0.3/24", "02:42:0a:7b:00:03"));
            await host.CallOkAsync("NetworkDriver.DeleteEndpoint", Endpoint(net, ep));
            Assert.NotNull(host.Link(hostVeth));

            await host.RestartAsync();

            // The record went before the answer, so the pair is nobody's: the reconciliation at start deletes it,
            // and leaves what records own.
            var names = host.LinkNames();
            Assert.DoesNotContain(hostVeth, names);
            Assert.DoesNotContain(LinkNames.ContainerVeth(ep), names);
            Assert.Contains(LinkNames.HostVeth(other), names);
            Assert.Contains(LinkNames.Bridge(net), names);
            Assert.Equal([other], host.Runtime.Driver.Endpoints.Select(e => e.EndpointId));
            // The same endpoint id can be created again.
            await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep, "10.123.0.2/24", "02:42:0a:7b:00:02"));
            Assert.Equal(LinkNames.Bridge(net), host.Link(hostVeth)!["master"]!.GetValue<string>());
        }
        finally
        {
            never.Release(); // the old runtime's deleter thread ends (its kernel is disposed; the call throws)
        }
    }

    private static ILogger NullLog() => Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    private sealed class ListLogger(ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue(formatter(state, exception));
    }
}

/// <summary>
/// An <see cref="IHostKernel"/> whose DeleteLink is the test's function (recorded in order) and whose other calls go
/// to an inner kernel, or fail when there is none. A proxy, so it follows the interface as it grows.
/// </summary>
public class InterceptingKernel : DispatchProxy
{
    private IHostKernel? _inner;
    private Func<string, bool> _deleteLink = _ => true;
    private readonly ConcurrentQueue<string> _deleted = new();

    public IHostKernel Kernel => (IHostKernel)(object)this;
    public IReadOnlyList<string> Deleted => [.. _deleted];

    public static InterceptingKernel Create(IHostKernel? inner, Func<string, bool> deleteLink)
    {
        var proxy = DispatchProxy.Create<IHostKernel, InterceptingKernel>();
        var self = (InterceptingKernel)(object)proxy;
        self._inner = inner;
        self._deleteLink = deleteLink;
        return self;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        if (targetMethod.Name == nameof(IHostKernel.DeleteLink))
        {
            var name = (string)args![0]!;
            _deleted.Enqueue(name);
            return _deleteLink(name);
        }
        if (_inner is null)
            throw new NotSupportedException($"{targetMethod.Name} is not expected in this test");
        try
        {
            return targetMethod.Invoke(_inner, args);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            ExceptionDispatchInfo.Capture(ex.InnerException).Throw();
            throw;
        }
    }
}
