namespace Quid.Wire;

/// <summary>Why some bytes from the network were refused.</summary>
public enum WireError
{
    Truncated,
    Oversized,
    UnknownCommand,
    UnknownMessageType,
    BadVersion,
    BadField,
    BadSignature,
    Expired,
}

/// <summary>The only exception a Wire decoder throws: the input was malformed, and this says how.</summary>
public sealed class WireException(WireError error, string message) : Exception(message)
{
    public WireError Error { get; } = error;
}
