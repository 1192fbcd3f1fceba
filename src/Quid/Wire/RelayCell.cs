using System.Buffers.Binary;
using System.Net;
using System.Text;
using Quid.Crypto;

namespace Quid.Wire;

public enum RelayCommand : byte
{
    Begin = 1,
    Data = 2,
    End = 3,
    Connected = 4,
    Sendme = 5,
    Resolve = 6,
    Resolved = 7,
    /// <summary>A probe: the last hop must send the payload straight back in an EchoReply.</summary>
    Echo = 8,
    EchoReply = 9,
    /// <summary>Extend the circuit to the last hop's partner: next node id, then an ntor request. Only in RelayEarly cells.</summary>
    Extend = 10,
    /// <summary>The new hop answered: its ntor reply.</summary>
    Extended = 11,
    /// <summary>The last hop could not extend: u8 reason.</summary>
    ExtendFailed = 12,
    /// <summary>Client to its last hop R: keep this circuit for the service that names the cookie (20 bytes).</summary>
    EstablishRendezvous = 13,
    /// <summary>R to the client: the cookie is kept. Empty.</summary>
    RendezvousEstablished = 14,
    /// <summary>Service to its last hop R: the cookie, then the handshake reply for the client. R joins the two circuits.</summary>
    Rendezvous = 15,
    /// <summary>R to the client, once joined: the service's handshake reply.</summary>
    Rendezvous2 = 16,
    /// <summary>R to the service: the circuits are joined; what follows comes from the client. Empty.</summary>
    RendezvousJoined = 17,
    /// <summary>R to either side: u8 reason it refused an EstablishRendezvous or a Rendezvous.</summary>
    RendezvousFailed = 18,
    /// <summary>Service to its last hop I: be my introduction point; publish this service record (its encoding) and pass me the introductions it brings.</summary>
    EstablishIntroduction = 19,
    /// <summary>I to the service: u8 status of its EstablishIntroduction (<see cref="IntroductionStatus"/>).</summary>
    IntroductionEstablished = 20,
    /// <summary>I to the service: an introduction a client's lookup brought, opaque to I.</summary>
    Introduction = 21,
    /// <summary>Client to its last hop: look this service up (lookup id, 32 bytes) and carry the introduction that follows.</summary>
    ServiceLookup = 22,
    /// <summary>The last hop to the client: u8 status (<see cref="LookupStatus"/>), then the record found, if any.</summary>
    ServiceLookupAnswered = 23,
    /// <summary>Client to its last hop: a stream to that node's own credit desk (PROTOCOL §10.4). Empty; answered by Connected or End.</summary>
    BeginDesk = 24,
}

/// <summary>Why a stream ended; the client maps it to the proxy protocol's error reply.</summary>
public enum EndReason : byte
{
    Done = 1,
    ConnectionRefused = 2,
    ResolveFailed = 3,
    ExitPolicy = 4,
    Timeout = 5,
    Unreachable = 6,
    Internal = 7,
    CircuitClosed = 8,
    Protocol = 9,
    /// <summary>The exit has no room for the stream: its share of exit sockets, or of streams on the circuit, is taken.</summary>
    ResourceLimit = 10,
}

/// <summary>
/// A Relay cell's body is <c>relay message || tag stack</c>: the message is onion-encrypted, one
/// authenticated layer per hop (see <see cref="OnionLayer"/>). The message itself, as the last
/// hop or the client reads it: u8 command, u16 stream id, u16 length, data, zero padding.
/// </summary>
public static class RelayCell
{
    public const int HeaderSize = 5;
    /// <summary>The onion-encrypted part of the body; the tag stack follows it.</summary>
    public const int MessageSize = Cell.BodySize - OnionLayer.TagStackSize;
    public const int MaxData = MessageSize - HeaderSize;

    /// <summary>Writes a relay message into the first <see cref="MessageSize"/> bytes of <paramref name="message"/>.</summary>
    public static void Write(Span<byte> message, RelayCommand command, ushort streamId, ReadOnlySpan<byte> data)
    {
        var body = message[..MessageSize];
        body[0] = (byte)command;
        BinaryPrimitives.WriteUInt16BigEndian(body[1..], streamId);
        BinaryPrimitives.WriteUInt16BigEndian(body[3..], (ushort)data.Length);
        data.CopyTo(body[HeaderSize..]);
        body[(HeaderSize + data.Length)..].Clear();
    }

    /// <summary>Reads the header of a relay message received from a peer.</summary>
    public static RelayMessage Read(ReadOnlySpan<byte> body)
    {
        if (body.Length < HeaderSize) throw new WireException(WireError.Truncated, $"A relay message needs {HeaderSize} header bytes, got {body.Length}.");
        var command = (RelayCommand)body[0];
        if (command is < RelayCommand.Begin or > RelayCommand.BeginDesk)
            throw new WireException(WireError.UnknownCommand, $"Unknown relay command {(byte)command}.");
        ushort streamId = BinaryPrimitives.ReadUInt16BigEndian(body[1..]);
        int length = BinaryPrimitives.ReadUInt16BigEndian(body[3..]);
        if (length > body.Length - HeaderSize) throw new WireException(WireError.Oversized, $"Relay data length {length} exceeds the cell.");
        return new RelayMessage(command, streamId, body.Slice(HeaderSize, length));
    }
}

public readonly ref struct RelayMessage(RelayCommand command, ushort streamId, ReadOnlySpan<byte> data)
{
    public RelayCommand Command { get; } = command;
    public ushort StreamId { get; } = streamId;
    public ReadOnlySpan<byte> Data { get; } = data;
}

/// <summary>BEGIN and RESOLVE carry a destination the exit resolves: u16 port, u8 length, ASCII host.</summary>
public readonly record struct StreamTarget(string Host, ushort Port)
{
    public const int MaxHostLength = 255;

    /// <summary>
    /// A session address (<c>….quid</c>, with or without the root's dot): a name that means a key,
    /// reached by lookup and rendezvous, never by DNS or through an exit.
    /// </summary>
    public bool IsSessionAddress => IsSessionName(Host);

    /// <inheritdoc cref="IsSessionAddress"/>
    public static bool IsSessionName(string host) =>
        host.AsSpan().TrimEnd('.').EndsWith(".quid", StringComparison.OrdinalIgnoreCase);

    public int Encode(Span<byte> destination)
    {
        // Encode only what Decode accepts: the length is one byte, and ASCII would turn other characters into '?'.
        if (Host.Length is 0 or > MaxHostLength || Host.Any(c => c is <= ' ' or >= '\u007f'))
            throw new ArgumentException($"Host name must be 1 to {MaxHostLength} printable ASCII characters.");
        int length = Encoding.ASCII.GetBytes(Host, destination[3..]);
        BinaryPrimitives.WriteUInt16BigEndian(destination, Port);
        destination[2] = (byte)length;
        return 3 + length;
    }

    public static StreamTarget Decode(ReadOnlySpan<byte> data)
    {
        var reader = new WireReader(data);
        ushort port = reader.ReadUInt16();
        var host = reader.ReadBytes(reader.ReadByte());
        reader.ExpectEnd();
        if (host.Length == 0) throw new WireException(WireError.BadField, "Empty host name.");
        foreach (byte b in host)
            if (b is <= 0x20 or >= 0x7F) throw new WireException(WireError.BadField, "Host name has a byte that is not printable ASCII.");
        return new StreamTarget(Encoding.ASCII.GetString(host), port);
    }

    public override string ToString() => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}

/// <summary>CONNECTED and RESOLVED carry addresses: u8 family (4 or 6) and the address bytes.</summary>
public static class RelayAddress
{
    /// <summary>An IPv6 address with its family byte.</summary>
    public const int MaxSize = 1 + 16;

    public static int Encode(IPAddress address, Span<byte> destination)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        bool v6 = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        destination[0] = v6 ? (byte)6 : (byte)4;
        address.TryWriteBytes(destination[1..], out int written);
        return 1 + written;
    }

    public static IPAddress Decode(ref WireReader reader)
    {
        byte family = reader.ReadByte();
        return family switch
        {
            4 => new IPAddress(reader.ReadBytes(4)),
            6 => new IPAddress(reader.ReadBytes(16)),
            _ => throw new WireException(WireError.BadField, $"Unknown address family {family}."),
        };
    }
}
