using System.Buffers.Binary;
using System.Security.Cryptography;
using Quid.Crypto;

namespace Quid.Wire;

/// <summary>Why a rendezvous point refused an EstablishRendezvous or a Rendezvous; the RendezvousFailed message's byte.</summary>
public enum RendezvousFailure : byte
{
    /// <summary>No circuit waits under that cookie: never established, expired, already used, or its circuit is gone.</summary>
    UnknownCookie = 1,
    /// <summary>Another circuit already waits under that cookie.</summary>
    CookieInUse = 2,
    /// <summary>The rendezvous point holds as many cookies as it will.</summary>
    ResourceLimit = 3,
    /// <summary>The body was not what the protocol says.</summary>
    Malformed = 4,
    /// <summary>This circuit already holds a cookie, or is already joined: one rendezvous per circuit.</summary>
    AlreadyUsed = 5,
}

/// <summary>
/// The 20 random bytes a client picks to name its circuit at a rendezvous point; the service
/// names the same bytes to be joined to it. Guessing one among 2^160 is hopeless, so a plain
/// lookup (not a constant-time compare) is enough.
/// </summary>
public readonly struct RendezvousCookie : IEquatable<RendezvousCookie>
{
    public const int Size = 20;

    // Three fields instead of an array: the point's table hashes and compares them.
    private readonly ulong _a;
    private readonly ulong _b;
    private readonly uint _c;

    public RendezvousCookie(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size) throw new ArgumentException($"A rendezvous cookie is {Size} bytes.", nameof(bytes));
        _a = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        _b = BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]);
        _c = BinaryPrimitives.ReadUInt32BigEndian(bytes[16..]);
    }

    /// <summary>A fresh cookie from the operating system's CSPRNG, so nobody can guess it and take the client's place.</summary>
    public static RendezvousCookie Random()
    {
        Span<byte> bytes = stackalloc byte[Size];
        RandomNumberGenerator.Fill(bytes);
        return new RendezvousCookie(bytes);
    }

    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, _a);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _b);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], _c);
    }

    public bool Equals(RendezvousCookie other) => _a == other._a && _b == other._b && _c == other._c;
    public override bool Equals(object? obj) => obj is RendezvousCookie other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(_a, _b, _c);
    public static bool operator ==(RendezvousCookie left, RendezvousCookie right) => left.Equals(right);
    public static bool operator !=(RendezvousCookie left, RendezvousCookie right) => !left.Equals(right);
}

/// <summary>An EstablishRendezvous relay message's data: the cookie, exactly.</summary>
public readonly record struct EstablishRendezvousBody(RendezvousCookie Cookie)
{
    public const int Size = RendezvousCookie.Size;

    public int Write(Span<byte> data)
    {
        Cookie.WriteTo(data);
        return Size;
    }

    public static EstablishRendezvousBody Read(ReadOnlySpan<byte> data)
    {
        var reader = new WireReader(data);
        var cookie = new RendezvousCookie(reader.ReadBytes(RendezvousCookie.Size));
        reader.ExpectEnd();
        return new EstablishRendezvousBody(cookie);
    }
}

/// <summary>A Rendezvous relay message's data: the cookie, then the service's ntor reply for the client.</summary>
public readonly record struct RendezvousBody(RendezvousCookie Cookie, byte[] HandshakeReply)
{
    public const int Size = RendezvousCookie.Size + Ntor.ReplySize;

    public int Write(Span<byte> data)
    {
        if (HandshakeReply.Length != Ntor.ReplySize) throw new ArgumentException($"A handshake reply is {Ntor.ReplySize} bytes.");
        Cookie.WriteTo(data);
        HandshakeReply.CopyTo(data[RendezvousCookie.Size..]);
        return Size;
    }

    public static RendezvousBody Read(ReadOnlySpan<byte> data)
    {
        var reader = new WireReader(data);
        var cookie = new RendezvousCookie(reader.ReadBytes(RendezvousCookie.Size));
        var reply = reader.ReadBytes(Ntor.ReplySize).ToArray();
        reader.ExpectEnd();
        return new RendezvousBody(cookie, reply);
    }
}

/// <summary>A Rendezvous2 relay message's data: the service's ntor reply, as R received it, exactly.</summary>
public readonly record struct Rendezvous2Body(byte[] HandshakeReply)
{
    public const int Size = Ntor.ReplySize;

    public int Write(Span<byte> data)
    {
        if (HandshakeReply.Length != Size) throw new ArgumentException($"A handshake reply is {Size} bytes.");
        HandshakeReply.CopyTo(data);
        return Size;
    }

    public static Rendezvous2Body Read(ReadOnlySpan<byte> data)
    {
        var reader = new WireReader(data);
        var reply = reader.ReadBytes(Size).ToArray();
        reader.ExpectEnd();
        return new Rendezvous2Body(reply);
    }
}

/// <summary>A RendezvousFailed relay message's data: u8 reason, one the protocol names.</summary>
public readonly record struct RendezvousFailedBody(RendezvousFailure Reason)
{
    public const int Size = 1;

    public int Write(Span<byte> data)
    {
        if (!Enum.IsDefined(Reason)) throw new ArgumentException($"{(byte)Reason} is not a rendezvous failure.");
        data[0] = (byte)Reason;
        return Size;
    }

    public static RendezvousFailedBody Read(ReadOnlySpan<byte> data)
    {
        var reader = new WireReader(data);
        var reason = (RendezvousFailure)reader.ReadByte();
        reader.ExpectEnd();
        if (!Enum.IsDefined(reason)) throw new WireException(WireError.BadField, $"Unknown rendezvous failure {(byte)reason}.");
        return new RendezvousFailedBody(reason);
    }
}

/// <summary>RendezvousEstablished and RendezvousJoined carry nothing: any data is malformed.</summary>
public static class EmptyBody
{
    public static void Read(ReadOnlySpan<byte> data)
    {
        if (!data.IsEmpty) throw new WireException(WireError.BadField, $"{data.Length} bytes where the message carries none.");
    }
}
