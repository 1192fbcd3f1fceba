namespace Quid.Crypto.Noise;

/// <summary>Why a Noise operation was refused.</summary>
public enum NoiseError
{
    /// <summary>The protocol name is malformed or names a pattern, DH, cipher or hash this implementation lacks.</summary>
    UnsupportedProtocol,

    /// <summary>A message was written or read when it was the other side's turn, or after the handshake completed.</summary>
    OutOfTurn,

    /// <summary>A handshake message is shorter than its tokens require.</summary>
    Truncated,

    /// <summary>A message exceeds the 65535-byte Noise limit.</summary>
    TooLong,

    /// <summary>The output span cannot hold the result.</summary>
    BufferTooSmall,

    /// <summary>An encrypted field failed authentication: tampering, wrong keys or a different prologue.</summary>
    DecryptionFailed,

    /// <summary>A remote public key is unusable, such as a low-order X25519 point that yields no shared secret.</summary>
    InvalidPublicKey,

    /// <summary>The 64-bit nonce has reached 2^64-1, which Noise reserves.</summary>
    NonceExhausted,

    /// <summary>An earlier error left this handshake in an undefined state; start a new one.</summary>
    HandshakeFailed,
}

/// <summary>
/// The only exception a handshake message, however malformed, can cause, so callers handling
/// untrusted peers need to catch just this one type.
/// </summary>
public sealed class NoiseException : Exception
{
    public NoiseException(NoiseError error, string message)
        : base(message)
    {
        Error = error;
    }

    public NoiseError Error { get; }
}
