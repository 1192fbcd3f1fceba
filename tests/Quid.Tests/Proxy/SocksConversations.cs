using System.Net;
using Quid.Proxy.Socks;
using static Quid.Tests.Proxy.SocksTestDriver;

namespace Quid.Tests.Proxy;

/// <summary>A complete, valid client side of a handshake, message by message, and what it must yield.</summary>
internal sealed record SocksConversation(
    bool AcceptNoAuth, bool AcceptUsernamePassword, byte[][] Messages, string Replies, SocksRequest Request)
{
    public SocksServerHandshake NewServer() => new(AcceptNoAuth, AcceptUsernamePassword);

    public byte[] AllBytes => [.. Messages.SelectMany(m => m)];
}

/// <summary>Byte sequences real clients send (curl 8.x, Tor's extensions), plus the largest legal messages.</summary>
internal static class SocksConversations
{
    private static readonly IPAddress ExampleV4 = IPAddress.Parse("93.184.216.34");
    private static readonly IPAddress ExampleV6 = IPAddress.Parse("2606:2800:220:1:248:1893:25c8:1946");
    private static readonly byte[] ExampleCom80 = [.. H("03 0b"), .. A("example.com"), .. H("00 50")];
    private static readonly byte[] ExampleV4Port443 = H("01 5d b8 d8 22 01 bb");

    private static SocksRequest V5(SocksCommand command, SocksTarget target, SocksAuth? auth = null) =>
        new(SocksVersion.Socks5, command, target, auth ?? SocksAuth.None);

    public static readonly Dictionary<string, SocksConversation> All = new()
    {
        // curl --socks5-hostname example.com:80
        ["curl socks5-hostname"] = new(true, true,
            [H("05 01 00"), [.. H("05 01 00"), .. ExampleCom80]],
            "0500", V5(SocksCommand.Connect, new SocksTarget("example.com", 80))),

        // curl --socks5-hostname with -U user:pass offers no-auth and username/password.
        ["curl socks5-hostname user:pass"] = new(true, true,
            [H("05 02 00 02"), [.. H("01 04"), .. A("user"), .. H("04"), .. A("pass")], [.. H("05 01 00"), .. ExampleCom80]],
            "0502" + "0100", V5(SocksCommand.Connect, new SocksTarget("example.com", 80), SocksAuth.FromUsernamePassword(A("user"), A("pass")))),

        // curl -U user: sends an empty password, which RFC 1929 forbids but we accept.
        ["curl socks5 empty password"] = new(true, true,
            [H("05 02 00 02"), [.. H("01 04"), .. A("user"), .. H("00")], [.. H("05 01 00"), .. ExampleCom80]],
            "0502" + "0100", V5(SocksCommand.Connect, new SocksTarget("example.com", 80), SocksAuth.FromUsernamePassword(A("user"), []))),

        // Tor Browser style: only username/password offered, to a server that requires it.
        ["username/password only"] = new(false, true,
            [H("05 01 02"), [.. H("01 01"), .. A("a"), .. H("01"), .. A("b")], [.. H("05 01 00"), .. ExampleCom80]],
            "0502" + "0100", V5(SocksCommand.Connect, new SocksTarget("example.com", 80), SocksAuth.FromUsernamePassword(A("a"), A("b")))),

        // curl --socks5 https://93.184.216.34/
        ["curl socks5 ipv4"] = new(true, true,
            [H("05 01 00"), [.. H("05 01 00"), .. ExampleV4Port443]],
            "0500", V5(SocksCommand.Connect, new SocksTarget(ExampleV4, 443))),

        // curl --socks5 https://[2606:2800:220:1:248:1893:25c8:1946]/
        ["curl socks5 ipv6"] = new(true, true,
            [H("05 01 00"), H("05 01 00 04 2606 2800 0220 0001 0248 1893 25c8 1946 01 bb")],
            "0500", V5(SocksCommand.Connect, new SocksTarget(ExampleV6, 443))),

        // curl --socks4 http://93.184.216.34/ (no user: empty USERID)
        ["curl socks4"] = new(true, true,
            [H("04 01 00 50 5d b8 d8 22 00")],
            "", new(SocksVersion.Socks4, SocksCommand.Connect, new SocksTarget(ExampleV4, 80), SocksAuth.None)),

        // curl --socks4 with -U alice
        ["curl socks4 userid"] = new(true, true,
            [[.. H("04 01 00 50 5d b8 d8 22"), .. A("alice"), 0]],
            "", new(SocksVersion.Socks4, SocksCommand.Connect, new SocksTarget(ExampleV4, 80), SocksAuth.FromSocks4UserId(A("alice")))),

        // curl --socks4a http://example.com/
        ["curl socks4a"] = new(true, true,
            [[.. H("04 01 00 50 00 00 00 01 00"), .. A("example.com"), 0]],
            "", new(SocksVersion.Socks4a, SocksCommand.Connect, new SocksTarget("example.com", 80), SocksAuth.None)),

        // DSTIP 0.0.0.0 is not the SOCKS4a marker (x must be non-zero).
        ["socks4 to 0.0.0.0"] = new(true, true,
            [H("04 01 00 50 00 00 00 00 00")],
            "", new(SocksVersion.Socks4, SocksCommand.Connect, new SocksTarget(IPAddress.Any, 80), SocksAuth.None)),

        ["socks4 bind"] = new(true, true,
            [H("04 02 00 50 5d b8 d8 22 00")],
            "", new(SocksVersion.Socks4, SocksCommand.Bind, new SocksTarget(ExampleV4, 80), SocksAuth.None)),

        // tor-resolve example.com
        ["tor resolve"] = new(true, true,
            [H("05 01 00"), [.. H("05 f0 00 03 0b"), .. A("example.com"), .. H("00 00")]],
            "0500", V5(SocksCommand.Resolve, new SocksTarget("example.com", 0))),

        // tor-resolve -x 93.184.216.34
        ["tor resolve_ptr"] = new(true, true,
            [H("05 01 00"), H("05 f1 00 01 5d b8 d8 22 00 00")],
            "0500", V5(SocksCommand.ResolvePtr, new SocksTarget(ExampleV4, 0))),

        ["bind"] = new(true, true,
            [H("05 01 00"), H("05 02 00 01 00 00 00 00 00 00")],
            "0500", V5(SocksCommand.Bind, new SocksTarget(IPAddress.Any, 0))),

        ["udp associate"] = new(true, true,
            [H("05 01 00"), H("05 03 00 01 00 00 00 00 00 00")],
            "0500", V5(SocksCommand.UdpAssociate, new SocksTarget(IPAddress.Any, 0))),

        // RSV carries no meaning; a non-zero value is tolerated.
        ["non-zero rsv"] = new(true, true,
            [H("05 01 00"), [.. H("05 01 07"), .. ExampleV4Port443]],
            "0500", V5(SocksCommand.Connect, new SocksTarget(ExampleV4, 443))),

        ["largest socks5"] = new(true, true,
            [[5, 255, .. Enumerable.Range(0, 255).Select(i => (byte)i)],
             [1, 255, .. Filled('u', 255), 255, .. Filled('p', 255)],
             [.. H("05 01 00 03 ff"), .. Filled('h', 255), .. H("ff ff")]],
            "0502" + "0100",
            V5(SocksCommand.Connect, new SocksTarget(new string('h', 255), 65535), SocksAuth.FromUsernamePassword(Filled('u', 255), Filled('p', 255)))),

        ["largest socks4a"] = new(true, true,
            [[.. H("04 01 00 50 00 00 00 ff"), .. Filled('u', 255), 0, .. Filled('h', 255), 0]],
            "", new(SocksVersion.Socks4a, SocksCommand.Connect, new SocksTarget(new string('h', 255), 80), SocksAuth.FromSocks4UserId(Filled('u', 255)))),
    };

    public static TheoryData<string> Names => [.. All.Keys];

    public static byte[] Filled(char c, int count) => A(new string(c, count));
}
