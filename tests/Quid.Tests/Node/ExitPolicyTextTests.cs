using System.Net;
using Quid.Node.Configuration;
using Quid.Wire;

namespace Quid.Tests.Node;

/// <summary>Exit policies written as Tor writes them, read into the same rules the wire carries.</summary>
public sealed class ExitPolicyTextTests
{
    [Fact]
    public void The_default_policy_reads_as_reject_private_then_accept_everything_and_back()
    {
        Assert.Equal("reject private:*, accept *:*", ExitPolicyText.Format(ExitPolicy.Default));
        Assert.Equal(ExitPolicy.Default.Rules, ExitPolicyText.Parse("reject private:*, accept *:*").Rules);
    }

    [Fact]
    public void The_first_matching_rule_decides_and_no_match_rejects()
    {
        var policy = ExitPolicyText.Parse("reject 93.184.216.0/24:443, accept *:80, accept *:443");
        Assert.True(policy.Allows(IPAddress.Parse("1.2.3.4"), 80));
        Assert.True(policy.Allows(IPAddress.Parse("1.2.3.4"), 443));
        Assert.False(policy.Allows(IPAddress.Parse("93.184.216.34"), 443));
        Assert.False(policy.Allows(IPAddress.Parse("1.2.3.4"), 22));
    }

    [Fact]
    public void Private_covers_loopback_the_LAN_and_their_IPv6_kin()
    {
        var policy = ExitPolicyText.Parse("reject private:*, accept *:*");
        Assert.False(policy.Allows(IPAddress.Loopback, 80));
        Assert.False(policy.Allows(IPAddress.Parse("192.168.1.10"), 80));
        Assert.False(policy.Allows(IPAddress.Parse("10.1.2.3"), 80));
        Assert.False(policy.Allows(IPAddress.IPv6Loopback, 80));
        Assert.False(policy.Allows(IPAddress.Parse("fd00::1"), 80));
        Assert.True(policy.Allows(IPAddress.Parse("1.1.1.1"), 80));
    }

    [Theory]
    [InlineData("accept *:80", "accept *:80")]
    [InlineData("ACCEPT 10.0.0.0/8", "accept 10.0.0.0/8:*")]
    [InlineData("reject 192.0.2.7:1024-65535", "reject 192.0.2.7/32:1024-65535")]
    [InlineData("accept [2001:db8::]/32:443", "accept [2001:db8::]/32:443")]
    [InlineData("accept [::1]", "accept [::1]/128:*")]
    [InlineData("accept *:80\nreject *:*", "accept *:80, reject *:*")]
    [InlineData("accept private:80-81", "accept private:80-81")]
    public void Rules_read_and_write_back_in_one_canonical_form(string text, string canonical)
    {
        var policy = ExitPolicyText.Parse(text);
        Assert.Equal(canonical, ExitPolicyText.Format(policy));
        Assert.Equal(policy.Rules, ExitPolicyText.Parse(canonical).Rules);
    }

    [Theory]
    [InlineData("", "no rules")]
    [InlineData("accept", "names no address")]
    [InlineData("permit *:80", "does not start with accept or reject")]
    [InlineData("accept ::1:80", "is not an address")]
    [InlineData("accept [::1:80", "never closes it")]
    [InlineData("accept 300.1.1.1:80", "is not an address")]
    [InlineData("accept *:99999", "is not a port")]
    [InlineData("reject private:*, reject private:*, reject private:*, reject private:*, reject private:*", "at most 64")]
    public void Nonsense_is_refused_with_what_is_wrong(string text, string reason)
    {
        var error = Assert.Throws<FormatException>(() => ExitPolicyText.Parse(text));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }
}
