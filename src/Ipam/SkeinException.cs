namespace Skein.Ipam;

/// <summary>The few kinds of domain failure; one place (the plugin host) maps them to Docker's {"Err": ...}.</summary>
public enum ErrorKind
{
    /// <summary>The request itself is malformed or names something impossible (bad CIDR, bad id).</summary>
    Invalid,
    /// <summary>It names a pool, network or endpoint skein does not hold.</summary>
    NotFound,
    /// <summary>It collides with existing state (address in use, overlapping pool, exhausted pool).</summary>
    Conflict,
    /// <summary>The cluster store cannot be reached or refused us.</summary>
    Unavailable,
    /// <summary>Anything else: a bug or a kernel refusal.</summary>
    Internal,
}

/// <summary>A failure whose message is fit to reach the docker CLI user verbatim.</summary>
public class SkeinException(ErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    public ErrorKind Kind { get; } = kind;

    public static SkeinException Invalid(string message) => new(ErrorKind.Invalid, message);
    public static SkeinException NotFound(string message) => new(ErrorKind.NotFound, message);
    public static SkeinException Conflict(string message) => new(ErrorKind.Conflict, message);
}
