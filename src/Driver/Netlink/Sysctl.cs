namespace Skein.Driver.Netlink;

/// <summary>
/// Reads (and, where /proc/sys is writable, writes) sysctls without a shell. /proc/sys/net shows the
/// namespace of the thread that opens the file, so access for another namespace runs on a dedicated
/// short-lived thread that joins it first. Inside a managed plugin /proc/sys is read-only: settings
/// that netlink cannot set (IPv6 per-device, ip_forward, bridge-nf-call-*) are for reading and
/// reporting; per-device IPv4 settings go through <see cref="RtNetlink.SetIPv4DeviceConf"/>.
/// </summary>
public static class Sysctl
{
    private const string Root = "/proc/sys/";

    /// <summary>Reads a sysctl in the current namespace: "net.ipv4.ip_forward" or "net/ipv4/ip_forward" (use the slash form when a device name has dots).</summary>
    public static string Read(string key) => ReadPath(ToPath(key), key);

    public static string Read(string key, int namespaceFd)
    {
        string path = ToPath(key);
        return NetworkNamespaceThread.Run(namespaceFd, $"read sysctl {key}", () => ReadPath(path, key));
    }

    /// <summary>Null when the key does not exist (e.g. net.bridge.* without br_netfilter loaded).</summary>
    public static string? TryRead(string key)
    {
        string path = ToPath(key);
        return File.Exists(path) ? ReadPath(path, key) : null;
    }

    public static void Write(string key, string value) => WritePath(ToPath(key), key, value);

    public static void Write(string key, string value, int namespaceFd)
    {
        string path = ToPath(key);
        NetworkNamespaceThread.Run(namespaceFd, $"write sysctl {key}", () =>
        {
            WritePath(path, key, value);
            return 0;
        });
    }

    /// <summary>"net.ipv4.ip_forward" → "/proc/sys/net/ipv4/ip_forward"; refuses anything that could leave /proc/sys.</summary>
    internal static string ToPath(string key)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        string relative = key.Contains('/') ? key.TrimStart('/') : key.Replace('.', '/');
        if (relative.StartsWith("proc/sys/", StringComparison.Ordinal)) relative = relative["proc/sys/".Length..];
        foreach (var segment in relative.Split('/'))
        {
            if (segment is "" or "." or "..")
                throw new ArgumentException($"sysctl key '{key}' has an empty or relative path segment", nameof(key));
            foreach (char c in segment)
                if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or '@' or ':'))
                    throw new ArgumentException($"sysctl key '{key}' contains '{c}'", nameof(key));
        }
        return Root + relative;
    }

    private static string ReadPath(string path, string key)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot read sysctl {key} ({path}): {e.Message}", e);
        }
    }

    private static void WritePath(string path, string key, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        try
        {
            File.WriteAllText(path, value);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot write sysctl {key} = {value} ({path}): {e.Message}", e);
        }
    }
}
