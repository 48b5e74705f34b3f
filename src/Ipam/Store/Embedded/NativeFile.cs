using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Skein.Ipam.Store.Embedded;

/// <summary>
/// The two POSIX calls .NET does not expose: an explicit advisory flock on the store's lock file
/// (so two skein processes can never share one embedded store) and fsync of a directory (so a
/// rename survives a power loss, decisions #21).
/// </summary>
internal static partial class NativeFile
{
    private const int LockExclusive = 2;
    private const int LockNonBlocking = 4;
    private const int OpenReadOnly = 0;
    private const int OpenDirectory = 0x10000; // O_DIRECTORY on Linux
    private const int OpenCloseOnExec = 0x80000; // O_CLOEXEC on Linux
    private const int ErrnoWouldBlock = 11; // EWOULDBLOCK == EAGAIN on Linux
    private const int ErrnoInterrupted = 4;

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(SafeFileHandle fd, int operation);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FsyncHandle(SafeFileHandle fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    /// <summary>Takes an exclusive, non-blocking flock; false when another open file description holds it.</summary>
    public static bool TryLockExclusive(SafeFileHandle handle)
    {
        while (true)
        {
            if (Flock(handle, LockExclusive | LockNonBlocking) == 0)
                return true;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == ErrnoInterrupted)
                continue;
            if (errno == ErrnoWouldBlock)
                return false;
            throw new IOException($"flock failed with errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
        }
    }

    /// <summary>
    /// fsync of an open file, callable while another thread appends to it (FileStream.Flush is not
    /// documented as safe against a concurrent Write; the system call is).
    /// </summary>
    public static void FsyncFile(SafeFileHandle handle)
    {
        while (FsyncHandle(handle) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno != ErrnoInterrupted)
                throw new IOException($"fsync failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
        }
    }

    public static void FsyncDirectory(string directory)
    {
        var fd = Open(directory, OpenReadOnly | OpenDirectory | OpenCloseOnExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot open directory '{directory}' to fsync it: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
        }
        try
        {
            if (Fsync(fd) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new IOException($"fsync of directory '{directory}' failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
            }
        }
        finally
        {
            Close(fd);
        }
    }
}
