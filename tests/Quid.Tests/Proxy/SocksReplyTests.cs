using System.Net;
using Quid.Proxy.Socks;
using static Quid.Tests.Proxy.SocksTestDriver;

namespace Quid.Tests.Proxy;

public class SocksReplyTests
{
    [Theory]
    [InlineData(SocksReplyCode.Succeeded, "05000001000000000000")]
    [InlineData(SocksReplyCode.GeneralFailure, "05010001000000000000")]
    [InlineData(SocksReplyCode.NotAllowedByRuleset, "05020001000000000000")]
    [InlineData(SocksReplyCode.NetworkUnreachable, "05030001000000000000")]
    [InlineData(SocksReplyCode.HostUnreachable, "05040001000000000000")]
    [InlineData(SocksReplyCode.ConnectionRefused, "05050001000000000000")]
    [InlineData(SocksReplyCode.TtlExpired, "05060001000000000000")]
    [InlineData(SocksReplyCode.CommandNotSupported, "05070001000000000000")]
    [InlineData(SocksReplyCode.AddressTypeNotSupported, "05080001000000000000")]
    public void Socks5ReplyCarriesEachCode(SocksReplyCode code, string expected) =>
        Assert.Equal(expected, Hex(SocksReply.Encode(SocksVersion.Socks5, code)));

    [Theory]
    [InlineData(SocksVersion.Socks4)]
    [InlineData(SocksVersion.Socks4a)]
    public void Socks4ReplyIsGrantedOrRejected(SocksVersion version)
    {
        Assert.Equal("005A000000000000", Hex(SocksReply.Encode(version, SocksReplyCode.Succeeded)));
        foreach (SocksReplyCode code in Enum.GetValues<SocksReplyCode>().Where(c => c != SocksReplyCode.Succeeded))
            Assert.Equal("005B000000000000", Hex(SocksReply.Encode(version, code)));
    }

    [Fact]
    public void BoundEndpointIsEncoded()
    {
        Assert.Equal("050000017F0000011F90", Hex(SocksReply.Encode(SocksVersion.Socks5, SocksReplyCode.Succeeded, IPEndPoint.Parse("127.0.0.1:8080"))));
        Assert.Equal("0500000400000000000000000000000000000001" + "1F90",
            Hex(SocksReply.Encode(SocksVersion.Socks5, SocksReplyCode.Succeeded, IPEndPoint.Parse("[::1]:8080"))));
        Assert.Equal("005A1F907F000001", Hex(SocksReply.Encode(SocksVersion.Socks4, SocksReplyCode.Succeeded, IPEndPoint.Parse("127.0.0.1:8080"))));
        Assert.Equal("005A1F907F000001", Hex(SocksReply.Encode(SocksVersion.Socks4, SocksReplyCode.Succeeded, IPEndPoint.Parse("[::ffff:127.0.0.1]:8080"))));
    }

    [Fact]
    public void Socks4CannotCarryIPv6() =>
        Assert.Throws<ArgumentException>(() => SocksReply.Encode(SocksVersion.Socks4, SocksReplyCode.Succeeded, IPAddress.IPv6Loopback));

    [Theory]
    // The caller answers what it does not implement with 07 (05 07 for SOCKS5, 5B for SOCKS4).
    [InlineData("curl socks5-hostname", "05000001000000000000")]
    [InlineData("bind", "05070001000000000000")]
    [InlineData("udp associate", "05070001000000000000")]
    [InlineData("socks4 bind", "005B000000000000")]
    [InlineData("curl socks4a", "005A000000000000")]
    public void CallerRefusesUnsupportedCommandsWith07(string conversation, string expected)
    {
        var c = SocksConversations.All[conversation];
        SocksRequest request = Run(c.NewServer(), c.AllBytes).Request!;
        SocksReplyCode code = request.Command == SocksCommand.Connect ? SocksReplyCode.Succeeded : SocksReplyCode.CommandNotSupported;
        Assert.Equal(expected, Hex(SocksReply.Encode(request.Version, code)));
    }

    [Fact]
    public void ResolveAnswerCarriesTheAddress()
    {
        Assert.Equal("050000015DB8D8220000", Hex(SocksReply.Encode(SocksVersion.Socks5, SocksReplyCode.Succeeded, IPAddress.Parse("93.184.216.34"))));
        Assert.Equal("05000004260628000220000102481893" + "25C81946" + "0000",
            Hex(SocksReply.Encode(SocksVersion.Socks5, SocksReplyCode.Succeeded, IPAddress.Parse("2606:2800:220:1:248:1893:25c8:1946"))));
        Assert.Equal("005A00005DB8D822", Hex(SocksReply.Encode(SocksVersion.Socks4a, SocksReplyCode.Succeeded, IPAddress.Parse("93.184.216.34"))));
        Assert.Equal("05040001000000000000", Hex(SocksReply.Encode(SocksVersion.Socks5, SocksReplyCode.HostUnreachable)));
    }

    [Fact]
    public void ResolvePtrAnswerCarriesTheName()
    {
        Assert.Equal("050000030B" + Hex(A("example.com")) + "0000", Hex(SocksReply.EncodeHostName(SocksReplyCode.Succeeded, "example.com")));
        Assert.Equal(4 + 1 + 255 + 2, SocksReply.EncodeHostName(SocksReplyCode.Succeeded, new string('h', 255)).Length);
    }

    [Theory]
    [InlineData("")]
    [InlineData("bad name")]
    [InlineData("caf\u00e9.example")]
    public void ResolvePtrAnswerRejectsInvalidNames(string name) =>
        Assert.Throws<ArgumentException>(() => SocksReply.EncodeHostName(SocksReplyCode.Succeeded, name));

    [Fact]
    public void ResolvePtrAnswerRejectsOversizedNames() =>
        Assert.Throws<ArgumentException>(() => SocksReply.EncodeHostName(SocksReplyCode.Succeeded, new string('h', 256)));
}
