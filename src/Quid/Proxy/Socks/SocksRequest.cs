namespace Quid.Proxy.Socks;

/// <summary>Which protocol a request arrived in; the final reply must be encoded in the same one.</summary>
public enum SocksVersion
{
    Socks4,
    /// <summary>SOCKS4 carrying a host name (DSTIP 0.0.0.x, x != 0); replies are plain SOCKS4.</summary>
    Socks4a,
    Socks5,
}

/// <summary>Request commands, with their SOCKS5 wire values (SOCKS4 uses the same values for CONNECT and BIND).</summary>
public enum SocksCommand : byte
{
    Connect = 0x01,
    Bind = 0x02,
    UdpAssociate = 0x03,
    /// <summary>Tor extension: resolve <see cref="SocksRequest.Target"/> and answer with the address.</summary>
    Resolve = 0xF0,
    /// <summary>Tor extension: reverse-resolve an address and answer with a host name.</summary>
    ResolvePtr = 0xF1,
}

/// <summary>A complete client request. Value equality (including <see cref="Auth"/>) lets callers use it, or its parts, as keys.</summary>
public sealed record SocksRequest(SocksVersion Version, SocksCommand Command, SocksTarget Target, SocksAuth Auth);
