using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;

namespace Skein.Ipam.Store;

/// <summary>Retry and time-out settings shared by the HTTP backends.</summary>
public sealed record StoreHttpPolicy
{
    /// <summary>Per attempt, for everything except watches.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(4);
    /// <summary>Attempts for idempotent operations (reads, renew, destroy); writes get one unless surely unsent.</summary>
    public int MaxAttempts { get; init; } = 5;
    /// <summary>First back-off; doubled per attempt up to RetryMaxDelay, with full jitter.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>
    /// Wall-clock bound of one call including its retries, so a store outage surfaces as a clear error
    /// well inside Docker's plugin call timeout instead of a hang (enough to ride out a leader election).
    /// </summary>
    public TimeSpan RetryBudget { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(3);

    public static readonly StoreHttpPolicy Default = new();

    /// <summary>Deadline of the next attempt: the per-attempt timeout, cut to what is left of the budget.</summary>
    internal TimeSpan AttemptTimeout(TimeSpan elapsed)
    {
        var left = RetryBudget - elapsed;
        var floor = TimeSpan.FromMilliseconds(100);
        return left < RequestTimeout ? (left > floor ? left : floor) : RequestTimeout;
    }

    /// <summary>How long to wait before another attempt, or null to give up (attempts or budget used up).</summary>
    internal TimeSpan? NextRetryDelay(int failedAttempts, TimeSpan elapsed)
    {
        if (failedAttempts >= MaxAttempts)
            return null;
        var delay = StoreHttp.Backoff(RetryBaseDelay, failedAttempts - 1, RetryMaxDelay);
        return elapsed + delay + TimeSpan.FromMilliseconds(100) < RetryBudget ? delay : null;
    }
}

/// <summary>HTTP plumbing shared by the Consul and etcd clients: handlers with TLS from the environment, retries, error tiers.</summary>
internal static class StoreHttp
{
    /// <summary>
    /// A handler for one store. TCP keep-alive is on so a silently dead long-poll or watch stream is
    /// noticed (cluster-store §4.11); TLS trusts the configured CA and presents the client certificate.
    /// </summary>
    public static SocketsHttpHandler CreateHandler(StoreLocation location, StoreHttpPolicy policy)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = policy.ConnectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            AutomaticDecompression = DecompressionMethods.None,
            UseProxy = false,
            ConnectCallback = ConnectWithKeepAliveAsync,
        };
        if (location.BaseAddress?.Scheme == Uri.UriSchemeHttps)
            handler.SslOptions = CreateTlsOptions(location);
        return handler;
    }

    private static async ValueTask<Stream> ConnectWithKeepAliveAsync(SocketsHttpConnectionContext context, CancellationToken ct)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 30);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 10);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 3);
            await socket.ConnectAsync(context.DnsEndPoint, ct).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static SslClientAuthenticationOptions CreateTlsOptions(StoreLocation location)
    {
        var options = new SslClientAuthenticationOptions();
        if (location.TlsServerName is not null)
            options.TargetHost = location.TlsServerName;
        if (location.ClientCertFile is not null)
        {
            if (location.ClientKeyFile is null)
                throw new ArgumentException($"a client certificate '{location.ClientCertFile}' is configured without its key file");
            options.ClientCertificates = [X509Certificate2.CreateFromPemFile(location.ClientCertFile, location.ClientKeyFile)];
        }
        if (!location.VerifyTls)
        {
            options.RemoteCertificateValidationCallback = (_, _, _, _) => true;
            return options;
        }
        var roots = new X509Certificate2Collection();
        if (location.CaFile is not null)
            roots.ImportFromPemFile(location.CaFile);
        if (location.CaPath is not null)
        {
            foreach (var file in Directory.EnumerateFiles(location.CaPath, "*.pem").Concat(Directory.EnumerateFiles(location.CaPath, "*.crt")))
                roots.ImportFromPemFile(file);
        }
        if (roots.Count > 0)
        {
            options.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0 || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
                    return false;
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
            };
        }
        return options;
    }

    /// <summary>Full-jitter exponential back-off: uniform in [0, base × 2^attempt].</summary>
    public static TimeSpan Backoff(TimeSpan baseDelay, int attempt, TimeSpan? cap = null)
    {
        var ceiling = baseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 16));
        if (cap is { } c)
            ceiling = Math.Min(ceiling, c.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * ceiling);
    }

    /// <summary>Statuses that say "not now" rather than "never": worth another attempt for an idempotent call.</summary>
    public static bool IsRetryableStatus(HttpStatusCode status) =>
        status is HttpStatusCode.TooManyRequests or HttpStatusCode.InternalServerError or HttpStatusCode.BadGateway
            or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout;

    /// <summary>A server certificate we refuse to trust: configuration, not an outage, so never retried.</summary>
    public static bool IsTlsTrustFailure(Exception e)
    {
        for (var inner = e.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Security.Authentication.AuthenticationException)
                return true;
        }
        return false;
    }

    public static string InnermostMessage(Exception e)
    {
        while (e.InnerException is not null)
            e = e.InnerException;
        return e.Message;
    }

    /// <summary>A body excerpt fit for an error message: one line, bounded.</summary>
    public static string Excerpt(string body)
    {
        var line = body.ReplaceLineEndings(" ").Trim();
        return line.Length <= 200 ? line : string.Concat(line.AsSpan(0, 197), "...");
    }

    /// <summary>
    /// Classifies an HTTP attempt that failed in transport or ran out of time: a store being disposed ends
    /// in ObjectDisposedException and an untrusted TLS certificate in StoreAuthException (both thrown);
    /// otherwise the StoreUnavailableException to throw if no retry follows, and whether one may.
    /// The caller's own cancellation is to be rethrown by the caller before this is asked.
    /// </summary>
    internal static Exception AttemptFailure(Exception e, string describe, string what, TimeSpan attemptTimeout, bool idempotent,
        CancellationTokenSource disposing, out bool retryable)
    {
        switch (e)
        {
            case OperationCanceledException when disposing.IsCancellationRequested:
                throw new ObjectDisposedException($"{describe} store was disposed during {what}", e);
            case OperationCanceledException:
                retryable = idempotent;
                return new StoreUnavailableException($"{describe}: {what}: no answer within {attemptTimeout.TotalSeconds:0.#}s", e);
            case HttpRequestException http when IsTlsTrustFailure(http):
                throw new StoreAuthException($"{describe}: {what}: the store's TLS certificate was not accepted ({InnermostMessage(http)}); check the CA file and server name");
            case HttpRequestException http:
                retryable = idempotent || http.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused };
                return new StoreUnavailableException($"{describe}: {what}: {http.Message}", http);
            default:
                throw new ArgumentException($"not an attempt failure: {e.GetType().Name}", nameof(e));
        }
    }
}
