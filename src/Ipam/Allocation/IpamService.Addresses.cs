using System.Net;
using Skein.Ipam.Addressing;
using Skein.Ipam.Protocol;
using Skein.Ipam.Store;

namespace Skein.Ipam.Allocation;

public sealed partial class IpamService
{
    private const string AddressInUse = "Address already in use";
    private const string OutOfRange = "Requested address is out of range";
    private const string NoAddresses = "No available addresses on this pool";

    /// <summary>
    /// IpamDriver.RequestAddress. The request kind comes from its options (cluster-store §4.8):
    /// gateway (RequestAddressType), aux reservation (an address and no MAC), static endpoint
    /// address (MAC and address) or dynamic endpoint address (MAC, no address). Repeats are
    /// idempotent: the same gateway, the same aux address, the same address for the same MAC.
    /// </summary>
    public async Task<RequestAddressResponse> RequestAddressAsync(RequestAddressRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var id = PoolId.Parse(request.PoolID);
        var options = request.Options;
        bool gateway = options is not null && options.TryGetValue(IpamLabels.RequestAddressType, out var type) && type == IpamLabels.GatewayRequest;
        string? mac = options is not null && options.TryGetValue(IpamLabels.MacAddress, out var macText) && macText.Length > 0
            ? NormalizeMac(macText)
            : null;
        IPAddress? wanted = null;
        if (!string.IsNullOrEmpty(request.Address))
        {
            wanted = IpAddressText.Parse(request.Address, "Address");
            if (!id.Pool.Contains(wanted))
                throw SkeinException.Invalid($"{OutOfRange}: {IpAddressText.Format(wanted)} is not inside pool {id.Pool}");
        }

        bool endpoint = !gateway && mac is not null;
        await ReplayIfDueAsync(ct).ConfigureAwait(false);
        if (endpoint && UseJournal(id.Space, id.Pool))
        {
            var journaled = await RequestFromJournalAsync(id, mac!, wanted, ct).ConfigureAwait(false);
            return new RequestAddressResponse { Address = Cidr(journaled, id.Pool), Data = [] };
        }
        if (!endpoint)
        {
            if (HasJournalFor(id.Space, id.Pool))
                throw new SkeinException(ErrorKind.Unavailable, $"pool {id} has changes made while the cluster store was unreachable ({_outageCause}) that are not written back yet; only endpoint addresses are handed out meanwhile");
            var address = await WithPoolAsync(id.Space, id.Pool, cache => RequestInPoolAsync(cache, id, gateway, mac, wanted, ct), ct).ConfigureAwait(false);
            return new RequestAddressResponse { Address = Cidr(address, id.Pool), Data = [] };
        }

        // Endpoint requests are served in groups (IpamService.GroupCommit.cs); null: the journal serves this one.
        IPAddress? stored;
        try
        {
            stored = await RequestEndpointFromStoreAsync(id, mac!, wanted, ct).ConfigureAwait(false);
        }
        catch (SkeinException e) when (CanJournal && IsOutage(e))
        {
            EnterOutage(e);
            stored = null;
        }
        var endpointAddress = stored ?? await RequestFromJournalAsync(id, mac!, wanted, ct).ConfigureAwait(false);
        return new RequestAddressResponse { Address = Cidr(endpointAddress, id.Pool), Data = [] };
    }

    /// <summary>One request against the loaded pool, written on its own (endpoint requests usually go in groups).</summary>
    private async Task<IPAddress> RequestInPoolAsync(PoolCache cache, PoolId id, bool gateway, string? mac, IPAddress? wanted, CancellationToken ct)
    {
        CheckSubPoolKnown(cache, id);
        if (gateway)
            return await RequestGatewayAsync(cache, id, wanted, ct).ConfigureAwait(false);
        if (wanted is not null)
        {
            var slot = mac is null
                ? new SlotRecord { Kind = SlotKinds.Aux, Node = SlotKinds.AnyNode, Ts = NowSeconds() }
                : ContainerSlot(mac);
            await PlaceSlotAsync(cache, id, wanted, slot, existing => IsSameRequest(existing, slot), poolUpdate: null, ct).ConfigureAwait(false);
            return wanted;
        }
        return await AllocateDynamicAsync(cache, id, mac, ct).ConfigureAwait(false);
    }

    /// <summary>A slot already holding the address satisfies a repeat of the same request.</summary>
    private bool IsSameRequest(SlotRecord existing, SlotRecord wanted) => wanted.Kind switch
    {
        SlotKinds.Aux => existing.Kind == SlotKinds.Aux,
        SlotKinds.Container => existing.Kind == SlotKinds.Container && existing.Node == _node && existing.Mac is not null && existing.Mac == wanted.Mac,
        _ => false,
    };

    private static void CheckSubPoolKnown(PoolCache cache, PoolId id)
    {
        if (id.SubPool is not { } sub)
            return;
        string text = sub.ToString();
        if (!cache.Record.Users.Values.Any(u => u.Sub == text))
            throw SkeinException.NotFound($"Address Pool not found: pool {id.Pool} has no sub-pool {sub} (PoolID {id})");
    }

    /// <summary>
    /// The gateway is agreed once per pool and kept in the pool record: the first request fixes it
    /// (the given --gateway, else the lowest free address of the PoolID's window, as Docker's
    /// allocator does); later requests get the same one, and a different explicit one is an error.
    /// </summary>
    private async Task<IPAddress> RequestGatewayAsync(PoolCache cache, PoolId id, IPAddress? wanted, CancellationToken ct)
    {
        if (cache.Record.Gateway is { } recorded)
        {
            var agreed = IpAddressText.Parse(recorded, "recorded gateway");
            if (wanted is not null && !wanted.Equals(agreed))
                throw SkeinException.Conflict($"pool {id.Pool} already has gateway {recorded}; this request asks for {IpAddressText.Format(wanted)} (was the network created with another --gateway elsewhere?)");
            return agreed;
        }

        var target = wanted ?? await LowestFreeAddressAsync(cache, id, ct).ConfigureAwait(false)
            ?? throw SkeinException.Conflict($"{NoAddresses}: no address is free for the gateway of {id}");
        var slot = new SlotRecord { Kind = SlotKinds.Gateway, Node = SlotKinds.AnyNode, Ts = NowSeconds() };
        var poolUpdate = cache.Record with { Gateway = IpAddressText.Format(target) };
        await PlaceSlotAsync(cache, id, target, slot, _ => false, poolUpdate, ct).ConfigureAwait(false);
        return target;
    }

    /// <summary>Lowest address of the window that is neither reserved nor taken, reading blocks other nodes own as needed.</summary>
    private async Task<IPAddress?> LowestFreeAddressAsync(PoolCache cache, PoolId id, CancellationToken ct)
    {
        var window = id.Window;
        var blockOfStart = cache.BlockOf(window.Network, out var firstIndex);
        UInt128 blockCount = window.Length >= cache.BlockLength ? 1 : window.BlockCount(cache.BlockLength);
        for (UInt128 i = 0; i < blockCount && i < 4096; i++)
        {
            var blockCidr = i == 0 ? blockOfStart : cache.Pool.BlockAt(cache.BlockLength, firstIndex + i);
            var slots = (await ReadAnyBlockAsync(cache, firstIndex + i, blockCidr, ct).ConfigureAwait(false))?.Slots;
            if (!PoolCache.WindowRange(blockCidr, window, out int first, out int last))
                continue;
            UInt128 blockStart = cache.PoolOrdinalOfBlockStart(blockCidr);
            for (int ordinal = first; ordinal <= last; ordinal++)
            {
                if (BlockGeometry.IsReserved(cache.Pool, blockStart + (UInt128)ordinal))
                    continue;
                if (slots is null || !slots.ContainsKey(ordinal))
                    return blockCidr.AddressAt((UInt128)ordinal);
            }
        }
        return null;
    }

    private async Task<BlockRecord?> ReadAnyBlockAsync(PoolCache cache, UInt128 index, IpPrefix blockCidr, CancellationToken ct)
    {
        if (cache.Blocks.TryGetValue(index, out var mine))
            return mine.Record;
        var read = await _store.ReadAsync(_keys.Block(cache.Space, cache.Pool, blockCidr), IpamStoreJsonContext.Default.BlockRecord, ct).ConfigureAwait(false);
        return read?.Value;
    }

    /// <summary>
    /// Puts <paramref name="slot"/> at a given address: into the existing block (whoever owns it) with
    /// a version check, or by claiming the block. A taken address is fine only when
    /// <paramref name="isRepeat"/> says the holder is this same request.
    /// </summary>
    private async Task PlaceSlotAsync(PoolCache cache, PoolId id, IPAddress address, SlotRecord slot,
        Func<SlotRecord, bool> isRepeat, PoolRecord? poolUpdate, CancellationToken ct)
    {
        RefuseReserved(cache, address);
        var blockCidr = cache.BlockOf(address, out var index);
        int ordinal = (int)blockCidr.OrdinalOf(address);
        string blockKey = _keys.Block(cache.Space, cache.Pool, blockCidr);
        CachedBlock? mine = cache.Blocks.GetValueOrDefault(index);
        (BlockRecord Value, long Version)? current = mine is not null
            ? (mine.Record, mine.Version)
            : await _store.ReadAsync(blockKey, IpamStoreJsonContext.Default.BlockRecord, ct).ConfigureAwait(false);

        string token = _store.NextToken();
        var ops = new List<TxnOp>(3);
        BlockRecord written;
        bool claiming = current is null;
        if (current is { } existing)
        {
            if (existing.Value.Slots.TryGetValue(ordinal, out var holder))
            {
                if (isRepeat(holder))
                    return;
                throw SkeinException.Conflict($"{AddressInUse}: {IpAddressText.Format(address)} in pool {id}");
            }
            written = WithSlot(existing.Value, ordinal, slot) with { W = token };
            if (slot.Kind == SlotKinds.Container && existing.Value.Owner != _node)
            {
                written = WithBorrower(written);
                if (mine is null)
                    ops.Add(AffinityPut(cache, blockCidr, borrowed: true, token, Precondition.None));
            }
            ops.Insert(0, new TxnOp.Put(blockKey, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.VersionIs(existing.Version)));
        }
        else
        {
            written = WithSlot(NewBlock(cache, blockCidr, token), ordinal, slot);
            ops.Add(new TxnOp.Put(blockKey, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.Absent));
            ops.Add(AffinityPut(cache, blockCidr, borrowed: false, token, Precondition.Absent));
        }

        if (poolUpdate is not null)
            ops.Add(new TxnOp.Put(cache.PoolKey, IpamStoreAccess.Encode(poolUpdate with { W = token }, IpamStoreJsonContext.Default.PoolRecord), Precondition.VersionIs(cache.PoolVersion)));
        else if (claiming)
            ops.Add(new TxnOp.Check(cache.PoolKey, Precondition.VersionIs(cache.PoolVersion)));

        var result = await _store.CommitAsync(ops, token, ct).ConfigureAwait(false);
        if (!result.Applied)
            throw new StaleStateException();
        if (result.NewVersions[0] == 0)
        {
            _pools.TryRemove(cache.PoolKey, out _); // applied, but only recognised by our token: re-read next time
            return;
        }
        if (mine is not null)
        {
            mine.Record = written;
            mine.Version = result.NewVersions[0];
        }
        else if (claiming)
        {
            cache.Blocks[index] = new CachedBlock(blockCidr, index, blockKey, result.NewVersions[0], written, borrowed: false);
            cache.ExistingBlocks?.Add(index);
        }
        else if (slot.Kind == SlotKinds.Container)
        {
            _pools.TryRemove(cache.PoolKey, out _); // newly borrowed: the next load picks the block up from our affinity entry
        }
        if (poolUpdate is not null)
        {
            cache.Record = poolUpdate with { W = token };
            cache.PoolVersion = result.NewVersions[^1];
        }
    }

    private static void RefuseReserved(PoolCache cache, IPAddress address)
    {
        var blockCidr = cache.BlockOf(address, out _);
        UInt128 poolOrdinal = cache.PoolOrdinalOfBlockStart(blockCidr) + blockCidr.OrdinalOf(address);
        if (BlockGeometry.IsReserved(cache.Pool, poolOrdinal))
            throw SkeinException.Conflict($"{AddressInUse}: {IpAddressText.Format(address)} is the {(poolOrdinal == 0 ? "network" : "broadcast")} address of {cache.Pool}");
    }

    /// <summary>
    /// A static address in a block this node does not own is recorded as borrowed, so the collector finds the slot
    /// through this node's affinity entries if the node dies.
    /// </summary>
    private BlockRecord WithBorrower(BlockRecord block)
    {
        var borrowers = block.Borrowers ?? [];
        return borrowers.Contains(_node) ? block : block with { Borrowers = [.. borrowers, _node] };
    }

    /// <summary>The address this node holds, not yet bound, for the MAC in its cached blocks: a retried request.</summary>
    private static IPAddress? PendingAddressOf(PoolCache cache, string node, string mac)
    {
        foreach (var block in cache.Blocks.Values)
        {
            foreach (var (ordinal, held) in block.Record.Slots)
            {
                if (held.Kind == SlotKinds.Container && held.Node == node && held.Mac == mac && held.State != SlotKinds.Bound)
                    return block.Cidr.AddressAt((UInt128)ordinal);
            }
        }
        return null;
    }

    /// <summary>
    /// A dynamic address, in this order: the address this MAC already holds (a retried call); the
    /// lowest free, unquarantined address of the window, taken from this node's blocks or by
    /// claiming an unclaimed block that lies lower (so one host hands out addresses in Docker's
    /// lowest-first order); the address freed longest ago in this node's blocks; a slot borrowed
    /// from another node's block. In steady state this is one conditional write.
    /// </summary>
    private async Task<IPAddress> AllocateDynamicAsync(PoolCache cache, PoolId id, string? mac, CancellationToken ct)
    {
        var window = id.Window;
        if (mac is not null && PendingAddressOf(cache, _node, mac) is { } repeat)
            return repeat;

        var (best, oldestFreed) = PickFree(cache, window, NowSeconds(), ownedOnly: false);
        var claimed = await ClaimLowerBlockAsync(cache, id, mac, best?.Block.Index, ct).ConfigureAwait(false);
        if (claimed is not null)
            return claimed;
        if ((best ?? oldestFreed) is { } free)
            return await TakeOrdinalAsync(cache, free.Block, free.Ordinal, mac, ct).ConfigureAwait(false);
        if (!_options.StrictAffinity)
        {
            var borrowed = await BorrowAsync(cache, id, mac, ct).ConfigureAwait(false);
            if (borrowed is not null)
                return borrowed;
        }
        // The cached blocks may be older than the store (the collector freed a dead node's slots in a block this node
        // holds): re-read once before calling the pool exhausted.
        if (!cache.JustRead)
            throw new StaleStateException();
        throw SkeinException.Conflict($"{NoAddresses}: every address of {window} in pool {id} is taken");
    }

    /// <summary>
    /// The lowest free, unquarantined address of the window in the cached blocks (ascending), and failing that the
    /// one freed longest ago; <paramref name="ownedOnly"/> skips borrowed blocks.
    /// </summary>
    private ((CachedBlock Block, int Ordinal)? Best, (CachedBlock Block, int Ordinal)? OldestFreed) PickFree(PoolCache cache, IpPrefix window, long now, bool ownedOnly)
    {
        long quarantine = (long)_options.Quarantine.TotalSeconds;
        (CachedBlock Block, int Ordinal)? oldest = null;
        long oldestFreed = long.MaxValue;
        foreach (var block in cache.Blocks.Values) // ascending block index
        {
            if (ownedOnly && (block.Borrowed || block.Record.Owner != _node))
                continue;
            if (!PoolCache.WindowRange(block.Cidr, window, out int first, out int last))
                continue;
            UInt128 blockStart = cache.PoolOrdinalOfBlockStart(block.Cidr);
            for (int ordinal = first; ordinal <= last; ordinal++)
            {
                if (block.Record.Slots.ContainsKey(ordinal) || BlockGeometry.IsReserved(cache.Pool, blockStart + (UInt128)ordinal))
                    continue;
                if (block.Record.Freed.TryGetValue(ordinal, out long freedAt) && now - freedAt < quarantine)
                {
                    if (freedAt < oldestFreed)
                        (oldest, oldestFreed) = ((block, ordinal), freedAt);
                    continue;
                }
                return ((block, ordinal), oldest);
            }
        }
        return (null, oldest);
    }

    private SlotRecord ContainerSlot(string? mac) =>
        new() { Kind = SlotKinds.Container, Node = _node, State = SlotKinds.Pending, Mac = mac, Ts = NowSeconds() };

    private async Task<IPAddress> TakeOrdinalAsync(PoolCache cache, CachedBlock block, int ordinal, string? mac, CancellationToken ct)
    {
        string token = _store.NextToken();
        var written = WithSlot(block.Record, ordinal, ContainerSlot(mac)) with { W = token };
        var put = new TxnOp.Put(block.Key, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.VersionIs(block.Version));
        var result = await _store.CommitAsync([put], token, ct).ConfigureAwait(false);
        if (!result.Applied)
            throw new StaleStateException();
        if (result.NewVersions[0] == 0)
            _pools.TryRemove(cache.PoolKey, out _);
        block.Record = written;
        block.Version = result.NewVersions[0];
        return block.Cidr.AddressAt((UInt128)ordinal);
    }

    /// <summary>
    /// Claims the lowest unclaimed block of the window below <paramref name="belowIndex"/> (all of the
    /// window when null), create-if-absent, together with its first free address. Which blocks exist
    /// is listed once per cache and then kept from our own claims, so the common case (every lower
    /// block already exists) reads nothing; a lost race lists them again.
    /// </summary>
    private async Task<IPAddress?> ClaimLowerBlockAsync(PoolCache cache, PoolId id, string? mac, UInt128? belowIndex, CancellationToken ct)
    {
        var window = id.Window;
        cache.BlockOf(window.Network, out var firstIndex);
        UInt128 blockCount = window.Length >= cache.BlockLength ? 1 : window.BlockCount(cache.BlockLength);
        UInt128 end = belowIndex is { } below ? UInt128.Min(below, firstIndex + blockCount) : firstIndex + blockCount;
        if (firstIndex >= end)
            return null;
        var existingBlocks = await ExistingBlocksAsync(cache, ct).ConfigureAwait(false);

        int budget = existingBlocks.Count + _options.MaxCasAttempts;
        for (UInt128 index = firstIndex; index < end && budget > 0; index++)
        {
            if (existingBlocks.Contains(index) || cache.Blocks.ContainsKey(index))
            {
                budget--;
                continue;
            }
            var blockCidr = cache.Pool.BlockAt(cache.BlockLength, index);
            string token = _store.NextToken();
            var fresh = NewBlock(cache, blockCidr, token);
            int ordinal = FirstFreeInWindow(cache, blockCidr, fresh, window);
            if (ordinal < 0)
                continue;
            var written = WithSlot(fresh, ordinal, ContainerSlot(mac));
            string blockKey = _keys.Block(cache.Space, cache.Pool, blockCidr);
            TxnOp[] ops =
            [
                new TxnOp.Check(cache.PoolKey, Precondition.VersionIs(cache.PoolVersion)),
                new TxnOp.Put(blockKey, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.Absent),
                AffinityPut(cache, blockCidr, borrowed: false, token, Precondition.Absent),
            ];
            var result = await _store.CommitAsync(ops, token, ct).ConfigureAwait(false);
            if (!result.Applied)
            {
                if (result.FailedOpIndex == 1)
                {
                    // Another node claimed it first, and other nodes have likely claimed the next ones since this
                    // node last listed the blocks (they all claim lowest first): list them again rather than lose a
                    // write on each. The blocks just learned above this one are skipped below at no cost (each skip
                    // takes one from the budget, given back here); the lost claim costs one.
                    int knownBefore = existingBlocks.Count;
                    existingBlocks = await ExistingBlocksAsync(cache, ct, relist: true).ConfigureAwait(false);
                    existingBlocks.Add(index);
                    budget += Math.Max(0, existingBlocks.Count - knownBefore - 1) - 1;
                    continue;
                }
                throw new StaleStateException();
            }
            existingBlocks.Add(index);
            if (result.NewVersions[1] == 0)
                _pools.TryRemove(cache.PoolKey, out _);
            else
                cache.Blocks[index] = new CachedBlock(blockCidr, index, blockKey, result.NewVersions[1], written, borrowed: false);
            return blockCidr.AddressAt((UInt128)ordinal);
        }
        return null;
    }

    /// <summary>
    /// Indexes of the pool's blocks that exist (anyone's): listed once per cache (or again with
    /// <paramref name="relist"/>), then kept up to date with this node's own claims.
    /// </summary>
    private async Task<HashSet<UInt128>> ExistingBlocksAsync(PoolCache cache, CancellationToken ct, bool relist = false)
    {
        if (cache.ExistingBlocks is { } known && !relist)
            return known;
        var (keys, _) = await _store.ListAsync(_keys.BlocksOf(cache.Space, cache.Pool), keysOnly: true, ct).ConfigureAwait(false);
        var existing = new HashSet<UInt128>();
        foreach (var key in keys)
        {
            if (IpPrefix.TryParseKeySegment(StoreKeys.LastSegment(key.Key), out var cidr) && cache.Pool.Contains(cidr) && cidr.Length == cache.BlockLength)
                existing.Add(cache.Pool.BlockIndexOf(cidr.Network, cache.BlockLength));
        }
        cache.ExistingBlocks = existing;
        return existing;
    }

    /// <summary>Near exhaustion: one free address from a block another node owns, recorded as borrowed.</summary>
    private async Task<IPAddress?> BorrowAsync(PoolCache cache, PoolId id, string? mac, CancellationToken ct)
    {
        var window = id.Window;
        var (entries, _) = await _store.ListAsync(_keys.BlocksOf(cache.Space, cache.Pool), keysOnly: false, ct).ConfigureAwait(false);
        var candidates = entries.ToArray();
        Random.Shared.Shuffle(candidates);
        long now = NowSeconds();
        long quarantine = (long)_options.Quarantine.TotalSeconds;
        foreach (var entry in candidates)
        {
            if (!IpPrefix.TryParseKeySegment(StoreKeys.LastSegment(entry.Key), out var blockCidr) || !blockCidr.Overlaps(window))
                continue;
            var index = cache.Pool.BlockIndexOf(blockCidr.Network, cache.BlockLength);
            if (cache.Blocks.ContainsKey(index))
                continue;
            var record = IpamStoreAccess.Decode(entry, IpamStoreJsonContext.Default.BlockRecord);
            int ordinal = FirstFreeInWindow(cache, blockCidr, record, window, now, quarantine);
            if (ordinal < 0)
                continue;
            string token = _store.NextToken();
            var borrowers = record.Borrowers ?? [];
            var written = WithSlot(record, ordinal, ContainerSlot(mac)) with
            {
                W = token,
                Borrowers = borrowers.Contains(_node) ? borrowers : [.. borrowers, _node],
            };
            TxnOp[] ops =
            [
                new TxnOp.Put(entry.Key, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.VersionIs(entry.Version)),
                AffinityPut(cache, blockCidr, borrowed: true, token, Precondition.None),
            ];
            var result = await _store.CommitAsync(ops, token, ct).ConfigureAwait(false);
            if (!result.Applied)
                continue;
            if (result.NewVersions[0] == 0)
                _pools.TryRemove(cache.PoolKey, out _);
            else
                cache.Blocks[index] = new CachedBlock(blockCidr, index, entry.Key, result.NewVersions[0], written, borrowed: true);
            return blockCidr.AddressAt((UInt128)ordinal);
        }
        return null;
    }

    private static int FirstFreeInWindow(PoolCache cache, IpPrefix blockCidr, BlockRecord record, IpPrefix window, long now = 0, long quarantine = 0)
    {
        if (!PoolCache.WindowRange(blockCidr, window, out int first, out int last))
            return -1;
        UInt128 blockStart = cache.PoolOrdinalOfBlockStart(blockCidr);
        for (int ordinal = first; ordinal <= last; ordinal++)
        {
            if (record.Slots.ContainsKey(ordinal) || BlockGeometry.IsReserved(cache.Pool, blockStart + (UInt128)ordinal))
                continue;
            if (quarantine > 0 && record.Freed.TryGetValue(ordinal, out long freedAt) && now - freedAt < quarantine)
                continue;
            return ordinal;
        }
        return -1;
    }

    /// <summary>A new block owned by this node, with the pool's reserved addresses that fall inside it.</summary>
    private BlockRecord NewBlock(PoolCache cache, IpPrefix blockCidr, string token)
    {
        var slots = new Dictionary<int, SlotRecord>();
        UInt128 blockStart = cache.PoolOrdinalOfBlockStart(blockCidr);
        long now = NowSeconds();
        foreach (UInt128 reserved in cache.Pool.IsV6 ? [UInt128.Zero] : new[] { UInt128.Zero, cache.Pool.LastOrdinal })
        {
            if (reserved >= blockStart && reserved - blockStart <= blockCidr.LastOrdinal)
                slots[(int)(reserved - blockStart)] = new SlotRecord { Kind = SlotKinds.Reserved, Node = SlotKinds.AnyNode, Ts = now };
        }
        return new BlockRecord { W = token, Owner = _node, OwnerInc = _incarnation, Slots = slots };
    }

    private static BlockRecord WithSlot(BlockRecord block, int ordinal, SlotRecord slot)
    {
        var slots = new Dictionary<int, SlotRecord>(block.Slots) { [ordinal] = slot };
        var freed = block.Freed;
        if (freed.ContainsKey(ordinal))
        {
            freed = new Dictionary<int, long>(freed);
            freed.Remove(ordinal);
        }
        return block with { Slots = slots, Freed = freed };
    }

    private TxnOp AffinityPut(PoolCache cache, IpPrefix blockCidr, bool borrowed, string token, Precondition pre) =>
        new TxnOp.Put(_keys.Affinity(_node, cache.Space, cache.Pool, blockCidr),
            IpamStoreAccess.Encode(new AffinityRecord { W = token, Borrowed = borrowed }, IpamStoreJsonContext.Default.AffinityRecord), pre);

    /// <summary>
    /// IpamDriver.ReleaseAddress: frees this node's endpoint address and quarantines it. Gateway, aux
    /// and reserved slots stay until the pool goes; another node's slot is never freed; an address
    /// that is already free is fine (a late or repeated release).
    /// </summary>
    public async Task ReleaseAddressAsync(ReleaseAddressRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var id = PoolId.Parse(request.PoolID);
        if (string.IsNullOrEmpty(request.Address))
            throw SkeinException.Invalid("Address is missing: ReleaseAddress needs the address to release");
        var address = IpAddressText.Parse(request.Address, "Address");
        if (!id.Pool.Contains(address))
            throw SkeinException.Invalid($"{OutOfRange}: {IpAddressText.Format(address)} is not inside pool {id.Pool}");

        await ReplayIfDueAsync(ct).ConfigureAwait(false);
        if (UseJournal(id.Space, id.Pool))
        {
            await ReleaseFromJournalAsync(id, address, ct).ConfigureAwait(false);
            return;
        }
        try
        {
            await ReleaseInCacheAsync(id, address, ct).ConfigureAwait(false);
        }
        catch (SkeinException e) when (CanJournal && IsOutage(e))
        {
            EnterOutage(e);
            await ReleaseFromJournalAsync(id, address, ct).ConfigureAwait(false);
        }
    }

    private Task ReleaseInCacheAsync(PoolId id, IPAddress address, CancellationToken ct) =>
        WithPoolAsync(id.Space, id.Pool, async cache =>
        {
            var blockCidr = cache.BlockOf(address, out var index);
            int ordinal = (int)blockCidr.OrdinalOf(address);
            string blockKey = _keys.Block(cache.Space, cache.Pool, blockCidr);
            var mine = cache.Blocks.GetValueOrDefault(index);
            (BlockRecord Value, long Version)? current = mine is not null
                ? (mine.Record, mine.Version)
                : await _store.ReadAsync(blockKey, IpamStoreJsonContext.Default.BlockRecord, ct).ConfigureAwait(false);
            if (current is not { } block || !block.Value.Slots.TryGetValue(ordinal, out var slot))
                return true;
            if (slot.Kind != SlotKinds.Container || slot.Node != _node)
                return true;

            string token = _store.NextToken();
            long now = NowSeconds();
            var slots = new Dictionary<int, SlotRecord>(block.Value.Slots);
            slots.Remove(ordinal);
            long quarantine = (long)_options.Quarantine.TotalSeconds;
            var freed = block.Value.Freed.Where(f => now - f.Value < quarantine).ToDictionary();
            freed[ordinal] = now;
            var written = block.Value with { W = token, Slots = slots, Freed = freed };
            var put = new TxnOp.Put(blockKey, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.VersionIs(block.Version));
            var result = await _store.CommitAsync([put], token, ct).ConfigureAwait(false);
            if (!result.Applied)
                throw new StaleStateException();
            if (mine is not null && result.NewVersions[0] != 0)
            {
                mine.Record = written;
                mine.Version = result.NewVersions[0];
            }
            else
            {
                _pools.TryRemove(cache.PoolKey, out _);
            }
            return true;
        }, ct);

    /// <summary>
    /// Called by the network driver at CreateEndpoint: marks this node's pending slot for the address
    /// as bound to the endpoint (cluster-store §4.8). With no PoolID the pool is found by address among
    /// the pools this node holds. False when no slot of this node holds the address (for example an
    /// address from another IPAM driver).
    /// </summary>
    public Task<bool> MarkEndpointBoundAsync(string? poolId, IPAddress address, string endpointId, CancellationToken ct) =>
        MarkEndpointAsync(poolId, address, endpointId, bind: true, ct);

    /// <summary>Called at DeleteEndpoint: the slot returns to pending; the IPAM ReleaseAddress that follows frees it.</summary>
    public Task<bool> MarkEndpointUnboundAsync(string? poolId, IPAddress address, string endpointId, CancellationToken ct) =>
        MarkEndpointAsync(poolId, address, endpointId, bind: false, ct);

    private async Task<bool> MarkEndpointAsync(string? poolId, IPAddress address, string endpointId, bool bind, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (endpointId is null || !EndpointIdPattern().IsMatch(endpointId))
            throw SkeinException.Invalid($"EndpointID '{IpAddressText.Printable(endpointId ?? "")}' must be 1-64 characters of a-z and 0-9");

        await ReplayIfDueAsync(ct).ConfigureAwait(false);
        if (!string.IsNullOrEmpty(poolId))
        {
            var id = PoolId.Parse(poolId);
            if (!id.Pool.Contains(address))
                throw SkeinException.Invalid($"{OutOfRange}: {IpAddressText.Format(address)} is not inside pool {id.Pool}");
            return await MarkInPoolAsync(id.Space, id.Pool, address, endpointId, bind, ct).ConfigureAwait(false);
        }

        // The pools this node already has in memory first (the usual case: RequestAddress just loaded it), then the store.
        var tried = new HashSet<string>(StringComparer.Ordinal);
        foreach (var cache in _pools.Values.Where(c => c.Pool.Contains(address) && c.Record.Users.ContainsKey(_node)).ToList())
        {
            tried.Add(cache.PoolKey);
            if (await TryMarkInPoolAsync(cache.Space, cache.Pool, address, endpointId, bind, ct).ConfigureAwait(false))
                return true;
        }
        var (pools, _) = await _store.ListAsync(_keys.Pools, keysOnly: false, ct).ConfigureAwait(false);
        foreach (var entry in pools)
        {
            var record = IpamStoreAccess.Decode(entry, IpamStoreJsonContext.Default.PoolRecord);
            if (!record.Users.ContainsKey(_node) || !IpPrefix.TryParse(record.Cidr, false, out var pool, out _) || !pool.Contains(address))
                continue;
            if (tried.Contains(_keys.Pool(record.Space, pool)))
                continue;
            if (await TryMarkInPoolAsync(record.Space, pool, address, endpointId, bind, ct).ConfigureAwait(false))
                return true;
        }
        return false;
    }

    private async Task<bool> TryMarkInPoolAsync(string space, IpPrefix pool, IPAddress address, string endpointId, bool bind, CancellationToken ct)
    {
        try
        {
            return await MarkInPoolAsync(space, pool, address, endpointId, bind, ct).ConfigureAwait(false);
        }
        catch (SkeinException e) when (e.Kind == ErrorKind.NotFound)
        {
            return false;
        }
    }

    private async Task<bool> MarkInPoolAsync(string space, IpPrefix pool, IPAddress address, string endpointId, bool bind, CancellationToken ct)
    {
        if (UseJournal(space, pool))
            return await MarkFromJournalAsync(space, pool, address, endpointId, bind, ct).ConfigureAwait(false);
        try
        {
            return await WithPoolAsync(space, pool, cache => MarkSlotAsync(cache, address, endpointId, bind, ct), ct).ConfigureAwait(false);
        }
        catch (SkeinException e) when (CanJournal && IsOutage(e))
        {
            EnterOutage(e);
            return await MarkFromJournalAsync(space, pool, address, endpointId, bind, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The slot after a bind or unbind: the same object when nothing changes, null when it is not this endpoint's to change.</summary>
    private SlotRecord? MarkedSlot(SlotRecord slot, string endpointId, bool bind)
    {
        if (slot.Kind != SlotKinds.Container || slot.Node != _node)
            return null;
        if (bind)
            return slot.State == SlotKinds.Bound && slot.Eid == endpointId ? slot : slot with { State = SlotKinds.Bound, Eid = endpointId };
        if (slot.State != SlotKinds.Bound)
            return slot;
        if (slot.Eid != endpointId)
            return null;
        return slot with { State = SlotKinds.Pending, Eid = null, Ts = NowSeconds() };
    }

    private async Task<bool> MarkSlotAsync(PoolCache cache, IPAddress address, string endpointId, bool bind, CancellationToken ct)
    {
        cache.BlockOf(address, out var index);
        if (!cache.Blocks.TryGetValue(index, out var block))
            return false;
        int ordinal = (int)block.Cidr.OrdinalOf(address);
        if (!block.Record.Slots.TryGetValue(ordinal, out var slot) || MarkedSlot(slot, endpointId, bind) is not { } updated)
            return false;
        if (ReferenceEquals(updated, slot))
            return true;
        string token = _store.NextToken();
        var written = WithSlot(block.Record, ordinal, updated) with { W = token };
        var put = new TxnOp.Put(block.Key, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.VersionIs(block.Version));
        var result = await _store.CommitAsync([put], token, ct).ConfigureAwait(false);
        if (!result.Applied)
            throw new StaleStateException();
        if (result.NewVersions[0] == 0)
        {
            _pools.TryRemove(cache.PoolKey, out _);
        }
        else
        {
            block.Record = written;
            block.Version = result.NewVersions[0];
        }
        return true;
    }

    /// <summary>
    /// Frees this node's endpoint addresses in the pool that are still pending (never bound by
    /// CreateEndpoint, or unbound by DeleteEndpoint) for longer than <paramref name="olderThan"/>:
    /// repairs an engine crash between RequestAddress and CreateEndpoint (cluster-store §4.8). Only for
    /// pools whose endpoints skein's own driver creates; returns the addresses freed.
    /// </summary>
    public async Task<IReadOnlyList<IPAddress>> ExpirePendingAsync(string poolId, TimeSpan olderThan, CancellationToken ct)
    {
        var id = PoolId.Parse(poolId);
        if (olderThan < TimeSpan.Zero)
            throw SkeinException.Invalid("olderThan must not be negative");
        if (UseJournal(id.Space, id.Pool))
            return []; // after the replay
        return await WithPoolAsync(id.Space, id.Pool, async cache =>
        {
            long now = NowSeconds();
            long quarantine = (long)_options.Quarantine.TotalSeconds;
            var freedAddresses = new List<IPAddress>();
            foreach (var block in cache.Blocks.Values)
            {
                var stale = block.Record.Slots
                    .Where(s => s.Value.Kind == SlotKinds.Container && s.Value.Node == _node && s.Value.State != SlotKinds.Bound
                        && now - s.Value.Ts >= (long)olderThan.TotalSeconds)
                    .Select(s => s.Key).ToList();
                if (stale.Count == 0)
                    continue;
                string token = _store.NextToken();
                var slots = new Dictionary<int, SlotRecord>(block.Record.Slots);
                var freed = block.Record.Freed.Where(f => now - f.Value < quarantine).ToDictionary();
                foreach (int ordinal in stale)
                {
                    slots.Remove(ordinal);
                    freed[ordinal] = now;
                }
                var written = block.Record with { W = token, Slots = slots, Freed = freed };
                var put = new TxnOp.Put(block.Key, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.VersionIs(block.Version));
                var result = await _store.CommitAsync([put], token, ct).ConfigureAwait(false);
                if (!result.Applied)
                    throw new StaleStateException();
                block.Record = written;
                block.Version = result.NewVersions[0];
                if (result.NewVersions[0] == 0)
                    _pools.TryRemove(cache.PoolKey, out _);
                freedAddresses.AddRange(stale.Select(o => block.Cidr.AddressAt((UInt128)o)));
            }
            return (IReadOnlyList<IPAddress>)freedAddresses;
        }, ct).ConfigureAwait(false);
    }

    /// <summary>Six hex pairs separated by ':' or '-', returned lower-case with ':' (the engine's form).</summary>
    private static string NormalizeMac(string text)
    {
        string lower = text.ToLowerInvariant().Replace('-', ':');
        string[] parts = lower.Split(':');
        bool valid = parts.Length == 6 && parts.All(p => p.Length == 2 && p.All(char.IsAsciiHexDigit));
        if (!valid)
            throw SkeinException.Invalid($"option {IpamLabels.MacAddress}='{IpAddressText.Printable(text)}' is not a MAC address like 02:42:ac:11:00:02");
        return lower;
    }
}
