using System.Text;
using Skein.Ipam.Store;

namespace Skein.Ipam.Tests.Store;

/// <summary>
/// The contract of cluster-store §4.3/§4.15, run alike against every backend. Each test gets a
/// fresh store (an empty root prefix on a shared server for Consul/etcd). Keys are relative.
/// </summary>
public abstract class StoreConformanceTests : IAsyncLifetime
{
    private IClusterStore? _store;

    /// <summary>The store under test; skips the test when the backend is not available here.</summary>
    protected IClusterStore Store
    {
        get
        {
            Skip.If(_store is null, UnavailableReason ?? "store was not opened");
            return _store!;
        }
    }

    /// <summary>Why this backend cannot be tested on this machine (e.g. no etcd binary); null when it can.</summary>
    protected virtual string? UnavailableReason => null;

    /// <summary>A fresh, empty store for one test.</summary>
    protected abstract Task<IClusterStore> OpenStoreAsync();

    /// <summary>
    /// Kills the store-side object behind a liveness without the client's help (Consul session
    /// invalidated by the server, etcd lease revoked by someone else). Null: the backend has no such thing.
    /// </summary>
    protected virtual Func<ILiveness, Task>? KillLivenessServerSide => null;

    /// <summary>A second client on the same data, as another process or host would have; null when the backend is single-process.</summary>
    protected virtual Task<IClusterStore?> OpenSecondClientAsync() => Task.FromResult<IClusterStore?>(null);

    /// <summary>Liveness settings for tests: short enough to notice loss quickly.</summary>
    protected virtual LivenessOptions TestLiveness => new(TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200), "conformance");

    public async Task InitializeAsync()
    {
        if (UnavailableReason is null)
            _store = await OpenStoreAsync();
    }

    public virtual async Task DisposeAsync()
    {
        if (_store is not null)
            await _store.DisposeAsync();
    }

    protected static ReadOnlyMemory<byte> Bytes(string text) => Encoding.UTF8.GetBytes(text);

    protected static string Text(KvEntry? entry) => entry is null ? "<absent>" : Encoding.UTF8.GetString(entry.Value.Span);

    private static CancellationToken Timeout(int seconds = 30) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;

    // ---- reads -------------------------------------------------------------------------------

    [SkippableFact]
    public async Task Get_of_an_absent_key_is_null()
    {
        Assert.Null(await Store.GetAsync("nodes/missing", Timeout()));
    }

    [SkippableFact]
    public async Task Unconditional_put_then_get_returns_value_and_versions()
    {
        var put = await Store.PutAsync("nodes/n1", Bytes("one"), Precondition.None, ephemeral: false, Timeout());
        Assert.Equal(WriteOutcome.Applied, put.Outcome);
        Assert.True(put.NewVersion > 0);

        var entry = await Store.GetAsync("nodes/n1", Timeout());
        Assert.NotNull(entry);
        Assert.Equal("nodes/n1", entry.Key);
        Assert.Equal("one", Text(entry));
        Assert.Equal(put.NewVersion, entry.Version);
        Assert.Equal(put.NewVersion, entry.CreateVersion);
        Assert.False(entry.Ephemeral);

        var again = await Store.PutAsync("nodes/n1", Bytes("two"), Precondition.None, ephemeral: false, Timeout());
        Assert.True(again.NewVersion > put.NewVersion);
        var updated = await Store.GetAsync("nodes/n1", Timeout());
        Assert.Equal("two", Text(updated));
        Assert.Equal(again.NewVersion, updated!.Version);
        Assert.Equal(put.NewVersion, updated.CreateVersion);
    }

    [SkippableFact]
    public async Task Values_are_binary_safe_including_empty()
    {
        var all = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        await Store.PutAsync("bin/all", all, Precondition.None, false, Timeout());
        await Store.PutAsync("bin/empty", ReadOnlyMemory<byte>.Empty, Precondition.None, false, Timeout());

        Assert.Equal(all, (await Store.GetAsync("bin/all", Timeout()))!.Value.ToArray());
        var empty = await Store.GetAsync("bin/empty", Timeout());
        Assert.NotNull(empty);
        Assert.Equal(0, empty.Value.Length);

        var (listed, _) = await Store.ListAsync("bin/", keysOnly: false, Timeout());
        Assert.Equal(all, listed.Single(e => e.Key == "bin/all").Value.ToArray());
    }

    // ---- preconditions -----------------------------------------------------------------------

    [SkippableFact]
    public async Task Create_if_absent_succeeds_once_then_conflicts_with_the_current_entry()
    {
        var first = await Store.PutAsync("vnis/4097", Bytes("blue"), Precondition.Absent, false, Timeout());
        Assert.Equal(WriteOutcome.Applied, first.Outcome);

        var second = await Store.PutAsync("vnis/4097", Bytes("red"), Precondition.Absent, false, Timeout());
        Assert.Equal(WriteOutcome.Conflict, second.Outcome);
        Assert.NotNull(second.Current);
        Assert.Equal("blue", Text(second.Current));
        Assert.Equal(first.NewVersion, second.Current.Version);
        Assert.Equal("blue", Text(await Store.GetAsync("vnis/4097", Timeout())));
    }

    [SkippableFact]
    public async Task Stale_version_conflicts_and_current_version_applies()
    {
        var v1 = (await Store.PutAsync("pools/a", Bytes("1"), Precondition.None, false, Timeout())).NewVersion;
        var v2 = (await Store.PutAsync("pools/a", Bytes("2"), Precondition.VersionIs(v1), false, Timeout())).NewVersion;
        Assert.True(v2 > v1);

        var stale = await Store.PutAsync("pools/a", Bytes("stale"), Precondition.VersionIs(v1), false, Timeout());
        Assert.Equal(WriteOutcome.Conflict, stale.Outcome);
        Assert.Equal(v2, stale.Current!.Version);
        Assert.Equal("2", Text(stale.Current));

        var fresh = await Store.PutAsync("pools/a", Bytes("3"), Precondition.VersionIs(v2), false, Timeout());
        Assert.Equal(WriteOutcome.Applied, fresh.Outcome);
        var entry = await Store.GetAsync("pools/a", Timeout());
        Assert.Equal("3", Text(entry));
        Assert.Equal(v1, entry!.CreateVersion);
    }

    [SkippableFact]
    public async Task Version_precondition_on_an_absent_key_conflicts_without_current()
    {
        var result = await Store.PutAsync("pools/none", Bytes("x"), Precondition.VersionIs(5), false, Timeout());
        Assert.Equal(WriteOutcome.Conflict, result.Outcome);
        Assert.Null(result.Current);
        Assert.Null(await Store.GetAsync("pools/none", Timeout()));
    }

    [SkippableFact]
    public async Task Delete_reports_applied_conflict_and_already_absent()
    {
        Assert.Equal(WriteOutcome.AlreadyAbsent, (await Store.DeleteAsync("d/missing", Precondition.VersionIs(7), Timeout())).Outcome);
        Assert.Equal(WriteOutcome.AlreadyAbsent, (await Store.DeleteAsync("d/missing", Precondition.None, Timeout())).Outcome);

        var v1 = (await Store.PutAsync("d/k", Bytes("1"), Precondition.None, false, Timeout())).NewVersion;
        var v2 = (await Store.PutAsync("d/k", Bytes("2"), Precondition.None, false, Timeout())).NewVersion;

        var stale = await Store.DeleteAsync("d/k", Precondition.VersionIs(v1), Timeout());
        Assert.Equal(WriteOutcome.Conflict, stale.Outcome);
        Assert.Equal(v2, stale.Current!.Version);
        Assert.NotNull(await Store.GetAsync("d/k", Timeout()));

        Assert.Equal(WriteOutcome.Applied, (await Store.DeleteAsync("d/k", Precondition.VersionIs(v2), Timeout())).Outcome);
        Assert.Null(await Store.GetAsync("d/k", Timeout()));
        Assert.Equal(WriteOutcome.AlreadyAbsent, (await Store.DeleteAsync("d/k", Precondition.VersionIs(v2), Timeout())).Outcome);

        await Store.PutAsync("d/u", Bytes("u"), Precondition.None, false, Timeout());
        Assert.Equal(WriteOutcome.Applied, (await Store.DeleteAsync("d/u", Precondition.None, Timeout())).Outcome);
        Assert.Null(await Store.GetAsync("d/u", Timeout()));
    }

    [SkippableFact]
    public async Task Recreated_key_gets_a_new_create_version()
    {
        var first = await Store.PutAsync("r/k", Bytes("1"), Precondition.Absent, false, Timeout());
        await Store.DeleteAsync("r/k", Precondition.VersionIs(first.NewVersion), Timeout());
        var second = await Store.PutAsync("r/k", Bytes("2"), Precondition.Absent, false, Timeout());
        Assert.Equal(WriteOutcome.Applied, second.Outcome);
        var entry = await Store.GetAsync("r/k", Timeout());
        Assert.True(entry!.CreateVersion > first.NewVersion);
        Assert.Equal(second.NewVersion, entry.CreateVersion);
    }

    // ---- transactions ------------------------------------------------------------------------

    [SkippableFact]
    public async Task Transaction_is_all_or_nothing_and_names_the_failing_operation()
    {
        var guard = (await Store.PutAsync("t/guard", Bytes("g"), Precondition.None, false, Timeout())).NewVersion;
        await Store.PutAsync("t/doomed", Bytes("keep"), Precondition.None, false, Timeout());

        var failed = await Store.CommitAsync(
        [
            new TxnOp.Put("t/a", Bytes("a"), Precondition.Absent),
            new TxnOp.Delete("t/doomed", Precondition.None),
            new TxnOp.Check("t/guard", Precondition.VersionIs(guard + 1000)),
            new TxnOp.Put("t/b", Bytes("b"), Precondition.None),
        ], Timeout());
        Assert.False(failed.Applied);
        Assert.Equal(2, failed.FailedOpIndex);
        Assert.Null(await Store.GetAsync("t/a", Timeout()));
        Assert.Null(await Store.GetAsync("t/b", Timeout()));
        Assert.Equal("keep", Text(await Store.GetAsync("t/doomed", Timeout())));

        var applied = await Store.CommitAsync(
        [
            new TxnOp.Put("t/a", Bytes("a"), Precondition.Absent),
            new TxnOp.Delete("t/doomed", Precondition.None),
            new TxnOp.Check("t/guard", Precondition.VersionIs(guard)),
            new TxnOp.Put("t/b", Bytes("b"), Precondition.None),
        ], Timeout());
        Assert.True(applied.Applied);
        Assert.Equal(-1, applied.FailedOpIndex);
        Assert.Equal(4, applied.NewVersions.Count);
        Assert.True(applied.NewVersions[0] > guard);
        Assert.Equal(0, applied.NewVersions[1]);
        Assert.Equal(0, applied.NewVersions[2]);
        Assert.Equal((await Store.GetAsync("t/a", Timeout()))!.Version, applied.NewVersions[0]);
        Assert.Equal((await Store.GetAsync("t/b", Timeout()))!.Version, applied.NewVersions[3]);
        Assert.Null(await Store.GetAsync("t/doomed", Timeout()));
    }

    [SkippableFact]
    public async Task Transaction_reports_the_first_failing_precondition_of_each_kind()
    {
        var v = (await Store.PutAsync("t2/exists", Bytes("x"), Precondition.None, false, Timeout())).NewVersion;

        var absentFails = await Store.CommitAsync(
            [new TxnOp.Check("t2/missing", Precondition.Absent), new TxnOp.Put("t2/exists", Bytes("y"), Precondition.Absent)], Timeout());
        Assert.Equal((false, 1), (absentFails.Applied, absentFails.FailedOpIndex));

        var versionOnMissing = await Store.CommitAsync(
            [new TxnOp.Delete("t2/missing", Precondition.VersionIs(v))], Timeout());
        Assert.Equal((false, 0), (versionOnMissing.Applied, versionOnMissing.FailedOpIndex));

        var checkThenWriteSameKey = await Store.CommitAsync(
            [new TxnOp.Check("t2/exists", Precondition.VersionIs(v)), new TxnOp.Put("t2/exists", Bytes("z"), Precondition.VersionIs(v))], Timeout());
        Assert.True(checkThenWriteSameKey.Applied);
        Assert.Equal("z", Text(await Store.GetAsync("t2/exists", Timeout())));
    }

    // ---- listing -----------------------------------------------------------------------------

    [SkippableFact]
    public async Task List_respects_prefix_boundaries_order_keys_only_and_revision()
    {
        await Store.PutAsync("a/2", Bytes("two"), Precondition.None, false, Timeout());
        await Store.PutAsync("a/1", Bytes("one"), Precondition.None, false, Timeout());
        await Store.PutAsync("a/sub/3", Bytes("three"), Precondition.None, false, Timeout());
        var last = (await Store.PutAsync("ab/1", Bytes("other"), Precondition.None, false, Timeout())).NewVersion;

        var (entries, revision) = await Store.ListAsync("a/", keysOnly: false, Timeout());
        Assert.Equal(["a/1", "a/2", "a/sub/3"], entries.Select(e => e.Key));
        Assert.Equal(["one", "two", "three"], entries.Select(e => Text(e)));
        Assert.True(revision >= entries.Max(e => e.Version));
        Assert.True(entries.All(e => e.Version > 0));

        var (keys, _) = await Store.ListAsync("a/", keysOnly: true, Timeout());
        Assert.Equal(["a/1", "a/2", "a/sub/3"], keys.Select(e => e.Key));

        var (everything, all) = await Store.ListAsync("", keysOnly: true, Timeout());
        Assert.Equal(4, everything.Count);
        Assert.True(all >= last);

        var (none, _) = await Store.ListAsync("nothing/", keysOnly: false, Timeout());
        Assert.Empty(none);
    }

    // ---- watches -----------------------------------------------------------------------------

    [SkippableFact]
    public async Task Watch_starts_with_a_snapshot_then_delivers_changes_in_order()
    {
        await Store.PutAsync("w/existing", Bytes("e"), Precondition.None, false, Timeout());
        await Store.PutAsync("wx/outside", Bytes("o"), Precondition.None, false, Timeout());

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var watch = Store.WatchPrefixAsync("w/", cts.Token).GetAsyncEnumerator(cts.Token);
        var snapshot = Assert.IsType<WatchUpdate.Snapshot>(await NextAsync(watch));
        Assert.Equal(["w/existing"], snapshot.Entries.Keys);
        Assert.Equal("e", Text(snapshot.Entries["w/existing"]));

        var expected = new Dictionary<string, string?>();
        for (var i = 0; i < 10; i++)
        {
            await Store.PutAsync($"w/k{i}", Bytes($"v{i}"), Precondition.None, false, Timeout());
            expected[$"w/k{i}"] = $"v{i}";
        }
        await Store.PutAsync("wx/outside", Bytes("o2"), Precondition.None, false, Timeout());
        await Store.DeleteAsync("w/existing", Precondition.None, Timeout());
        expected["w/existing"] = null;
        var lastVersion = (await Store.PutAsync("w/k0", Bytes("final"), Precondition.None, false, Timeout())).NewVersion;
        expected["w/k0"] = "final";

        // Consumers must tolerate coalescing (Consul) and re-snapshots: fold everything into a view.
        var view = snapshot.Entries.ToDictionary(e => e.Key, e => (string?)Text(e.Value));
        var versionsSeen = new List<long>();
        while (!ViewMatches(view, expected))
        {
            switch (await NextAsync(watch))
            {
                case WatchUpdate.Snapshot s:
                    view = s.Entries.ToDictionary(e => e.Key, e => (string?)Text(e.Value));
                    break;
                case WatchUpdate.Upsert u:
                    Assert.StartsWith("w/", u.Entry.Key);
                    versionsSeen.Add(u.Entry.Version);
                    view[u.Entry.Key] = Text(u.Entry);
                    break;
                case WatchUpdate.Removed r:
                    Assert.StartsWith("w/", r.Key);
                    view.Remove(r.Key);
                    break;
            }
        }
        Assert.Equal(versionsSeen.Order(), versionsSeen);
        Assert.Contains(lastVersion, versionsSeen);
    }

    [SkippableFact]
    public async Task Watch_reports_deletions_as_removed()
    {
        await Store.PutAsync("wd/a", Bytes("a"), Precondition.None, false, Timeout());
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var watch = Store.WatchPrefixAsync("wd/", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.IsType<WatchUpdate.Snapshot>(await NextAsync(watch));

        await Store.DeleteAsync("wd/a", Precondition.None, Timeout());
        var removed = Assert.IsType<WatchUpdate.Removed>(await NextIgnoringEmptyResnapshotsAsync(watch));
        Assert.Equal("wd/a", removed.Key);
        Assert.True(removed.Revision > 0);
    }

    [SkippableFact]
    public async Task Cancelling_a_watch_ends_it_with_OperationCanceledException()
    {
        using var cts = new CancellationTokenSource();
        var watch = Store.WatchPrefixAsync("c/", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.IsType<WatchUpdate.Snapshot>(await NextAsync(watch));
        var pending = watch.MoveNextAsync().AsTask();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending.WaitAsync(WatchTestHelpers.WatchTimeout));
        await watch.DisposeAsync();
    }

    [SkippableFact]
    public async Task Disposing_the_store_ends_its_watches()
    {
        var watch = Store.WatchPrefixAsync("c/", CancellationToken.None).GetAsyncEnumerator();
        Assert.IsType<WatchUpdate.Snapshot>(await NextAsync(watch));
        var pending = watch.MoveNextAsync().AsTask();
        await Store.DisposeAsync();
        Assert.False(await pending.WaitAsync(WatchTestHelpers.WatchTimeout));
        await watch.DisposeAsync();
    }

    private static bool ViewMatches(Dictionary<string, string?> view, Dictionary<string, string?> expected) =>
        expected.All(e => e.Value is null ? !view.ContainsKey(e.Key) : view.TryGetValue(e.Key, out var v) && v == e.Value);

    protected static Task<WatchUpdate> NextAsync(IAsyncEnumerator<WatchUpdate> watch) => WatchTestHelpers.NextAsync(watch);

    private static async Task<WatchUpdate> NextIgnoringEmptyResnapshotsAsync(IAsyncEnumerator<WatchUpdate> watch)
    {
        while (true)
        {
            var update = await NextAsync(watch);
            if (update is WatchUpdate.Snapshot { Entries.Count: > 0 })
                return update;
            if (update is not WatchUpdate.Snapshot)
                return update;
        }
    }

    // ---- ephemeral keys ----------------------------------------------------------------------

    [SkippableFact]
    public async Task Ephemeral_write_without_liveness_is_refused()
    {
        await Assert.ThrowsAsync<LivenessLostException>(() => Store.PutAsync("peers/x/n1", Bytes("p"), Precondition.None, ephemeral: true, Timeout()));
        Assert.Null(await Store.GetAsync("peers/x/n1", Timeout()));
    }

    [SkippableFact]
    public async Task Ephemeral_keys_vanish_when_the_liveness_ends_and_persistent_keys_stay()
    {
        var liveness = await Store.StartLivenessAsync(TestLiveness, Timeout());
        Assert.False(string.IsNullOrEmpty(liveness.Id));
        var put = await Store.PutAsync("peers/net/n1", Bytes("vtep"), Precondition.Absent, ephemeral: true, Timeout());
        Assert.Equal(WriteOutcome.Applied, put.Outcome);
        var update = await Store.PutAsync("peers/net/n1", Bytes("vtep2"), Precondition.VersionIs(put.NewVersion), ephemeral: true, Timeout());
        Assert.Equal(WriteOutcome.Applied, update.Outcome);
        await Store.CommitAsync([new TxnOp.Put("peers/net/n1/e1", Bytes("ep"), Precondition.Absent, Ephemeral: true)], Timeout());
        await Store.PutAsync("peers/net/persistent", Bytes("stays"), Precondition.None, ephemeral: false, Timeout());

        var entry = await Store.GetAsync("peers/net/n1", Timeout());
        Assert.True(entry!.Ephemeral);
        Assert.Equal("vtep2", Text(entry));
        Assert.False((await Store.GetAsync("peers/net/persistent", Timeout()))!.Ephemeral);

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var watch = Store.WatchPrefixAsync("peers/net/", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.Equal(3, Assert.IsType<WatchUpdate.Snapshot>(await NextAsync(watch)).Entries.Count);

        await liveness.DisposeAsync();

        Assert.Null(await Store.GetAsync("peers/net/n1", Timeout()));
        Assert.Null(await Store.GetAsync("peers/net/n1/e1", Timeout()));
        Assert.Equal("stays", Text(await Store.GetAsync("peers/net/persistent", Timeout())));
        var removed = new HashSet<string>();
        while (removed.Count < 2)
        {
            switch (await NextAsync(watch))
            {
                case WatchUpdate.Removed r: removed.Add(r.Key); break;
                case WatchUpdate.Snapshot s when !s.Entries.ContainsKey("peers/net/n1") && !s.Entries.ContainsKey("peers/net/n1/e1"):
                    removed.UnionWith(["peers/net/n1", "peers/net/n1/e1"]);
                    break;
            }
        }
        Assert.Equal(["peers/net/n1", "peers/net/n1/e1"], removed.Order());
    }

    [SkippableFact]
    public async Task A_persistent_put_over_an_own_ephemeral_key_makes_it_persistent()
    {
        var liveness = await Store.StartLivenessAsync(TestLiveness, Timeout());
        await Store.PutAsync("flip/k", Bytes("ephemeral"), Precondition.Absent, ephemeral: true, Timeout());
        var persistent = await Store.PutAsync("flip/k", Bytes("persistent"), Precondition.None, ephemeral: false, Timeout());
        var entry = await Store.GetAsync("flip/k", Timeout());
        Assert.False(entry!.Ephemeral);
        Assert.Equal(persistent.NewVersion, entry.Version);

        var txn = await Store.CommitAsync([new TxnOp.Put("flip/t", Bytes("e"), Precondition.Absent, Ephemeral: true)], Timeout());
        var flipped = await Store.CommitAsync([new TxnOp.Put("flip/t", Bytes("p"), Precondition.VersionIs(txn.NewVersions[0]))], Timeout());
        Assert.Equal((await Store.GetAsync("flip/t", Timeout()))!.Version, flipped.NewVersions[0]);

        await liveness.DisposeAsync();
        Assert.Equal("persistent", Text(await Store.GetAsync("flip/k", Timeout())));
        Assert.Equal("p", Text(await Store.GetAsync("flip/t", Timeout())));
    }

    [SkippableFact]
    public async Task Liveness_lost_server_side_is_recreated_and_owner_republishes()
    {
        var kill = KillLivenessServerSide;
        Skip.If(kill is null, "this backend's liveness is the process itself; it cannot be lost while the process runs");

        var liveness = await Store.StartLivenessAsync(TestLiveness, Timeout());
        var republished = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        liveness.Recreated += async (l, ct) =>
        {
            var result = await Store.PutAsync("nodes/n1", Bytes("again"), Precondition.None, ephemeral: true, ct);
            if (result.Outcome == WriteOutcome.Applied)
                republished.TrySetResult(l.Generation);
            else
                republished.TrySetException(new Xunit.Sdk.XunitException($"re-publication after recreation: {result.Outcome}, current {Text(result.Current)}"));
        };
        await Store.PutAsync("nodes/n1", Bytes("first"), Precondition.Absent, ephemeral: true, Timeout());
        var firstId = liveness.Id;

        await kill(liveness);

        var generation = await republished.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(1, generation);
        Assert.NotEqual(firstId, liveness.Id);
        var entry = await Store.GetAsync("nodes/n1", Timeout());
        Assert.Equal("again", Text(entry));
        Assert.True(entry!.Ephemeral);
        await liveness.DisposeAsync();
        Assert.Null(await Store.GetAsync("nodes/n1", Timeout()));
    }

    [SkippableFact]
    public async Task Previous_incarnations_liveness_is_destroyed_when_the_next_one_starts()
    {
        var previousProcess = await OpenSecondClientAsync();
        Skip.If(previousProcess is null, "single-process backend: a previous incarnation's ephemeral keys are dropped on open");
        var old = await previousProcess.StartLivenessAsync(TestLiveness, Timeout());
        await previousProcess.PutAsync("nodes/n1", Bytes("old incarnation"), Precondition.Absent, ephemeral: true, Timeout());
        await previousProcess.PutAsync("nodes/n1/persistent", Bytes("stays"), Precondition.Absent, ephemeral: false, Timeout());

        // The new incarnation starts with the id the old one left on disk.
        await using var liveness = await Store.StartLivenessAsync(TestLiveness with { PreviousId = old.Id }, Timeout());
        Assert.NotEqual(old.Id, liveness.Id);
        Assert.Null(await Store.GetAsync("nodes/n1", Timeout()));
        Assert.Equal(WriteOutcome.Applied, (await Store.PutAsync("nodes/n1", Bytes("new incarnation"), Precondition.Absent, ephemeral: true, Timeout())).Outcome);
        Assert.Equal("stays", Text(await Store.GetAsync("nodes/n1/persistent", Timeout())));

        // The old process going away for good must not take the new incarnation's keys with it.
        await previousProcess.DisposeAsync();
        Assert.Equal("new incarnation", Text(await Store.GetAsync("nodes/n1", Timeout())));
    }

    [SkippableFact]
    public async Task Writes_of_another_client_reach_this_clients_watch_and_conditions()
    {
        var other = await OpenSecondClientAsync();
        Skip.If(other is null, "single-process backend");
        await using (other)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await using var watch = Store.WatchPrefixAsync("shared/", cts.Token).GetAsyncEnumerator(cts.Token);
            Assert.Empty(Assert.IsType<WatchUpdate.Snapshot>(await NextAsync(watch)).Entries);

            var theirs = await other.PutAsync("shared/k", Bytes("theirs"), Precondition.Absent, false, Timeout());
            var seen = Assert.IsType<WatchUpdate.Upsert>(await NextAsync(watch));
            Assert.Equal(("shared/k", theirs.NewVersion), (seen.Entry.Key, seen.Entry.Version));
            var mine = await Store.PutAsync("shared/k", Bytes("mine"), Precondition.Absent, false, Timeout());
            Assert.Equal(WriteOutcome.Conflict, mine.Outcome);
            Assert.Equal("theirs", Text(mine.Current));
        }
    }

    // ---- limits and bad input ----------------------------------------------------------------

    [SkippableFact]
    public async Task Limits_and_bad_keys_are_refused_before_anything_changes()
    {
        var limits = Store.Limits;
        Assert.Equal(64, limits.MaxTxnOps);
        var revisionBefore = (await Store.ListAsync("", true, Timeout())).Revision;

        await Assert.ThrowsAsync<StoreRejectedException>(() => Store.PutAsync(new string('k', limits.MaxKeyBytes + 1), Bytes("x"), Precondition.None, false, Timeout()));
        await Assert.ThrowsAsync<StoreRejectedException>(() => Store.PutAsync("big/v", new byte[limits.MaxValueBytes + 1], Precondition.None, false, Timeout()));
        foreach (var bad in new[] { "/lead", "trail/", "a//b", "Upper", "sp ace", "colon:x", "a/../b", "" })
        {
            var e = await Assert.ThrowsAsync<StoreRejectedException>(() => Store.PutAsync(bad, Bytes("x"), Precondition.None, false, Timeout()));
            Assert.Contains("store key", e.Message);
        }
        await Assert.ThrowsAsync<StoreRejectedException>(() => Store.ListAsync("/x", false, Timeout()));
        await Assert.ThrowsAsync<StoreRejectedException>(() => Store.PutAsync("v/zero", Bytes("x"), Precondition.VersionIs(0), false, Timeout()));

        var tooMany = Enumerable.Range(0, limits.MaxTxnOps + 1).Select(i => (TxnOp)new TxnOp.Put($"many/{i}", Bytes("x"), Precondition.None)).ToList();
        var tooManyError = await Assert.ThrowsAsync<StoreRejectedException>(() => Store.CommitAsync(tooMany, Timeout()));
        Assert.Contains($"{limits.MaxTxnOps + 1} operations", tooManyError.Message);
        await Assert.ThrowsAsync<StoreRejectedException>(() => Store.CommitAsync(
            [new TxnOp.Put("dup/k", Bytes("1"), Precondition.None), new TxnOp.Delete("dup/k", Precondition.None)], Timeout()));
        await Assert.ThrowsAsync<StoreRejectedException>(() => Store.CommitAsync([], Timeout()));

        var exactlyMax = Enumerable.Range(0, limits.MaxTxnOps).Select(i => (TxnOp)new TxnOp.Put($"many/{i:d2}", Bytes("x"), Precondition.Absent)).ToList();
        Assert.True((await Store.CommitAsync(exactlyMax, Timeout())).Applied);

        var (entries, revisionAfter) = await Store.ListAsync("", true, Timeout());
        Assert.Equal(limits.MaxTxnOps, entries.Count);
        Assert.True(revisionAfter > revisionBefore);
    }

    // ---- concurrency -------------------------------------------------------------------------

    [SkippableFact]
    public async Task Concurrent_cas_increments_lose_no_update()
    {
        const int writers = 8;
        const int incrementsPerWriter = 12;
        await Store.PutAsync("counter", Bytes("0"), Precondition.Absent, false, Timeout());
        var conflicts = 0;
        var successes = 0;

        await Task.WhenAll(Enumerable.Range(0, writers).Select(_ => Task.Run(async () =>
        {
            for (var done = 0; done < incrementsPerWriter;)
            {
                var current = await Store.GetAsync("counter", Timeout());
                var next = int.Parse(Text(current)) + 1;
                var result = await Store.PutAsync("counter", Bytes(next.ToString()), Precondition.VersionIs(current!.Version), false, Timeout());
                if (result.Outcome == WriteOutcome.Applied)
                {
                    done++;
                    Interlocked.Increment(ref successes);
                }
                else
                {
                    Assert.Equal(WriteOutcome.Conflict, result.Outcome);
                    Assert.NotNull(result.Current);
                    Interlocked.Increment(ref conflicts);
                }
            }
        })));

        Assert.Equal(writers * incrementsPerWriter, successes);
        Assert.Equal(successes.ToString(), Text(await Store.GetAsync("counter", Timeout())));
    }

    [SkippableFact]
    public async Task Concurrent_create_if_absent_has_exactly_one_winner()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(() =>
            Store.PutAsync("blocks/claim", Bytes($"owner{i}"), Precondition.Absent, false, Timeout()))));
        var winners = results.Where(r => r.Outcome == WriteOutcome.Applied).ToList();
        Assert.Single(winners);
        var stored = await Store.GetAsync("blocks/claim", Timeout());
        Assert.Equal(winners[0].NewVersion, stored!.Version);
        Assert.All(results.Where(r => r.Outcome != WriteOutcome.Applied), r => Assert.Equal(WriteOutcome.Conflict, r.Outcome));
    }

    [SkippableFact]
    public async Task Versions_increase_with_every_write()
    {
        var previous = 0L;
        for (var i = 0; i < 20; i++)
        {
            var result = i % 3 == 2
                ? (await Store.CommitAsync([new TxnOp.Put($"mono/{i}", Bytes("x"), Precondition.Absent)], Timeout())).NewVersions[0]
                : (await Store.PutAsync($"mono/{i % 4}", Bytes($"{i}"), Precondition.None, false, Timeout())).NewVersion;
            Assert.True(result > previous, $"write {i}: version {result} after {previous}");
            previous = result;
        }
    }
}

public static class WatchTestHelpers
{
    public static readonly TimeSpan WatchTimeout = TimeSpan.FromSeconds(10);

    public static async Task<WatchUpdate> NextAsync(IAsyncEnumerator<WatchUpdate> watch)
    {
        var next = watch.MoveNextAsync().AsTask();
        var finished = await Task.WhenAny(next, Task.Delay(WatchTimeout));
        Assert.True(finished == next, $"no watch update within {WatchTimeout}");
        Assert.True(await next, "watch ended unexpectedly");
        return watch.Current;
    }
}
