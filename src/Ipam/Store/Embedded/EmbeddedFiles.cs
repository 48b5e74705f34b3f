using System.Buffers.Binary;
using System.Text;

namespace Skein.Ipam.Store.Embedded;

/// <summary>One change inside a committed transaction, as the log records it.</summary>
internal abstract record Mutation(string Key)
{
    public sealed record Put(KvEntry Entry) : Mutation(Entry.Key);
    public sealed record Delete(string Key) : Mutation(Key);
}

internal sealed record CommittedTxn(long Revision, IReadOnlyList<Mutation> Mutations);

/// <summary>
/// The embedded store's two files.
/// <c>log</c>: committed transactions, appended in revision order and fsynced in groups (one fsync
/// covers every record appended before it started; no write is acknowledged before that); each record is
/// [u32 payload length][u32 CRC-32C of payload][payload], so a write torn by a crash is recognised
/// on open and cut off. <c>snapshot</c>: the full persistent state at one revision, written to a
/// temporary name, fsynced, renamed and the directory fsynced (decisions #21). Replay loads the
/// snapshot and then every log record with a higher revision. All integers are little endian.
/// </summary>
internal static class EmbeddedFiles
{
    public const string LogName = "log";
    public const string SnapshotName = "snapshot";
    public const string SnapshotTempName = "snapshot.tmp";
    public const string LockName = "lock";
    public const string OwnerName = "owner";

    private const int RecordHeaderBytes = 8;
    private const int MaxRecordBytes = 64 * 1024 * 1024;
    private const byte PutTag = 1;
    private const byte DeleteTag = 2;
    private static readonly byte[] SnapshotMagic = "SKEINSN1"u8.ToArray();

    public static byte[] EncodeRecord(CommittedTxn txn)
    {
        using var payload = new MemoryStream();
        using (var writer = new BinaryWriter(payload, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(txn.Revision);
            writer.Write(txn.Mutations.Count);
            foreach (var mutation in txn.Mutations)
            {
                switch (mutation)
                {
                    case Mutation.Put put:
                        writer.Write(PutTag);
                        WriteEntry(writer, put.Entry);
                        break;
                    case Mutation.Delete delete:
                        writer.Write(DeleteTag);
                        writer.Write(delete.Key);
                        break;
                }
            }
        }
        var body = payload.GetBuffer().AsSpan(0, (int)payload.Length);
        var record = new byte[RecordHeaderBytes + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)body.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(4), Crc32C.Compute(body));
        body.CopyTo(record.AsSpan(RecordHeaderBytes));
        return record;
    }

    /// <summary>
    /// Reads every intact record from the start of the log. Stops at the first incomplete or
    /// checksum-failing record and reports the length of the intact part. Every acknowledged record
    /// lies before the end of the last successful fsync, so a crash can damage only records that were
    /// never acknowledged, all at the tail; dropping everything from the first bad record on loses none.
    /// </summary>
    public static List<CommittedTxn> ReadLog(Stream log, out long intactLength)
    {
        var result = new List<CommittedTxn>();
        intactLength = 0;
        log.Position = 0;
        var header = new byte[RecordHeaderBytes];
        while (true)
        {
            if (!ReadFully(log, header))
                break;
            var length = BinaryPrimitives.ReadUInt32LittleEndian(header);
            var crc = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4));
            if (length > MaxRecordBytes)
                break;
            var body = new byte[length];
            if (!ReadFully(log, body) || Crc32C.Compute(body) != crc)
                break;
            result.Add(DecodeRecord(body));
            intactLength += RecordHeaderBytes + length;
        }
        return result;
    }

    public static void WriteSnapshot(string directory, long revision, IReadOnlyCollection<KvEntry> entries)
    {
        using var payload = new MemoryStream();
        using (var writer = new BinaryWriter(payload, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(SnapshotMagic);
            writer.Write(revision);
            writer.Write(entries.Count);
            foreach (var entry in entries)
                WriteEntry(writer, entry);
        }
        var body = payload.GetBuffer().AsSpan(0, (int)payload.Length);
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(crc, Crc32C.Compute(body));

        var tempPath = Path.Combine(directory, SnapshotTempName);
        using (var file = new FileStream(tempPath, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.None))
        {
            file.Write(body);
            file.Write(crc);
            file.Flush(flushToDisk: true);
        }
        File.Move(tempPath, Path.Combine(directory, SnapshotName), overwrite: true);
        NativeFile.FsyncDirectory(directory);
    }

    /// <summary>Reads the snapshot; (0, empty) when there is none. A damaged snapshot is an error, never ignored.</summary>
    public static (long Revision, List<KvEntry> Entries) ReadSnapshot(string directory)
    {
        var path = Path.Combine(directory, SnapshotName);
        if (!File.Exists(path))
            return (0, []);
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < SnapshotMagic.Length + 4 || !bytes.AsSpan(0, SnapshotMagic.Length).SequenceEqual(SnapshotMagic))
            throw new InvalidDataException($"embedded store snapshot '{path}' is not a skein snapshot");
        var body = bytes.AsSpan(0, bytes.Length - 4);
        if (Crc32C.Compute(body) != BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4)))
            throw new InvalidDataException($"embedded store snapshot '{path}' fails its checksum; it was damaged after it was written (snapshots are replaced atomically, so a crash cannot cause this)");
        using var reader = new BinaryReader(new MemoryStream(bytes, 0, bytes.Length - 4), Encoding.UTF8);
        reader.ReadBytes(SnapshotMagic.Length);
        var revision = reader.ReadInt64();
        var count = reader.ReadInt32();
        var entries = new List<KvEntry>(count);
        for (var i = 0; i < count; i++)
            entries.Add(ReadEntry(reader));
        return (revision, entries);
    }

    private static CommittedTxn DecodeRecord(byte[] body)
    {
        using var reader = new BinaryReader(new MemoryStream(body), Encoding.UTF8);
        var revision = reader.ReadInt64();
        var count = reader.ReadInt32();
        var mutations = new List<Mutation>(count);
        for (var i = 0; i < count; i++)
        {
            var tag = reader.ReadByte();
            mutations.Add(tag switch
            {
                PutTag => new Mutation.Put(ReadEntry(reader)),
                DeleteTag => new Mutation.Delete(reader.ReadString()),
                _ => throw new InvalidDataException($"embedded store log record at revision {revision} has unknown mutation tag {tag}"),
            });
        }
        return new CommittedTxn(revision, mutations);
    }

    private static void WriteEntry(BinaryWriter writer, KvEntry entry)
    {
        writer.Write(entry.Key);
        writer.Write(entry.Version);
        writer.Write(entry.CreateVersion);
        writer.Write(entry.Ephemeral);
        writer.Write(entry.Value.Length);
        writer.Write(entry.Value.Span);
    }

    private static KvEntry ReadEntry(BinaryReader reader)
    {
        var key = reader.ReadString();
        var version = reader.ReadInt64();
        var createVersion = reader.ReadInt64();
        var ephemeral = reader.ReadBoolean();
        var length = reader.ReadInt32();
        var value = reader.ReadBytes(length);
        if (value.Length != length)
            throw new EndOfStreamException();
        return new KvEntry(key, value, version, createVersion, ephemeral);
    }

    private static bool ReadFully(Stream stream, Span<byte> buffer)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var read = stream.Read(buffer[total..]);
            if (read == 0)
                return false;
            total += read;
        }
        return true;
    }
}
