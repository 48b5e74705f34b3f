using System.Collections.Concurrent;
using System.Net;
using Skein.Ipam.Addressing;
using Skein.Ipam.Store;

namespace Skein.Ipam.Allocation;

// Group commit of endpoint address requests. The pool's lock serialises a host's requests on one pool, and each
// used to cost a store round trip of its own. Now a request joins the pool's queue and then waits for the lock; who
// gets it serves every request queued by then: those the cached blocks can answer are staged in the cache and
// written in one transaction (one Put per block touched, each with its version check), then every caller gets its
// own answer. A lone request is served at once, with nobody to wait for; requests that arrive while a commit is in
// flight share the next one. Requests are served in arrival order and each sees the ones before it, exactly as if
// they had been served one at a time: the leading requests the cached blocks can answer are staged and committed,
// then the first that needs more (a block claim, a borrowed slot, a block this node does not hold) is served on its
// own as before group commit, and the rest go round again. "As if one at a time" holds among endpoint requests: a
// lock holder serves every endpoint request queued by then, also ones that arrived after a release, gateway or aux
// request still waiting for the lock (a `--ip` that asks for an address released at the same moment may find it
// still in use, as it may when the release simply comes second).
public sealed partial class IpamService
{
    /// <summary>
    /// Blocks one group write may touch: far below the strictest transaction size of the stores (Consul before 1.14:
    /// 512 KiB) even for full blocks (at most 64 slots, about 12 KiB). Requests usually share one or two blocks.
    /// </summary>
    private const int MaxBlocksPerGroupWrite = 8;

    private readonly ConcurrentDictionary<string, EndpointRequestQueue> _endpointQueues = new(StringComparer.Ordinal);

    /// <summary>A staged request's answer: its address, or a failure that is its own.</summary>
    private sealed record StagedAnswer(EndpointRequest Request, IPAddress? Address, SkeinException? Failure);

    /// <summary>
    /// An endpoint address from the store, served together with the pool's other endpoint requests queued when the
    /// lock comes free. Null: the pool went into journal mode while this request waited.
    /// </summary>
    private async Task<IPAddress?> RequestEndpointFromStoreAsync(PoolId id, string mac, IPAddress? wanted, CancellationToken ct)
    {
        string poolKey = _keys.Pool(id.Space, id.Pool);
        var queue = _endpointQueues.GetOrAdd(poolKey, static _ => new EndpointRequestQueue());
        var request = new EndpointRequest(id, mac, wanted);
        queue.Add(request);
        var acquiring = _poolLocks.AcquireAsync(poolKey, ct);
        if (await Task.WhenAny(request.Answer, acquiring).ConfigureAwait(false) == request.Answer)
        {
            // Served by another lock holder while this caller waited: answer now, not after whatever else queued for
            // the lock (a gateway, a release), and hand the lock on as soon as it comes.
            _ = acquiring.ContinueWith(static t =>
            {
                if (t.IsCompletedSuccessfully)
                    t.Result.Dispose();
            }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            return await request.Answer.ConfigureAwait(false);
        }
        KeyedAsyncLock.Releaser held;
        try
        {
            held = await acquiring.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Unless a lock holder took it already: then it is being served (an address pending for the MAC, found
            // again by the engine's retry and freed by the pending expiry otherwise) and only its answer is dropped.
            queue.Withdraw(request);
            throw;
        }
        using (held)
        {
            // A lock holder that took this request answered it before it let go of the lock.
            while (!request.Answered)
            {
                var batch = queue.Take(_store.Store.Limits.MaxTxnOps);
                if (batch.Count == 0)
                    throw new SkeinException(ErrorKind.Internal, $"endpoint request for pool {id} was neither queued nor answered");
                await ServeEndpointRequestsAsync(id, poolKey, batch).ConfigureAwait(false);
            }
        }
        return await request.Answer.ConfigureAwait(false);
    }

    /// <summary>
    /// Serves a batch under the pool's lock and answers every request in it, whatever happens: a failure that is one
    /// request's own (its address in use, an unknown sub-pool) goes to that request only; anything else (the store
    /// unreachable, the pool gone) to every request still unanswered.
    /// </summary>
    private async Task ServeEndpointRequestsAsync(PoolId id, string poolKey, List<EndpointRequest> batch)
    {
        try
        {
            if (UseJournal(id.Space, id.Pool))
            {
                // The store was found unreachable while these requests waited: the journal serves them (decisions #18).
                foreach (var request in batch)
                    request.Succeed(null);
                return;
            }
            // No one caller's cancellation stops the write the others wait for; the store client bounds each call.
            while (batch.Any(r => !r.Answered))
            {
                await WithLockedPoolAsync(id.Space, id.Pool, poolKey, cache => ServeUnansweredAsync(cache, batch, CancellationToken.None), CancellationToken.None)
                    .ConfigureAwait(false);
            }
            // As before group commit, a failed request makes the next one re-read the pool.
            if (batch.Any(r => r.Answer.IsFaulted))
                _pools.TryRemove(poolKey, out _);
        }
        catch (Exception e)
        {
            // Requests still queued go to the journal without trying the store again (every caller here would too).
            if (e is SkeinException outage && CanJournal && IsOutage(outage))
            {
                EnterOutage(outage);
                JournalStaged(poolKey, batch);
            }
            foreach (var request in batch)
                request.Fail(e);
        }
    }

    /// <summary>
    /// The store went away under a group write, which may have applied unseen: each request keeps the address staged for
    /// it, journaled for its MAC before the pool's lock is let go (replayed idempotently whether or not the write
    /// landed), so no request served after it can take one of them and find a conflict at the replay.
    /// </summary>
    private void JournalStaged(string poolKey, List<EndpointRequest> batch)
    {
        foreach (var request in batch.Where(r => !r.Answered && r.Staged is not null))
        {
            try
            {
                var cache = OutageCache(request.Id.Space, request.Id.Pool, poolKey);
                request.Succeed(RequestFromJournalLocked(cache, request.Id, request.Mac, request.Staged));
            }
            catch (SkeinException e)
            {
                request.Fail(e);
            }
        }
    }

    /// <summary>
    /// One round over the batch's unanswered requests: the leading ones the cached blocks answer in one write, then
    /// the first that needs more on its own (which may claim or borrow a block the next round can use). A lost
    /// version check (StaleState) makes <see cref="WithLockedPoolAsync"/> re-read the pool and run the round again.
    /// </summary>
    private async Task<bool> ServeUnansweredAsync(PoolCache cache, List<EndpointRequest> batch, CancellationToken ct)
    {
        var unanswered = batch.Where(r => !r.Answered).ToList();
        var staged = await StageAndCommitAsync(cache, unanswered, ct).ConfigureAwait(false);
        foreach (var answer in staged)
        {
            if (answer.Failure is { } failure)
                answer.Request.Fail(failure);
            else
                answer.Request.Succeed(answer.Address);
        }
        if (unanswered.Skip(staged.Count).FirstOrDefault() is not { } alone)
            return true;
        // A write recognised only by its token leaves the block versions unknown: the next round re-reads first.
        if (!_pools.TryGetValue(cache.PoolKey, out var current) || current != cache)
            return true;
        try
        {
            alone.Succeed(await RequestInPoolAsync(cache, alone.Id, gateway: false, alone.Mac, alone.Wanted, ct).ConfigureAwait(false));
        }
        catch (SkeinException e) when (IsOwnFailure(e))
        {
            alone.Fail(e);
        }
        return true;
    }

    /// <summary>Failures that concern one request only; the others of its batch go on.</summary>
    private static bool IsOwnFailure(SkeinException e) => e.Kind is ErrorKind.Conflict or ErrorKind.NotFound or ErrorKind.Invalid;

    /// <summary>
    /// Stages the leading requests the cached blocks can answer and writes the blocks they touch in one transaction.
    /// Returns their answers, in order; they stand once this returns (the write is acknowledged). On any failure the
    /// cache is put back as it was: it holds only acknowledged writes, which the journal relies on during an outage.
    /// </summary>
    private async Task<List<StagedAnswer>> StageAndCommitAsync(PoolCache cache, List<EndpointRequest> requests, CancellationToken ct)
    {
        var answers = new List<StagedAnswer>();
        var before = new Dictionary<CachedBlock, BlockRecord>();
        foreach (var request in requests)
            request.Staged = null;
        try
        {
            foreach (var request in requests)
            {
                IPAddress? address;
                try
                {
                    address = await StageFromCacheAsync(cache, request, before, ct).ConfigureAwait(false);
                }
                catch (SkeinException e) when (IsOwnFailure(e))
                {
                    answers.Add(new StagedAnswer(request, null, e));
                    continue;
                }
                if (address is null)
                    break;
                answers.Add(new StagedAnswer(request, address, null));
                request.Staged = address;
            }
            if (before.Count > 0)
                await CommitStagedAsync(cache, before.Keys.ToList(), ct).ConfigureAwait(false);
            return answers;
        }
        catch
        {
            foreach (var (block, record) in before)
                block.Record = record;
            throw;
        }
    }

    /// <summary>
    /// The request's address when the cached blocks answer it as <see cref="RequestInPoolAsync"/> would, with its slot
    /// staged in the cached block (the block's record before staging kept in <paramref name="before"/>); null when it
    /// needs more than the cache, or another block than this write can take. Throws the failures that are its own.
    /// </summary>
    private async Task<IPAddress?> StageFromCacheAsync(PoolCache cache, EndpointRequest request, Dictionary<CachedBlock, BlockRecord> before, CancellationToken ct)
    {
        var id = request.Id;
        CheckSubPoolKnown(cache, id);
        var slot = ContainerSlot(request.Mac);
        if (request.Wanted is { } wanted)
        {
            // PlaceSlotAsync's rules, for a block this node holds.
            RefuseReserved(cache, wanted);
            var blockCidr = cache.BlockOf(wanted, out var index);
            if (!cache.Blocks.TryGetValue(index, out var block))
                return null;
            int ordinal = (int)blockCidr.OrdinalOf(wanted);
            if (block.Record.Slots.TryGetValue(ordinal, out var holder))
                return IsSameRequest(holder, slot) ? wanted : throw SkeinException.Conflict($"{AddressInUse}: {IpAddressText.Format(wanted)} in pool {id}");
            var written = WithSlot(block.Record, ordinal, slot);
            return TryStage(block, block.Record.Owner == _node ? written : WithBorrower(written), before) ? wanted : null;
        }

        // AllocateDynamicAsync's steady state: a repeat, or the lowest free address with no unclaimed block below it.
        if (PendingAddressOf(cache, _node, request.Mac) is { } repeat)
            return repeat;
        var (best, _) = PickFree(cache, id.Window, NowSeconds(), ownedOnly: false);
        if (best is not { } free || await MayClaimBelowAsync(cache, id, free.Block.Index, ct).ConfigureAwait(false))
            return null;
        return TryStage(free.Block, WithSlot(free.Block.Record, free.Ordinal, slot), before)
            ? free.Block.Cidr.AddressAt((UInt128)free.Ordinal)
            : null;
    }

    private static bool TryStage(CachedBlock block, BlockRecord staged, Dictionary<CachedBlock, BlockRecord> before)
    {
        if (!before.ContainsKey(block) && before.Count >= MaxBlocksPerGroupWrite)
            return false;
        before.TryAdd(block, block.Record);
        block.Record = staged;
        return true;
    }

    /// <summary>
    /// Whether <see cref="ClaimLowerBlockAsync"/> might claim a block of the window below <paramref name="belowIndex"/>:
    /// one there is not known to exist.
    /// </summary>
    private async Task<bool> MayClaimBelowAsync(PoolCache cache, PoolId id, UInt128 belowIndex, CancellationToken ct)
    {
        var window = id.Window;
        cache.BlockOf(window.Network, out var firstIndex);
        UInt128 blockCount = window.Length >= cache.BlockLength ? 1 : window.BlockCount(cache.BlockLength);
        UInt128 end = UInt128.Min(belowIndex, firstIndex + blockCount);
        if (firstIndex >= end)
            return false;
        var existing = await ExistingBlocksAsync(cache, ct).ConfigureAwait(false);
        for (UInt128 index = firstIndex; index < end; index++)
        {
            if (!existing.Contains(index) && !cache.Blocks.ContainsKey(index))
                return true;
        }
        return false;
    }

    /// <summary>
    /// Writes the staged blocks in one transaction, each on its version. A lost check is StaleState (re-read, serve
    /// again); a lost answer is settled by the writer token as for any other commit.
    /// </summary>
    private async Task CommitStagedAsync(PoolCache cache, List<CachedBlock> blocks, CancellationToken ct)
    {
        string token = _store.NextToken();
        var written = blocks.Select(b => b.Record with { W = token }).ToList();
        var ops = blocks.Select((b, i) => (TxnOp)new TxnOp.Put(b.Key,
            IpamStoreAccess.Encode(written[i], IpamStoreJsonContext.Default.BlockRecord), Precondition.VersionIs(b.Version))).ToList();
        var result = await _store.CommitAsync(ops, token, ct).ConfigureAwait(false);
        if (!result.Applied)
            throw new StaleStateException();
        for (int i = 0; i < blocks.Count; i++)
        {
            blocks[i].Record = written[i];
            blocks[i].Version = result.NewVersions[i];
        }
        if (result.NewVersions.Contains(0))
            _pools.TryRemove(cache.PoolKey, out _); // applied, but only recognised by our token: re-read next time
    }
}
