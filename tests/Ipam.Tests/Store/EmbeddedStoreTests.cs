using System.Text;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Embedded;

namespace Skein.Ipam.Tests.Store;

/// <summary>What only the embedded store promises: one process per directory, and crash safety (decisions #21).</summary>
public sealed class EmbeddedStoreTests : IDisposable
{
    private readonly TempDirectory _directory = new("embedded");

    public void Dispose() => _directory.Dispose();

    private static ReadOnlyMemory<byte> Bytes(string text) => Encoding.UTF8.GetBytes(text);

    private static string Text(KvEntry? entry) => entry is null ? "<absent>" : Encoding.UTF8.GetString(entry.Value.Span);

    private string LogPath => Path.Combine(_directory.Path, EmbeddedFiles.LogName);

    [Fact]
    public async Task Second_open_of_the_same_directory_fails_with_a_clear_message_until_the_first_closes()
    {
        var first = await EmbeddedStore.OpenAsync(_directory.Path);
        var error = await Assert.ThrowsAsync<StoreUnavailableException>(() => EmbeddedStore.OpenAsync(_directory.Path));
        Assert.Contains("in use by another skein process", error.Message);
        Assert.Contains(_directory.Path, error.Message);
        Assert.Contains($"pid={Environment.ProcessId}", error.Message);

        await first.DisposeAsync();
        await using var second = await EmbeddedStore.OpenAsync(_directory.Path);
        Assert.Null(await second.GetAsync("x", CancellationToken.None));
    }

    [Fact]
    public async Task Lock_is_a_real_flock_seen_by_another_process()
    {
        await using var store = await EmbeddedStore.OpenAsync(_directory.Path);
        var flock = new System.Diagnostics.ProcessStartInfo("flock", ["--nonblock", "--conflict-exit-code", "42", Path.Combine(_directory.Path, EmbeddedFiles.LockName), "true"]);
        using var process = System.Diagnostics.Process.Start(flock)!;
        await process.WaitForExitAsync();
        Assert.Equal(42, process.ExitCode);
    }

    [Fact]
    public async Task State_and_revision_survive_reopen_and_ephemeral_keys_do_not()
    {
        long lastVersion;
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
        {
            await store.PutAsync("a/1", Bytes("one"), Precondition.Absent, false, default);
            await store.CommitAsync([new TxnOp.Put("a/2", Bytes("two"), Precondition.Absent), new TxnOp.Put("a/3", Bytes("three"), Precondition.None)], default);
            await store.DeleteAsync("a/3", Precondition.None, default);
            await store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5)), default);
            await store.PutAsync("peers/n1", Bytes("ephemeral"), Precondition.None, ephemeral: true, default);
            // An ephemeral write over a persistent key: the key belongs to the process now and dies with it.
            lastVersion = (await store.PutAsync("a/1", Bytes("taken"), Precondition.None, ephemeral: true, default)).NewVersion;
            // No liveness dispose: the process "dies" holding it.
        }

        await using var reopened = await EmbeddedStore.OpenAsync(_directory.Path);
        Assert.Null(await reopened.GetAsync("peers/n1", default));
        Assert.Null(await reopened.GetAsync("a/1", default));
        Assert.Equal("two", Text(await reopened.GetAsync("a/2", default)));
        Assert.Null(await reopened.GetAsync("a/3", default));
        Assert.True(reopened.Revision >= lastVersion);
        var next = await reopened.PutAsync("a/4", Bytes("four"), Precondition.Absent, false, default);
        Assert.True(next.NewVersion > lastVersion, "revision went backwards across a reopen");
    }

    [Fact]
    public async Task A_torn_last_record_is_cut_off_at_every_possible_length()
    {
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
        {
            await store.PutAsync("k/base", Bytes("base"), Precondition.None, false, default);
        }
        var baseline = File.ReadAllBytes(LogPath); // compacted on the reopen below, so capture the raw log now

        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
        {
            // The reopen compacted: the log is empty, the snapshot holds k/base.
            Assert.Equal(0, new FileInfo(LogPath).Length);
            await store.CommitAsync([new TxnOp.Put("k/x", Bytes("x"), Precondition.Absent), new TxnOp.Put("k/y", Bytes("y"), Precondition.Absent)], default);
        }
        var fullRecord = File.ReadAllBytes(LogPath);
        Assert.NotEmpty(baseline);
        Assert.NotEmpty(fullRecord);
        var snapshot = File.ReadAllBytes(Path.Combine(_directory.Path, EmbeddedFiles.SnapshotName));

        for (var cut = 0; cut <= fullRecord.Length; cut++)
        {
            File.WriteAllBytes(Path.Combine(_directory.Path, EmbeddedFiles.SnapshotName), snapshot);
            File.WriteAllBytes(LogPath, fullRecord.AsSpan(0, cut).ToArray());
            await using var store = await EmbeddedStore.OpenAsync(_directory.Path);
            var x = await store.GetAsync("k/x", default);
            var y = await store.GetAsync("k/y", default);
            Assert.Equal("base", Text(await store.GetAsync("k/base", default)));
            if (cut == fullRecord.Length)
            {
                Assert.Equal(("x", "y"), (Text(x), Text(y)));
            }
            else
            {
                Assert.True(x is null && y is null, $"cut at {cut}/{fullRecord.Length} bytes left a partial transaction");
            }
            // The store stays writable after the cut and the write survives the next reopen.
            var write = await store.PutAsync("k/after", Bytes($"{cut}"), Precondition.None, false, default);
            Assert.Equal(WriteOutcome.Applied, write.Outcome);
        }
    }

    [Fact]
    public async Task A_corrupted_tail_record_is_dropped_and_earlier_ones_kept()
    {
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
        {
            await store.PutAsync("c/1", Bytes("one"), Precondition.None, false, default);
            await store.PutAsync("c/2", Bytes("two"), Precondition.None, false, default);
        }
        var log = File.ReadAllBytes(LogPath);
        log[^1] ^= 0xFF; // flip a bit in the last record's value: checksum must catch it
        File.WriteAllBytes(LogPath, log);

        await using var reopened = await EmbeddedStore.OpenAsync(_directory.Path);
        Assert.Equal("one", Text(await reopened.GetAsync("c/1", default)));
        Assert.Null(await reopened.GetAsync("c/2", default));
    }

    [Fact]
    public async Task Garbage_appended_after_good_records_is_ignored()
    {
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
            await store.PutAsync("g/1", Bytes("one"), Precondition.None, false, default);
        await using (var file = new FileStream(LogPath, FileMode.Append))
            file.Write([0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3]);

        await using var reopened = await EmbeddedStore.OpenAsync(_directory.Path);
        Assert.Equal("one", Text(await reopened.GetAsync("g/1", default)));
    }

    [Fact]
    public async Task Leftover_temporary_snapshot_from_a_crashed_compaction_is_ignored()
    {
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
            await store.PutAsync("s/1", Bytes("one"), Precondition.None, false, default);
        File.WriteAllBytes(Path.Combine(_directory.Path, EmbeddedFiles.SnapshotTempName), [1, 2, 3]);

        await using var reopened = await EmbeddedStore.OpenAsync(_directory.Path);
        Assert.Equal("one", Text(await reopened.GetAsync("s/1", default)));
        Assert.False(File.Exists(Path.Combine(_directory.Path, EmbeddedFiles.SnapshotTempName)));
    }

    [Fact]
    public async Task Log_records_already_in_the_snapshot_are_not_applied_twice()
    {
        // Simulates a crash between writing the snapshot and truncating the log.
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
        {
            await store.PutAsync("dup/k", Bytes("1"), Precondition.None, false, default);
            await store.DeleteAsync("dup/k", Precondition.None, default);
            await store.PutAsync("dup/k", Bytes("2"), Precondition.None, false, default);
        }
        var log = File.ReadAllBytes(LogPath);
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
            await store.PutAsync("dup/k", Bytes("3"), Precondition.None, false, default);
        // Put the old, already-compacted records back in front of the new one.
        var newRecord = File.ReadAllBytes(LogPath);
        File.WriteAllBytes(LogPath, [.. log, .. newRecord]);

        await using var reopened = await EmbeddedStore.OpenAsync(_directory.Path);
        var entry = await reopened.GetAsync("dup/k", default);
        Assert.Equal("3", Text(entry));
    }

    [Fact]
    public async Task A_damaged_snapshot_is_reported_not_silently_discarded()
    {
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
            await store.PutAsync("s/1", Bytes("one"), Precondition.None, false, default);
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path)) { } // compacts into the snapshot
        var path = Path.Combine(_directory.Path, EmbeddedFiles.SnapshotName);
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(path, bytes);

        var error = await Assert.ThrowsAsync<InvalidDataException>(() => EmbeddedStore.OpenAsync(_directory.Path));
        Assert.Contains("checksum", error.Message);
        // The failed open released the lock.
        File.WriteAllBytes(path, [.. bytes.Select((b, i) => i == bytes.Length / 2 ? (byte)(b ^ 0x01) : b)]);
        await using var repaired = await EmbeddedStore.OpenAsync(_directory.Path);
        Assert.Equal("one", Text(await repaired.GetAsync("s/1", default)));
    }

    [Fact]
    public async Task Large_log_is_compacted_and_still_replays_correctly()
    {
        var value = new byte[64 * 1024];
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
        {
            for (var i = 0; i < 40; i++)
            {
                value[0] = (byte)i;
                await store.PutAsync($"big/{i % 3}", value, Precondition.None, false, default);
            }
            // 40 × 64 KiB = 2.5 MiB of log: at least one compaction happened on the way.
            Assert.True(new FileInfo(LogPath).Length < 40 * value.Length);
        }
        await using var reopened = await EmbeddedStore.OpenAsync(_directory.Path);
        Assert.Equal(39, (await reopened.GetAsync("big/0", default))!.Value.Span[0]);
        Assert.Equal(37, (await reopened.GetAsync("big/1", default))!.Value.Span[0]);
        Assert.Equal(38, (await reopened.GetAsync("big/2", default))!.Value.Span[0]);
    }

    [Fact]
    public async Task Slow_watcher_gets_a_fresh_snapshot_instead_of_an_unbounded_backlog()
    {
        await using var store = await EmbeddedStore.OpenAsync(_directory.Path);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var watch = store.WatchPrefixAsync("s/", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await watch.MoveNextAsync());
        Assert.IsType<WatchUpdate.Snapshot>(watch.Current);

        var ops = Enumerable.Range(0, 64).Select(i => (TxnOp)new TxnOp.Put($"s/{i:d2}", Bytes("x"), Precondition.None)).ToList();
        for (var round = 0; round < EmbeddedWatcher.Capacity / 64 + 2; round++)
            await store.CommitAsync(ops, default);

        Assert.True(await watch.MoveNextAsync());
        var resync = Assert.IsType<WatchUpdate.Snapshot>(watch.Current);
        Assert.Equal(64, resync.Entries.Count);
    }

    [Fact]
    public async Task Disposing_the_store_ends_watches_and_refuses_further_calls()
    {
        var store = await EmbeddedStore.OpenAsync(_directory.Path);
        var watch = store.WatchPrefixAsync("", CancellationToken.None).GetAsyncEnumerator();
        Assert.True(await watch.MoveNextAsync());
        await store.DisposeAsync();
        Assert.False(await watch.MoveNextAsync());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => store.GetAsync("x", default));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => store.PutAsync("x", Bytes("x"), Precondition.None, false, default));
    }

    [Fact]
    public async Task A_directory_that_cannot_be_created_gives_a_store_error_naming_it()
    {
        var blocker = Path.Combine(_directory.Path, "file");
        File.WriteAllText(blocker, "not a directory");
        var error = await Assert.ThrowsAsync<StoreUnavailableException>(() => EmbeddedStore.OpenAsync(Path.Combine(blocker, "store")));
        Assert.Contains(Path.Combine(blocker, "store"), error.Message);
    }

    [Fact]
    public async Task Only_one_liveness_at_a_time()
    {
        await using var store = await EmbeddedStore.OpenAsync(_directory.Path);
        var first = await store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5)), default);
        await Assert.ThrowsAsync<InvalidOperationException>(() => store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5)), default));
        await first.DisposeAsync();
        await using var second = await store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5)), default);
        Assert.NotEqual(first.Id, second.Id);
    }

    [Fact]
    public async Task Concurrent_writers_share_fsyncs_and_every_acknowledged_write_survives_reopen()
    {
        const int writers = 64;
        var acknowledged = new List<(string Key, long Version)>();
        long fsyncs;
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
        {
            var realFsync = store.LogFsync;
            // A slow disk: while one fsync runs, the other writers append and queue behind it.
            store.LogFsync = handle =>
            {
                Thread.Sleep(20);
                realFsync(handle);
            };
            var results = await Task.WhenAll(Enumerable.Range(0, writers).Select(i => Task.Run(async () =>
                (Key: $"gc/{i:d2}", Result: await store.PutAsync($"gc/{i:d2}", Bytes($"v{i}"), Precondition.Absent, false, default)))));
            Assert.All(results, r => Assert.Equal(WriteOutcome.Applied, r.Result.Outcome));
            acknowledged.AddRange(results.Select(r => (r.Key, r.Result.NewVersion)));
            // Revisions stay one per transaction, each write its own.
            Assert.Equal(Enumerable.Range(1, writers).Select(v => (long)v), acknowledged.Select(a => a.Version).Order());
            Assert.Equal(writers, store.Revision);
            fsyncs = store.LogFsyncCount;
        }
        Assert.InRange(fsyncs, 1, writers / 2);

        await using var reopened = await EmbeddedStore.OpenAsync(_directory.Path);
        foreach (var (key, version) in acknowledged)
        {
            var entry = await reopened.GetAsync(key, default);
            Assert.NotNull(entry);
            Assert.Equal(version, entry.Version);
            Assert.Equal($"v{int.Parse(key[3..])}", Text(entry));
        }
    }

    [Fact]
    public async Task Concurrent_absent_puts_of_one_key_apply_once_even_before_the_first_is_durable()
    {
        await using var store = await EmbeddedStore.OpenAsync(_directory.Path);
        var realFsync = store.LogFsync;
        store.LogFsync = handle =>
        {
            Thread.Sleep(20);
            realFsync(handle);
        };
        var results = await Task.WhenAll(Enumerable.Range(0, 32).Select(i => Task.Run(() =>
            store.PutAsync("one/key", Bytes($"{i}"), Precondition.Absent, false, default))));
        var winner = Assert.Single(results, r => r.Outcome == WriteOutcome.Applied);
        Assert.All(results.Where(r => r.Outcome != WriteOutcome.Applied), r =>
        {
            Assert.Equal(WriteOutcome.Conflict, r.Outcome);
            Assert.Equal(winner.NewVersion, r.Current!.Version);
        });
    }

    [Fact]
    public async Task A_write_is_neither_visible_nor_acknowledged_until_its_fsync_finished()
    {
        await using var store = await EmbeddedStore.OpenAsync(_directory.Path);
        var realFsync = store.LogFsync;
        var fsyncStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var releaseFsync = new ManualResetEventSlim();
        store.LogFsync = handle =>
        {
            fsyncStarted.TrySetResult();
            releaseFsync.Wait(TimeSpan.FromSeconds(30));
            realFsync(handle);
        };
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var watch = store.WatchPrefixAsync("v/", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await watch.MoveNextAsync());
        var put = Task.Run(() => store.PutAsync("v/k", Bytes("x"), Precondition.Absent, false, default));
        Task<WriteResult> conflicting;
        Task<bool> nextUpdate;
        try
        {
            await fsyncStarted.Task.WaitAsync(cts.Token);
            // A second writer conflicting with the pending write must not learn of it before it is durable either.
            conflicting = Task.Run(() => store.PutAsync("v/k", Bytes("y"), Precondition.Absent, false, default));
            nextUpdate = watch.MoveNextAsync().AsTask();

            await Task.Delay(100);
            Assert.False(put.IsCompleted, "acknowledged before its fsync finished");
            Assert.False(conflicting.IsCompleted, "a conflict revealed a write that was not yet durable");
            Assert.False(nextUpdate.IsCompleted, "a watcher saw a write that was not yet durable");
            Assert.Null(await store.GetAsync("v/k", default));
            Assert.Empty((await store.ListAsync("v/", false, default)).Entries);
            Assert.Equal(0, store.Revision);
        }
        finally
        {
            releaseFsync.Set(); // also when an assertion failed, so the test ends instead of hanging
        }
        var written = await put;
        Assert.Equal(WriteOutcome.Applied, written.Outcome);
        Assert.Equal("x", Text(await store.GetAsync("v/k", default)));
        Assert.Equal(WriteOutcome.Conflict, (await conflicting).Outcome);
        Assert.True(await nextUpdate);
        Assert.Equal("v/k", Assert.IsType<WatchUpdate.Upsert>(watch.Current).Entry.Key);
    }

    [Fact]
    public async Task A_write_whose_fsync_fails_is_not_acknowledged_not_visible_and_not_replayed()
    {
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
        {
            await store.PutAsync("f/before", Bytes("kept"), Precondition.Absent, false, default);
            var realFsync = store.LogFsync;
            store.LogFsync = _ => throw new IOException("injected: disk gone");

            var error = await Assert.ThrowsAsync<StoreUnavailableException>(() =>
                store.PutAsync("f/lost", Bytes("lost"), Precondition.Absent, false, default));
            Assert.Contains("fsync failed", error.Message);
            Assert.Contains("injected: disk gone", error.Message);
            Assert.Contains(_directory.Path, error.Message);
            Assert.Null(await store.GetAsync("f/lost", default));
            Assert.Equal(1, store.Revision);

            // The store recovers once the disk does; the failed write left nothing behind (Absent holds again).
            store.LogFsync = realFsync;
            var after = await store.PutAsync("f/lost", Bytes("second try"), Precondition.Absent, false, default);
            Assert.Equal(WriteOutcome.Applied, after.Outcome);
            Assert.Equal(2, after.NewVersion);
            store.LogFsync = _ => throw new IOException("injected again");
            await Assert.ThrowsAsync<StoreUnavailableException>(() =>
                store.PutAsync("f/never", Bytes("never"), Precondition.None, false, default));
            store.LogFsync = realFsync;
        }

        await using var reopened = await EmbeddedStore.OpenAsync(_directory.Path);
        Assert.Equal("kept", Text(await reopened.GetAsync("f/before", default)));
        Assert.Equal("second try", Text(await reopened.GetAsync("f/lost", default)));
        Assert.Null(await reopened.GetAsync("f/never", default));
        Assert.Equal(2, reopened.Revision);
    }

    [Fact]
    public async Task When_a_shared_fsync_fails_only_the_writes_it_acknowledged_exist_before_and_after_reopen()
    {
        const int writers = 48;
        var outcomes = new List<(string Key, WriteResult? Result)>();
        await using (var store = await EmbeddedStore.OpenAsync(_directory.Path))
        {
            var realFsync = store.LogFsync;
            var calls = 0;
            store.LogFsync = handle =>
            {
                Thread.Sleep(20);
                if (Interlocked.Increment(ref calls) == 1)
                    throw new IOException("injected: first group fails");
                realFsync(handle);
            };
            Task<(string, WriteResult?)[]> Wave(string name) => Task.WhenAll(Enumerable.Range(0, writers).Select(i => Task.Run(async () =>
            {
                var key = $"{name}/{i:d2}";
                try
                {
                    return (key, (WriteResult?)await store.PutAsync(key, Bytes(key), Precondition.Absent, false, default));
                }
                catch (StoreUnavailableException e) when (e.Message.Contains("injected: first group fails"))
                {
                    return (key, null);
                }
            })));
            // Wave one meets the failing fsync: its first group fails with every write appended behind it;
            // writes appended after the failure was handled may still succeed. Wave two finds a healthy disk.
            var first = await Wave("one");
            var second = await Wave("two");
            Assert.Contains(first, o => o.Item2 is null);
            Assert.All(second, o => Assert.NotNull(o.Item2));
            outcomes.AddRange(first);
            outcomes.AddRange(second);

            var applied = outcomes.Where(o => o.Result is not null).ToList();
            Assert.All(applied, o => Assert.Equal(WriteOutcome.Applied, o.Result!.Outcome));
            // Failed writes gave their revisions back: the acknowledged ones are numbered without gaps.
            Assert.Equal(Enumerable.Range(1, applied.Count).Select(v => (long)v), applied.Select(o => o.Result!.NewVersion).Order());
            foreach (var (key, result) in outcomes)
                Assert.Equal(result is null ? "<absent>" : key, Text(await store.GetAsync(key, default)));
        }

        await using var reopened = await EmbeddedStore.OpenAsync(_directory.Path);
        foreach (var (key, result) in outcomes)
        {
            var entry = await reopened.GetAsync(key, default);
            Assert.Equal(result is null ? "<absent>" : key, Text(entry));
            Assert.Equal(result?.NewVersion, entry?.Version);
        }
    }
}
