namespace Skein.Driver.Netlink;

/// <summary>
/// Reads (and, where /proc/sys is writable, writes) sysctls without a shell. /proc/sys/net shows the
/// namespace of the thread that opens the file, so reads for another namespace run on a dedicated
/// short-lived thread that joins it first. Inside a managed plugin /proc/sys is read-only: settings
/// that netlink cannot set (IPv6 per-device, ip_forward, bridge-nf-call-*) are for reading and reporting.
/// </summary>
public static class Sysctl
{
    /// <summary>Reads a sysctl in the current namespace: "net.ipv4.ip_forward" or "net/ipv4/ip_forward".</summary>
    public static string Read(string key) => throw new NotImplementedException();
    public static string Read(string key, int namespaceFd) => throw new NotImplementedException();
    public static void Write(string key, string value) => throw new NotImplementedException();
    public static void Write(string key, string value, int namespaceFd) => throw new NotImplementedException();
}
