using System.Net;
using Skein.Ipam.Addressing;

namespace Skein.Ipam.Allocation;

/// <summary>A block this node allocates from (owned or borrowed), as last read or written.</summary>
internal sealed class CachedBlock(IpPrefix cidr, UInt128 index, string key, long version, BlockRecord record, bool borrowed)
{
    public IpPrefix Cidr { get; } = cidr;
    public UInt128 Index { get; } = index;
    public string Key { get; } = key;
    public long Version { get; set; } = version;
    public BlockRecord Record { get; set; } = record;
    public bool Borrowed { get; } = borrowed;
}

/// <summary>
/// This node's view of one pool: the pool record and the blocks it allocates from, loaded from the
/// store on first use (or after any conflict) and kept up to date by its own writes. Only touched
/// under the pool's lock.
/// </summary>
internal sealed class PoolCache(string space, IpPrefix pool, string poolKey, long poolVersion, PoolRecord record)
{
    public string Space { get; } = space;
    public IpPrefix Pool { get; } = pool;
    public string PoolKey { get; } = poolKey;
    public long PoolVersion { get; set; } = poolVersion;
    public PoolRecord Record { get; set; } = record;
    public int BlockLength => Record.BlockLen;
    public SortedDictionary<UInt128, CachedBlock> Blocks { get; } = [];
    /// <summary>True while the request that read this cache from the store is still using it.</summary>
    public bool JustRead { get; set; }

    /// <summary>Indexes of blocks known to exist (anyone's); null until first listed.</summary>
    public HashSet<UInt128>? ExistingBlocks { get; set; }

    public IpPrefix BlockOf(IPAddress address, out UInt128 index)
    {
        index = Pool.BlockIndexOf(address, BlockLength);
        return Pool.BlockAt(BlockLength, index);
    }

    /// <summary>Ordinal of the block's first address within the pool (for the reserved-address rule).</summary>
    public UInt128 PoolOrdinalOfBlockStart(IpPrefix block) => block.NetworkNumber - Pool.NetworkNumber;

    /// <summary>The block ordinals [first, last] that lie inside the window, or false if they do not meet.</summary>
    public static bool WindowRange(IpPrefix block, IpPrefix window, out int first, out int last)
    {
        first = last = 0;
        if (!block.Overlaps(window))
            return false;
        if (window.Contains(block))
        {
            last = (int)block.LastOrdinal;
            return true;
        }
        first = (int)(window.NetworkNumber - block.NetworkNumber);
        last = first + (int)window.LastOrdinal;
        return true;
    }
}
