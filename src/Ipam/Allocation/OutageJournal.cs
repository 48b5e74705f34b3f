using System.Text;
using System.Text.Json;
using Skein.Ipam.Store.Embedded;

namespace Skein.Ipam.Allocation;

/// <summary>
/// One change the IPAM made to a block it owns while the cluster store was unreachable (decisions #18): the slot an
/// address should hold now, or none (released at <see cref="Ts"/>).
/// </summary>
internal sealed record JournalEntry
{
    public int V { get; init; } = IpamStoreJsonContext.Schema;
    public string Space { get; init; } = "";
    public string Pool { get; init; } = "";
    public string Addr { get; init; } = "";
    /// <summary>The slot the address holds after the change; null when it was released.</summary>
    public SlotRecord? Slot { get; init; }
    public long Ts { get; init; }
}

/// <summary>
/// The local journal of outage changes: JSON lines appended and fsynced before the engine gets its answer, so a
/// crash loses nothing the engine was told. A torn last line (crash while appending) is dropped when the journal
/// is opened: its change was never acknowledged. Replayed entries are cut from the front by rewriting the file
/// (temp file, fsync, rename, fsync of the directory).
/// </summary>
internal sealed class OutageJournal : IDisposable
{
    public const string FileName = "ipam-outage-journal";

    private readonly string _path;
    private readonly Lock _gate = new();
    private readonly List<JournalEntry> _entries;
    private FileStream _file;

    private OutageJournal(string path, List<JournalEntry> entries, FileStream file)
    {
        _path = path;
        _entries = entries;
        _file = file;
    }

    public static OutageJournal Open(string directory)
    {
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, FileName);
        var entries = new List<JournalEntry>();
        bool torn = false;
        if (File.Exists(path))
        {
            foreach (var line in File.ReadAllText(path, Encoding.UTF8).Split('\n'))
            {
                if (line.Length == 0)
                    continue;
                try
                {
                    var entry = JsonSerializer.Deserialize(line, IpamStoreJsonContext.Default.JournalEntry);
                    if (entry is null || entry.Addr.Length == 0)
                    {
                        torn = true;
                        break;
                    }
                    entries.Add(entry);
                }
                catch (JsonException)
                {
                    torn = true;
                    break;
                }
            }
        }
        if (torn)
            Rewrite(path, entries);
        var file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
        return new OutageJournal(path, entries, file);
    }

    public bool IsEmpty
    {
        get
        {
            lock (_gate)
                return _entries.Count == 0;
        }
    }

    public int Count
    {
        get
        {
            lock (_gate)
                return _entries.Count;
        }
    }

    public IReadOnlyList<JournalEntry> Snapshot()
    {
        lock (_gate)
            return [.. _entries];
    }

    /// <summary>Appends and fsyncs; when this returns the change survives a crash.</summary>
    public void Append(JournalEntry entry)
    {
        var line = JsonSerializer.SerializeToUtf8Bytes(entry, IpamStoreJsonContext.Default.JournalEntry);
        lock (_gate)
        {
            _file.Write(line);
            _file.WriteByte((byte)'\n');
            _file.Flush();
            NativeFile.FsyncFile(_file.SafeFileHandle);
            _entries.Add(entry);
        }
    }

    /// <summary>The entries of one pool, oldest first.</summary>
    public IReadOnlyList<JournalEntry> EntriesFor(string space, string pool)
    {
        lock (_gate)
            return [.. _entries.Where(e => IsOf(e, space, pool))];
    }

    public bool HasEntriesFor(string space, string pool)
    {
        lock (_gate)
            return _entries.Any(e => IsOf(e, space, pool));
    }

    /// <summary>True when a change to this address (canonical text) still waits for replay.</summary>
    public bool Mentions(string address)
    {
        lock (_gate)
            return _entries.Any(e => e.Addr == address);
    }

    private static bool IsOf(JournalEntry entry, string space, string pool) =>
        entry.Pool == pool && string.Equals(entry.Space, space, StringComparison.OrdinalIgnoreCase);

    /// <summary>Forgets replayed entries (these very objects); entries appended meanwhile stay.</summary>
    public void Remove(IReadOnlyCollection<JournalEntry> replayed)
    {
        lock (_gate)
        {
            var gone = new HashSet<JournalEntry>(replayed, ReferenceEqualityComparer.Instance);
            if (_entries.RemoveAll(gone.Contains) == 0)
                return;
            _file.Dispose();
            Rewrite(_path, _entries);
            _file = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read);
        }
    }

    private static void Rewrite(string path, IReadOnlyList<JournalEntry> entries)
    {
        string temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            foreach (var entry in entries)
            {
                file.Write(JsonSerializer.SerializeToUtf8Bytes(entry, IpamStoreJsonContext.Default.JournalEntry));
                file.WriteByte((byte)'\n');
            }
            file.Flush();
            NativeFile.FsyncFile(file.SafeFileHandle);
        }
        File.Move(temp, path, overwrite: true);
        NativeFile.FsyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    public void Dispose()
    {
        lock (_gate)
            _file.Dispose();
    }
}
