using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Quid.Wire;

namespace Quid.Links.PortMapping;

/// <summary>PCP's result codes (RFC 6887 §7.4).</summary>
public enum PcpResult : byte
{
    Success = 0,
    UnsupportedVersion = 1,
    NotAuthorized = 2,
    MalformedRequest = 3,
    UnsupportedOpcode = 4,
    UnsupportedOption = 5,
    MalformedOption = 6,
    NetworkFailure = 7,
    NoResources = 8,
    UnsupportedProtocol = 9,
    UserExceededQuota = 10,
    CannotProvideExternal = 11,
    AddressMismatch = 12,
    ExcessiveRemotePeers = 13,
}

/// <summary>
/// A MAP response. <see cref="Lifetime"/> is how long the mapping lasts, or after an error how
/// long the error holds. An error response that stops after the common header carries no
/// opcode fields: its ports are 0 and its address <see cref="IPAddress.Any"/>.
/// </summary>
public readonly record struct PcpMapResponse(PcpResult Result, uint LifetimeSeconds, uint Epoch, ushort InternalPort, ushort ExternalPort, IPAddress ExternalAddress);

/// <summary>
/// The PCP messages Quid sends and reads (RFC 6887): MAP for TCP, and its response. Quid sends no
/// options and skips those a response carries. Decoders throw only <see cref="WireException"/>.
/// </summary>
public static class Pcp
{
    public const byte Version = 2;
    public const byte MapOpcode = 1;
    public const byte ResponseBit = 0x80;
    public const byte TcpProtocol = 6;
    public const int NonceSize = 12;
    public const int HeaderSize = 24;
    public const int MapSize = HeaderSize + 36;
    /// <summary>No PCP message is longer (§7).</summary>
    public const int MaxMessageSize = 1100;

    /// <summary>
    /// A MAP request for TCP from <paramref name="client"/> (the address the gateway sees the
    /// request come from). Renewals repeat the nonce; a lifetime of 0 deletes the mapping.
    /// </summary>
    public static byte[] MapRequest(ReadOnlySpan<byte> nonce, IPAddress client, ushort internalPort, ushort suggestedExternalPort, IPAddress? suggestedExternal, uint lifetimeSeconds)
    {
        if (nonce.Length != NonceSize) throw new ArgumentException($"A mapping nonce has {NonceSize} bytes.", nameof(nonce));
        var request = new byte[MapSize];
        request[0] = Version;
        request[1] = MapOpcode;
        BinaryPrimitives.WriteUInt32BigEndian(request.AsSpan(4), lifetimeSeconds);
        WriteAddress(client, request.AsSpan(8, 16));
        nonce.CopyTo(request.AsSpan(24));
        request[36] = TcpProtocol;
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(40), internalPort);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(42), suggestedExternalPort);
        // All zeros (::) says "no preference"; an IPv4 preference is IPv4-mapped like every address here.
        if (suggestedExternal is not null) WriteAddress(suggestedExternal, request.AsSpan(44, 16));
        return request;
    }

    /// <summary>A response to our MAP request for TCP with <paramref name="nonce"/>; anything else is refused.</summary>
    public static PcpMapResponse DecodeMapResponse(ReadOnlySpan<byte> data, ReadOnlySpan<byte> nonce)
    {
        if (data.Length < HeaderSize) throw new WireException(WireError.Truncated, $"A PCP response has at least {HeaderSize} bytes, not {data.Length}.");
        if (data.Length > MaxMessageSize) throw new WireException(WireError.Oversized, $"A PCP message has at most {MaxMessageSize} bytes, not {data.Length}.");
        if (data.Length % 4 != 0) throw new WireException(WireError.BadField, $"A PCP message is a multiple of 4 bytes long, not {data.Length}.");
        if (data[0] != Version) throw new WireException(WireError.BadVersion, $"PCP version {data[0]}, not {Version}.");
        if (data[1] != (ResponseBit | MapOpcode)) throw new WireException(WireError.UnknownCommand, $"Opcode byte {data[1]:x2} is not a MAP response.");
        var result = (PcpResult)data[3];
        uint lifetime = BinaryPrimitives.ReadUInt32BigEndian(data[4..]);
        uint epoch = BinaryPrimitives.ReadUInt32BigEndian(data[8..]);
        if (data.Length == HeaderSize)
        {
            // A server that could not read the request answers with the header alone (§7.2); a success never does.
            if (result == PcpResult.Success) throw new WireException(WireError.Truncated, $"A successful MAP response has at least {MapSize} bytes, not {HeaderSize}.");
            return new PcpMapResponse(result, lifetime, epoch, 0, 0, IPAddress.Any);
        }
        if (data.Length < MapSize) throw new WireException(WireError.Truncated, $"A MAP response has at least {MapSize} bytes, not {data.Length}.");
        if (!data.Slice(HeaderSize, NonceSize).SequenceEqual(nonce)) throw new WireException(WireError.BadField, "The MAP response's nonce is not our request's.");
        if (data[36] != TcpProtocol) throw new WireException(WireError.BadField, $"The MAP response is for protocol {data[36]}, not TCP.");
        SkipOptions(data[MapSize..]);
        var address = new IPAddress(data.Slice(44, 16));
        return new PcpMapResponse(result, lifetime, epoch, BinaryPrimitives.ReadUInt16BigEndian(data[40..]), BinaryPrimitives.ReadUInt16BigEndian(data[42..]),
            address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);
    }

    /// <summary>Options are code, reserved, a length, then data padded to 4 bytes (§7.3); one that runs past the end is refused.</summary>
    private static void SkipOptions(ReadOnlySpan<byte> options)
    {
        while (options.Length > 0)
        {
            if (options.Length < 4) throw new WireException(WireError.Truncated, "A PCP option header runs past the message.");
            int length = BinaryPrimitives.ReadUInt16BigEndian(options[2..]);
            int padded = 4 + ((length + 3) & ~3);
            if (padded > options.Length) throw new WireException(WireError.Truncated, $"A PCP option of {length} bytes runs past the message.");
            options = options[padded..];
        }
    }

    private static void WriteAddress(IPAddress address, Span<byte> destination)
    {
        var v6 = address.AddressFamily == AddressFamily.InterNetwork ? address.MapToIPv6() : address;
        v6.TryWriteBytes(destination, out _);
    }
}
