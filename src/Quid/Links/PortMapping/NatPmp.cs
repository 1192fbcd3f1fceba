using System.Buffers.Binary;
using System.Net;
using Quid.Wire;

namespace Quid.Links.PortMapping;

/// <summary>NAT-PMP's result codes (RFC 6886 §3.5).</summary>
public enum NatPmpResult : ushort
{
    Success = 0,
    UnsupportedVersion = 1,
    NotAuthorized = 2,
    NetworkFailure = 3,
    OutOfResources = 4,
    UnsupportedOpcode = 5,
}

/// <summary>The fields every NAT-PMP response starts with: its opcode (128 + the request's), result and the gateway's epoch.</summary>
public readonly record struct NatPmpHeader(byte Opcode, NatPmpResult Result, uint Epoch);

/// <summary>The answer to an external-address request: where the gateway's outside is.</summary>
public readonly record struct NatPmpExternalAddress(NatPmpResult Result, uint Epoch, IPAddress Address);

/// <summary>The answer to a TCP mapping request: the port the gateway opened, and for how long.</summary>
public readonly record struct NatPmpMapResponse(NatPmpResult Result, uint Epoch, ushort InternalPort, ushort ExternalPort, uint LifetimeSeconds);

/// <summary>
/// The NAT-PMP messages Quid sends and reads (RFC 6886): the external-address request and the TCP
/// mapping request, and their responses. Decoders throw only <see cref="WireException"/>.
/// </summary>
public static class NatPmp
{
    public const int ServerPort = 5351;
    public const byte Version = 0;
    public const byte ExternalAddressOpcode = 0;
    public const byte MapTcpOpcode = 2;
    /// <summary>Responses set the high bit of the request's opcode.</summary>
    public const byte ResponseBit = 128;
    public const int ExternalAddressResponseSize = 12;
    public const int MapResponseSize = 16;
    /// <summary>An error response may stop after the epoch (miniupnpd's UNSUPP_VERSION does).</summary>
    public const int HeaderSize = 8;

    public static byte[] ExternalAddressRequest() => [Version, ExternalAddressOpcode];

    /// <summary>A TCP mapping request; a lifetime of 0 with suggested port 0 deletes the mapping (§3.4).</summary>
    public static byte[] MapTcpRequest(ushort internalPort, ushort suggestedExternalPort, uint lifetimeSeconds)
    {
        var request = new byte[12];
        request[0] = Version;
        request[1] = MapTcpOpcode;
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(4), internalPort);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(6), suggestedExternalPort);
        BinaryPrimitives.WriteUInt32BigEndian(request.AsSpan(8), lifetimeSeconds);
        return request;
    }

    /// <summary>Version, opcode, result and epoch of any NAT-PMP response; the rest is the caller's to read.</summary>
    public static NatPmpHeader DecodeHeader(ReadOnlySpan<byte> data)
    {
        if (data.Length < HeaderSize) throw new WireException(WireError.Truncated, $"A NAT-PMP response has at least {HeaderSize} bytes, not {data.Length}.");
        if (data[0] != Version) throw new WireException(WireError.BadVersion, $"NAT-PMP version {data[0]}, not {Version}.");
        if ((data[1] & ResponseBit) == 0) throw new WireException(WireError.UnknownCommand, $"Opcode {data[1]} is a request, not a response.");
        return new NatPmpHeader(data[1], (NatPmpResult)BinaryPrimitives.ReadUInt16BigEndian(data[2..]), BinaryPrimitives.ReadUInt32BigEndian(data[4..]));
    }

    public static NatPmpExternalAddress DecodeExternalAddress(ReadOnlySpan<byte> data)
    {
        var header = Expect(data, ExternalAddressOpcode, ExternalAddressResponseSize);
        var address = header.Result == NatPmpResult.Success ? new IPAddress(data.Slice(8, 4)) : IPAddress.Any;
        return new NatPmpExternalAddress(header.Result, header.Epoch, address);
    }

    public static NatPmpMapResponse DecodeMapTcp(ReadOnlySpan<byte> data)
    {
        var header = Expect(data, MapTcpOpcode, MapResponseSize);
        if (data.Length == HeaderSize) return new NatPmpMapResponse(header.Result, header.Epoch, 0, 0, 0);
        return new NatPmpMapResponse(header.Result, header.Epoch, BinaryPrimitives.ReadUInt16BigEndian(data[8..]),
            BinaryPrimitives.ReadUInt16BigEndian(data[10..]), BinaryPrimitives.ReadUInt32BigEndian(data[12..]));
    }

    /// <summary>
    /// The header of a response to <paramref name="requestOpcode"/>: a success must be exactly
    /// <paramref name="size"/> bytes; an error may also stop after the header.
    /// </summary>
    private static NatPmpHeader Expect(ReadOnlySpan<byte> data, byte requestOpcode, int size)
    {
        var header = DecodeHeader(data);
        if (header.Opcode != ResponseBit + requestOpcode)
            throw new WireException(WireError.UnknownCommand, $"Opcode {header.Opcode} does not answer request opcode {requestOpcode}.");
        if (data.Length > size) throw new WireException(WireError.Oversized, $"A NAT-PMP response to opcode {requestOpcode} has {size} bytes, not {data.Length}.");
        if (data.Length < size && (header.Result == NatPmpResult.Success || data.Length != HeaderSize))
            throw new WireException(WireError.Truncated, $"A NAT-PMP response to opcode {requestOpcode} has {size} bytes, not {data.Length}.");
        return header;
    }
}
