using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Quid.Proxy.Socks;

/// <summary>SOCKS5 REP values (RFC 1928 §6). SOCKS4 can only say yes or no; see <see cref="SocksReply"/>.</summary>
public enum SocksReplyCode : byte
{
    Succeeded = 0x00,
    GeneralFailure = 0x01,
    NotAllowedByRuleset = 0x02,
    NetworkUnreachable = 0x03,
    HostUnreachable = 0x04,
    ConnectionRefused = 0x05,
    TtlExpired = 0x06,
    CommandNotSupported = 0x07,
    AddressTypeNotSupported = 0x08,
}

/// <summary>Encodes the final reply to a finished request, in the request's protocol version.</summary>
public static class SocksReply
{
    private const byte Socks4Granted = 0x5A;
    private const byte Socks4Rejected = 0x5B;

    /// <summary>
    /// SOCKS5: VER REP RSV ATYP BND.ADDR BND.PORT. SOCKS4/4a: 00 5A|5B DSTPORT DSTIP, every failure
    /// being 5B. A null <paramref name="bound"/> sends 0.0.0.0:0, which clients ignore for CONNECT
    /// and which avoids disclosing local addresses.
    /// </summary>
    /// <exception cref="ArgumentException">A SOCKS4 reply was given an IPv6 address, which it cannot carry.</exception>
    public static byte[] Encode(SocksVersion version, SocksReplyCode code, IPEndPoint? bound = null) =>
        Encode(version, code, bound?.Address ?? IPAddress.Any, (ushort)(bound?.Port ?? 0), nameof(bound));

    /// <summary>The answer to <see cref="SocksCommand.Resolve"/>: the resolved address rides in BND.ADDR (DSTIP for SOCKS4a), port 0.</summary>
    /// <exception cref="ArgumentException">A SOCKS4 reply was given an IPv6 address, which it cannot carry.</exception>
    public static byte[] Encode(SocksVersion version, SocksReplyCode code, IPAddress resolved)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        return Encode(version, code, resolved, 0, nameof(resolved));
    }

    /// <summary>The answer to <see cref="SocksCommand.ResolvePtr"/> (SOCKS5 only): the name rides in BND.ADDR as ATYP 3, port 0.</summary>
    /// <exception cref="ArgumentException">The name is not a valid SOCKS host name.</exception>
    public static byte[] EncodeHostName(SocksReplyCode code, string hostName)
    {
        ArgumentNullException.ThrowIfNull(hostName);
        if (!SocksTarget.IsValidHostName(hostName))
            throw new ArgumentException("Host name must be 1..255 printable ASCII characters.", nameof(hostName));
        var reply = new byte[4 + 1 + hostName.Length + 2];
        reply[0] = 0x05;
        reply[1] = (byte)code;
        reply[3] = 0x03;
        reply[4] = (byte)hostName.Length;
        Encoding.ASCII.GetBytes(hostName, reply.AsSpan(5));
        // BND.PORT stays 0.
        return reply;
    }

    private static byte[] Encode(SocksVersion version, SocksReplyCode code, IPAddress address, ushort port, string paramName)
    {
        if (version == SocksVersion.Socks5)
            return EncodeSocks5(code, address, port);
        if (address.IsIPv4MappedToIPv6)
            address = address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetwork)
            throw new ArgumentException("A SOCKS4 reply can only carry an IPv4 address.", paramName);
        return EncodeSocks4(code, address, port);
    }

    private static byte[] EncodeSocks5(SocksReplyCode code, IPAddress address, ushort port)
    {
        bool v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        var reply = new byte[4 + (v6 ? 16 : 4) + 2];
        reply[0] = 0x05;
        reply[1] = (byte)code;
        reply[3] = v6 ? (byte)0x04 : (byte)0x01;
        address.TryWriteBytes(reply.AsSpan(4), out int written);
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(4 + written), port);
        return reply;
    }

    private static byte[] EncodeSocks4(SocksReplyCode code, IPAddress address, ushort port)
    {
        var reply = new byte[8];
        reply[1] = code == SocksReplyCode.Succeeded ? Socks4Granted : Socks4Rejected;
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(2), port);
        address.TryWriteBytes(reply.AsSpan(4), out _);
        return reply;
    }
}
