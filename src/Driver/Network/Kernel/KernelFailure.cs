using Skein.Driver.Netlink;

namespace Skein.Driver.Network.Kernel;

/// <summary>Text for failures that come from below skein: the kernel (netlink) or the firewall tool.</summary>
public static class KernelFailure
{
    public static string? Describe(Exception exception) => exception switch
    {
        NetlinkException e => e.Message,
        NetlinkTransportException e => e.Message,
        Firewall.FirewallCommandException e => e.Message,
        _ => null,
    };
}

/// <summary>
/// A named kernel-setup step failed; what the steps before it did has been undone. The kind follows the cause:
/// a domain error keeps its kind, a kernel or firewall refusal is Internal.
/// </summary>
public sealed class SetupStepFailedException(string step, Exception cause)
    : Skein.Ipam.SkeinException(
        cause is Skein.Ipam.SkeinException domain ? domain.Kind : Skein.Ipam.ErrorKind.Internal,
        $"step '{step}' failed: {KernelFailure.Describe(cause) ?? cause.Message}",
        cause)
{
    public string Step { get; } = step;
}
