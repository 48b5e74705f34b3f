using System.Net;
using Skein.Driver.Network.Kernel;
using Skein.Ipam;
using Skein.Ipam.Store;

namespace Skein.Driver.Plugin;

/// <summary>What a failed call answers: a non-200 status and a message fit for the docker CLI user.</summary>
public readonly record struct ErrorReply(HttpStatusCode Status, string Message, bool IsBug);

/// <summary>
/// The one place that turns a failure into Docker's {"Err": "..."}. Messages never start with the call's name: the
/// engine prefixes every plugin error with it ("IpamDriver.RequestAddress: <Err>"). Domain errors keep their text; kernel and
/// firewall failures name the operation that failed; anything unexpected is a bug and is logged with its stack.
/// </summary>
public static class ErrorFunnel
{
    public static ErrorReply Classify(Exception exception) => exception switch
    {
        RequestTooLargeException e => new(HttpStatusCode.RequestEntityTooLarge, e.Message, false),
        SkeinException e => new(StatusOf(e.Kind), e.Message, e.Kind == ErrorKind.Internal),
        StoreUnavailableException e => new(HttpStatusCode.ServiceUnavailable, $"the store is unavailable: {e.Message}", false),
        StoreAuthException e => new(HttpStatusCode.ServiceUnavailable, $"the store refused skein's credentials: {e.Message}", false),
        LivenessLostException e => new(HttpStatusCode.ServiceUnavailable, $"skein lost its store session: {e.Message}", false),
        StoreRejectedException e => new(HttpStatusCode.InternalServerError, $"the store refused a request (a skein bug): {e.Message}", true),
        OperationCanceledException => new(HttpStatusCode.ServiceUnavailable, "skein is shutting down", false),
        _ when KernelOrFirewallMessage(exception) is { } text => new(HttpStatusCode.InternalServerError, text, false),
        _ => new(HttpStatusCode.InternalServerError, $"internal error ({exception.GetType().Name}): {exception.Message}", true),
    };

    public static HttpStatusCode StatusOf(ErrorKind kind) => kind switch
    {
        ErrorKind.Invalid => HttpStatusCode.BadRequest,
        ErrorKind.NotFound => HttpStatusCode.NotFound,
        ErrorKind.Conflict => HttpStatusCode.Conflict,
        ErrorKind.Unavailable => HttpStatusCode.ServiceUnavailable,
        _ => HttpStatusCode.InternalServerError,
    };

    /// <summary>Kernel (netlink) and iptables failures carry their own operation and text; keep them verbatim.</summary>
    private static string? KernelOrFirewallMessage(Exception exception) =>
        KernelFailure.Describe(exception);
}
