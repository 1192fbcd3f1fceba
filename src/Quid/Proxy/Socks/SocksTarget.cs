using System.Globalization;
using System.Net;

namespace Quid.Proxy.Socks;

/// <summary>
/// Where the client wants to go: a host name or an address, plus a port. Host names stay names:
/// this node never resolves them locally, so a name reaches the exit as the client gave it.
/// </summary>
public sealed record SocksTarget
{
    /// <summary>The longest name SOCKS can carry (one length byte, or the SOCKS4a field cap).</summary>
    public const int MaxHostNameLength = 255;

    /// <exception cref="ArgumentException">The name is not a valid SOCKS host name (see <see cref="IsValidHostName(ReadOnlySpan{char})"/>).</exception>
    public SocksTarget(string hostName, ushort port)
    {
        ArgumentNullException.ThrowIfNull(hostName);
        if (!IsValidHostName(hostName))
            throw new ArgumentException("Host name must be 1..255 printable ASCII characters.", nameof(hostName));
        HostName = hostName;
        Port = port;
    }

    public SocksTarget(IPAddress address, ushort port)
    {
        ArgumentNullException.ThrowIfNull(address);
        Address = address;
        Port = port;
    }

    /// <summary>Set when the client sent a name (SOCKS5 ATYP 3, SOCKS4a); then <see cref="Address"/> is null.</summary>
    public string? HostName { get; }

    /// <summary>Set when the client sent an address; then <see cref="HostName"/> is null.</summary>
    public IPAddress? Address { get; }

    public ushort Port { get; }

    /// <summary>
    /// A name is 1..255 bytes of printable ASCII (0x21..0x7E). Control bytes and spaces never occur
    /// in a real name and could smuggle framing into whatever logs or forwards it. Non-ASCII is
    /// rejected rather than decoded: internationalised names travel as punycode, and a raw UTF-8
    /// name would be interpreted differently by whichever resolver eventually sees it.
    /// </summary>
    public static bool IsValidHostName(ReadOnlySpan<byte> name)
    {
        if (name.IsEmpty || name.Length > MaxHostNameLength)
            return false;
        foreach (byte b in name)
        {
            if (b is < 0x21 or > 0x7E)
                return false;
        }
        return true;
    }

    /// <inheritdoc cref="IsValidHostName(ReadOnlySpan{byte})"/>
    public static bool IsValidHostName(ReadOnlySpan<char> name)
    {
        if (name.IsEmpty || name.Length > MaxHostNameLength)
            return false;
        foreach (char c in name)
        {
            if (c is < (char)0x21 or > (char)0x7E)
                return false;
        }
        return true;
    }

    public override string ToString() =>
        HostName is not null
            ? string.Create(CultureInfo.InvariantCulture, $"{HostName}:{Port}")
            : new IPEndPoint(Address!, Port).ToString();
}
