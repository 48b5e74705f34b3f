using System.Text.Json;
using Skein.Ipam.Store.Embedded;

namespace Skein.Ipam.Allocation;

/// <summary>
/// A pool as this host held it in memory when its first outage change was journaled: the pool record, the blocks it
/// allocates from (each as last acknowledged by the store), and when the store last confirmed this host. From then on
/// every change to the pool goes to the journal until the replay, so snapshot + journal is the pool exactly, also
/// for a process restarted during the outage.
/// </summary>
internal sealed record PoolSnapshot
{
    public int V { get; init; } = IpamStoreJsonContext.Schema;
    public string Space { get; init; } = "";
    public string Pool { get; init; } = "";
    public long PoolVersion { get; init; }
    public PoolRecord? Record { get; init; }
    public DateTimeOffset LastConfirmed { get; init; }
    public List<BlockSnapshot> Blocks { get; init; } = [];
}

internal sealed record BlockSnapshot
{
    public string Cidr { get; init; } = "";
    public string Key { get; init; } = "";
    public long Version { get; init; }
    public BlockRecord? Record { get; init; }
    public bool Borrowed { get; init; }
}

/// <summary>
/// The pool snapshots beside the outage journal (<c>ipam-outage-pools/</c>), one file per pool, written atomically and
/// fsynced before the pool's first journal entry, removed once the pool's entries are replayed.
/// </summary>
internal sealed class OutageSnapshots(string directory)
{
    public const string DirectoryName = "ipam-outage-pools";

    private readonly string _directory = Path.Combine(directory, DirectoryName);

    public void Save(PoolSnapshot snapshot)
    {
        Directory.CreateDirectory(_directory);
        string path = PathOf(snapshot.Space, snapshot.Pool);
        string temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(JsonSerializer.SerializeToUtf8Bytes(snapshot, IpamStoreJsonContext.Default.PoolSnapshot));
            file.Flush();
            NativeFile.FsyncFile(file.SafeFileHandle);
        }
        File.Move(temp, path, overwrite: true);
        NativeFile.FsyncDirectory(_directory);
    }

    /// <summary>Null when there is none, or it cannot be read (then the pool is unknown, as without snapshots).</summary>
    public PoolSnapshot? Load(string space, string pool)
    {
        try
        {
            var snapshot = JsonSerializer.Deserialize(File.ReadAllBytes(PathOf(space, pool)), IpamStoreJsonContext.Default.PoolSnapshot);
            return snapshot is { Record: not null, V: IpamStoreJsonContext.Schema } && snapshot.Blocks.All(b => b.Record is not null)
                && snapshot.Pool == pool && string.Equals(snapshot.Space, space, StringComparison.OrdinalIgnoreCase)
                ? snapshot
                : null;
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Best effort: a snapshot left behind is removed at the next start (it has no journal entries then).</summary>
    public void TryDelete(string space, string pool)
    {
        try
        {
            File.Delete(PathOf(space, pool));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Removes the snapshots of pools with nothing left to replay (a crash between replay and removal).</summary>
    public void DeleteAllBut(Func<string, string, bool> keep)
    {
        if (!Directory.Exists(_directory))
            return;
        foreach (var path in Directory.EnumerateFiles(_directory))
        {
            try
            {
                PoolSnapshot? snapshot = null;
                if (path.EndsWith(".json", StringComparison.Ordinal))
                {
                    try
                    {
                        snapshot = JsonSerializer.Deserialize(File.ReadAllBytes(path), IpamStoreJsonContext.Default.PoolSnapshot);
                    }
                    catch (JsonException)
                    {
                    }
                }
                if (snapshot is null || !keep(snapshot.Space, snapshot.Pool))
                    File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Best effort: a file that cannot be read or removed is never used (Load checks what it holds).
            }
        }
    }

    /// <summary>One file per pool, named by a hash of the space (case-folded) and the pool, so no two pools share one.</summary>
    private string PathOf(string space, string pool)
    {
        var digest = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(StoreKeys.SpaceSegment(space) + "\n" + pool));
        return Path.Combine(_directory, Convert.ToHexStringLower(digest.AsSpan(0, 12)) + ".json");
    }
}
