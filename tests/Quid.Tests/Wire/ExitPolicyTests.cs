using System.Net;
using Quid.Wire;

namespace Quid.Tests.Wire;

public class ExitPolicyTests
{
    public static TheoryData<string> NonPublic() => new(
        "127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:192.168.1.1",
        "0.0.0.0", "::", "10.0.0.1", "10.255.255.255", "192.168.0.1", "192.168.255.255",
        "172.16.0.1", "172.20.10.10", "172.31.255.255", "169.254.169.254", "100.64.0.1",
        "224.0.0.1", "255.255.255.255", "fe80::1", "fe80::1%2", "febf::1", "fc00::1", "fd12:3456::1", "ff02::1");

    public static TheoryData<string> Public() => new(
        "93.184.216.34", "2606:4700::1", "::ffff:93.184.216.34", "1.1.1.1", "8.8.8.8",
        "172.15.255.255", "172.32.0.0", "11.0.0.1", "192.169.0.1", "169.255.0.1", "2001:4860:4860::8888");

    /// <summary>
    /// IPv6 forms that carry an IPv4 address: IPv4-compatible (::/96, deprecated), IPv4-translated
    /// (::ffff:0:0:0/96), NAT64 (64:ff9b::/96, and the local-use 64:ff9b:1::/48), 6to4
    /// (2002::/16) and Teredo (2001::/32: the server in clear, the client inverted).
    /// </summary>
    public static TheoryData<string> EmbeddedNonPublic() => new(
        "::127.0.0.1", "::10.0.0.1", "::192.168.1.1", "::ffff:0:127.0.0.1", "::2",
        "64:ff9b::7f00:1", "64:ff9b::10.1.2.3", "64:ff9b::192.168.1.1", "64:ff9b::169.254.169.254", "64:ff9b::0.0.0.0",
        "64:ff9b:1::1", "64:ff9b:1:ffff::8.8.8.8",
        "2002:7f00:1::1", "2002:c0a8:101::1", "2002:a00:1:1::2",
        "2001:0:808:808::80ff:fffe", "2001:0:a00:1::f7f7:f7f7");

    public static TheoryData<string> EmbeddedPublic() => new(
        "64:ff9b::8.8.8.8", "64:ff9b::5db8:d822", "2002:5db8:d822::1", "2001:0:808:808::f7f7:f7f7");

    [Theory]
    [MemberData(nameof(EmbeddedNonPublic))]
    public void DefaultRefusesIPv6FormsThatCarryANonPublicIPv4Address(string address)
    {
        foreach (int port in new[] { 0, 22, 80, 443, 65535 })
            Assert.False(ExitPolicy.Default.Allows(IPAddress.Parse(address), port), $"{address}:{port}");
    }

    [Theory]
    [MemberData(nameof(EmbeddedPublic))]
    public void DefaultAcceptsIPv6FormsThatCarryAPublicIPv4Address(string address)
    {
        Assert.True(ExitPolicy.Default.Allows(IPAddress.Parse(address), 443), address);
    }

    [Fact]
    public void AnIPv4RuleAlsoMeetsTheIPv4AddressAnIPv6FormCarries()
    {
        var noLan = new ExitPolicy([new ExitRule(ExitAction.Reject, IPAddress.Parse("203.0.113.0"), 24, 0, ushort.MaxValue),
            new ExitRule(ExitAction.Accept, null, 0, 0, ushort.MaxValue)]);
        Assert.False(noLan.Allows(IPAddress.Parse("64:ff9b::203.0.113.9"), 80));
        Assert.False(noLan.Allows(IPAddress.Parse("2002:cb00:7109::1"), 80));
        Assert.True(noLan.Allows(IPAddress.Parse("64:ff9b::203.0.114.9"), 80));
        // :: and ::1 are the unspecified and loopback addresses, not IPv4-compatible ones.
        var loopbackOnly = new ExitPolicy([new ExitRule(ExitAction.Accept, IPAddress.IPv6Loopback, 128, 0, ushort.MaxValue),
            new ExitRule(ExitAction.Reject, null, 0, 0, ushort.MaxValue)]);
        Assert.True(loopbackOnly.Allows(IPAddress.IPv6Loopback, 80));
        // A test network's accept-all lets them through like any other address.
        Assert.True(ExitPolicy.AcceptAll.Allows(IPAddress.Parse("64:ff9b::7f00:1"), 80));
        Assert.True(ExitPolicy.AcceptAll.Allows(IPAddress.Parse("::127.0.0.1"), 80));
    }

    [Theory]
    [MemberData(nameof(NonPublic))]
    public void DefaultRefusesLoopbackPrivateAndLinkLocalAddresses(string address)
    {
        foreach (int port in new[] { 0, 22, 80, 443, 65535 })
            Assert.False(ExitPolicy.Default.Allows(IPAddress.Parse(address), port), $"{address}:{port}");
    }

    [Theory]
    [MemberData(nameof(Public))]
    public void DefaultAcceptsPublicAddresses(string address)
    {
        foreach (int port in new[] { 1, 80, 443, 65535 })
            Assert.True(ExitPolicy.Default.Allows(IPAddress.Parse(address), port), $"{address}:{port}");
    }

    [Fact]
    public void AcceptAllAcceptsLoopbackAndRejectAllRefusesEverything()
    {
        Assert.True(ExitPolicy.AcceptAll.Allows(IPAddress.Loopback, 80));
        Assert.True(ExitPolicy.AcceptAll.Allows(IPAddress.IPv6Loopback, 8080));
        Assert.True(ExitPolicy.AcceptAll.Allows(IPAddress.Parse("10.0.0.1"), 0));
        Assert.False(ExitPolicy.RejectAll.Allows(IPAddress.Parse("93.184.216.34"), 80));
        Assert.False(ExitPolicy.RejectAll.Allows(IPAddress.Parse("2606:4700::1"), 443));
        Assert.False(ExitPolicy.RejectAll.Allows(IPAddress.Loopback, 80));
        Assert.False(new ExitPolicy([]).Allows(IPAddress.Parse("93.184.216.34"), 80));
    }

    [Fact]
    public void TheFirstMatchingRuleDecidesAndPortsBoundRules()
    {
        var policy = new ExitPolicy(
        [
            new ExitRule(ExitAction.Accept, IPAddress.Parse("10.1.0.0"), 16, 80, 80),
            new ExitRule(ExitAction.Reject, IPAddress.Parse("10.0.0.0"), 8, 0, ushort.MaxValue),
            new ExitRule(ExitAction.Accept, null, 0, 443, 443),
            new ExitRule(ExitAction.Accept, IPAddress.Parse("2001:db8::"), 32, 1000, 2000),
        ]);
        Assert.True(policy.Allows(IPAddress.Parse("10.1.2.3"), 80));
        Assert.False(policy.Allows(IPAddress.Parse("10.1.2.3"), 81));
        Assert.False(policy.Allows(IPAddress.Parse("10.2.0.1"), 80));
        Assert.False(policy.Allows(IPAddress.Parse("10.2.0.1"), 443));
        Assert.True(policy.Allows(IPAddress.Parse("93.184.216.34"), 443));
        Assert.False(policy.Allows(IPAddress.Parse("93.184.216.34"), 80));
        Assert.True(policy.Allows(IPAddress.Parse("2001:db8:ffff::1"), 1000));
        Assert.True(policy.Allows(IPAddress.Parse("2001:db8::1"), 2000));
        Assert.False(policy.Allows(IPAddress.Parse("2001:db8::1"), 2001));
        Assert.False(policy.Allows(IPAddress.Parse("2001:db9::1"), 1500));
        // An IPv4 rule never matches an IPv6 address and the reverse.
        Assert.False(policy.Allows(IPAddress.Parse("::a01:203"), 80));
    }

    [Theory]
    [InlineData("10.0.0.0", 7, "11.255.255.255", true)]
    [InlineData("10.0.0.0", 7, "12.0.0.0", false)]
    [InlineData("172.16.0.0", 12, "172.31.0.1", true)]
    [InlineData("172.16.0.0", 12, "172.32.0.1", false)]
    [InlineData("192.0.2.1", 32, "192.0.2.1", true)]
    [InlineData("192.0.2.1", 32, "192.0.2.0", false)]
    [InlineData("0.0.0.0", 0, "203.0.113.1", true)]
    [InlineData("fc00::", 7, "fdff::1", true)]
    [InlineData("fc00::", 7, "fe00::1", false)]
    [InlineData("2001:db8::", 127, "2001:db8::1", true)]
    [InlineData("2001:db8::", 127, "2001:db8::2", false)]
    public void PrefixesMatchOnlyTheirLeadingBits(string network, byte prefix, string address, bool matches)
    {
        var rule = new ExitRule(ExitAction.Accept, IPAddress.Parse(network), prefix, 0, ushort.MaxValue);
        Assert.Equal(matches, rule.Matches(IPAddress.Parse(address), 80));
    }

    [Fact]
    public void MayAllowPortSaysWhetherAnyAddressCouldBeAcceptedOnAPort()
    {
        Assert.True(ExitPolicy.Default.MayAllowPort(80));
        Assert.True(ExitPolicy.AcceptAll.MayAllowPort(0));
        Assert.False(ExitPolicy.RejectAll.MayAllowPort(80));

        var webOnly = new ExitPolicy(
        [
            new ExitRule(ExitAction.Accept, null, 0, 80, 80),
            new ExitRule(ExitAction.Accept, IPAddress.Parse("2001:db8::"), 32, 443, 443),
            new ExitRule(ExitAction.Reject, null, 0, 0, ushort.MaxValue),
        ]);
        Assert.True(webOnly.MayAllowPort(80));
        Assert.True(webOnly.MayAllowPort(443));
        Assert.False(webOnly.MayAllowPort(22));
        Assert.False(webOnly.MayAllowPort(8080));
    }

    [Fact]
    public void MayAllowPortIsFalseWhenAnEarlierRuleRejectsThePortForEveryAddress()
    {
        // "reject *:25, accept *:*": no address is ever accepted on 25, so a client should not pick this exit for it.
        var noSmtp = new ExitPolicy(
        [
            new ExitRule(ExitAction.Reject, null, 0, 25, 25),
            new ExitRule(ExitAction.Accept, null, 0, 0, ushort.MaxValue),
        ]);
        Assert.False(noSmtp.Allows(IPAddress.Parse("93.184.216.34"), 25));
        Assert.False(noSmtp.MayAllowPort(25));
        Assert.True(noSmtp.MayAllowPort(26));
    }

    public static TheoryData<string> Policies() => new("default", "accept-all", "reject-all", "mixed", "empty");

    private static ExitPolicy Named(string name) => name switch
    {
        "default" => ExitPolicy.Default,
        "accept-all" => ExitPolicy.AcceptAll,
        "reject-all" => ExitPolicy.RejectAll,
        "empty" => new ExitPolicy([]),
        _ => new ExitPolicy(
        [
            new ExitRule(ExitAction.Accept, IPAddress.Parse("198.51.100.0"), 24, 1, 1024),
            new ExitRule(ExitAction.Reject, IPAddress.Parse("2001:db8::"), 48, 22, 22),
            new ExitRule(ExitAction.Accept, null, 0, 443, 443),
        ]),
    };

    private static byte[] Encode(ExitPolicy policy)
    {
        var buffer = new byte[policy.EncodedLength];
        var writer = new WireWriter(buffer);
        policy.Encode(ref writer);
        Assert.Equal(buffer.Length, writer.Position);
        return buffer;
    }

    private static ExitPolicy Decode(byte[] bytes)
    {
        var reader = new WireReader(bytes);
        var policy = ExitPolicy.Decode(ref reader);
        reader.ExpectEnd();
        return policy;
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void EncodeAndDecodeRoundTrip(string name)
    {
        var policy = Named(name);
        var decoded = Decode(Encode(policy));
        Assert.Equal(policy.Rules, decoded.Rules);
        Assert.Equal(policy.ToString(), decoded.ToString());
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void EveryProperPrefixIsTruncated(string name)
    {
        byte[] encoded = Encode(Named(name));
        for (int length = 0; length < encoded.Length; length++)
        {
            var error = Assert.Throws<WireException>(() => Decode(encoded[..length]));
            Assert.Equal(WireError.Truncated, error.Error);
        }
    }

    [Theory]
    [InlineData("01 02 00 00 00 00 ff ff", WireError.BadField)]                    // action 2
    [InlineData("01 01 05 00 00 00 ff ff", WireError.BadField)]                    // family 5
    [InlineData("01 01 00 01 00 00 ff ff", WireError.BadField)]                    // prefix on "any"
    [InlineData("01 01 04 0a 00 00 00 21 00 00 ff ff", WireError.BadField)]        // /33 on IPv4
    [InlineData("01 01 06 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 00 81 00 00 ff ff", WireError.BadField)] // /129 on IPv6
    [InlineData("01 01 00 00 00 51 00 50", WireError.BadField)]                    // ports 81-80
    [InlineData("41", WireError.Oversized)]                                         // 65 rules
    [InlineData("ff", WireError.Oversized)]
    [InlineData("02 01 00 00 00 00 ff ff", WireError.Truncated)]                   // second rule missing
    public void MalformedEncodingsAreRefusedWithATypedError(string hex, WireError expected)
    {
        var error = Assert.Throws<WireException>(() => Decode(Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal))));
        Assert.Equal(expected, error.Error);
    }

    [Fact]
    public void TheLargestPolicyRoundTripsAndOneMoreRuleIsRefused()
    {
        var rules = Enumerable.Range(0, ExitPolicy.MaxRules)
            .Select(i => new ExitRule(ExitAction.Reject, IPAddress.Parse($"2001:db8::{i:x}"), 128, (ushort)i, ushort.MaxValue)).ToArray();
        var policy = new ExitPolicy(rules);
        Assert.Equal(rules, Decode(Encode(policy)).Rules);
        Assert.Throws<ArgumentException>(() => new ExitPolicy([.. rules, rules[0]]));
    }

    [Fact]
    public void RandomBytesAreOnlyEverAWireException()
    {
        var random = new Random(1918);
        for (int i = 0; i < 20_000; i++)
        {
            byte[] input = new byte[random.Next(0, 80)];
            random.NextBytes(input);
            if (input.Length > 0) input[0] = (byte)random.Next(4);
            try
            {
                var policy = Decode(input);
                // Whatever decodes must encode back to the same bytes.
                Assert.Equal(input, Encode(policy));
            }
            catch (WireException)
            {
            }
        }
    }
}
