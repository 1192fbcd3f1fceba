using System.Net;
using Quid.Circuits;
using Quid.Wire;

namespace Quid.Tests.Circuits;

public sealed class ExitConnectorTests
{
    private static ExitConnector With(ExitPolicy policy, params IPAddress[] answer) =>
        new(policy, null, TimeSpan.FromSeconds(5), TimeProvider.System, (_, _) => Task.FromResult(answer));

    [Fact]
    public async Task A_lookup_never_reveals_the_exits_private_addresses()
    {
        var exit = With(ExitPolicy.Default, IPAddress.Parse("10.1.2.3"), IPAddress.Parse("93.184.216.34"), IPAddress.Loopback);
        var (addresses, failure) = await exit.ResolveAsync("intranet.example", default);
        Assert.Equal([IPAddress.Parse("93.184.216.34")], addresses);
        Assert.Equal(EndReason.Done, failure);

        var (none, why) = await With(ExitPolicy.Default, IPAddress.Parse("192.168.1.1")).ResolveAsync("router.example", default);
        Assert.Empty(none);
        Assert.Equal(EndReason.ResolveFailed, why); // as a name that does not exist: no map of the exit's network
        Assert.Equal(EndReason.ResolveFailed, (await With(ExitPolicy.Default).ResolveAsync("nowhere.example", default)).Failure);
    }

    [Fact]
    public async Task A_name_that_resolves_to_a_private_address_is_refused_as_a_name_that_does_not_exist()
    {
        var exit = With(ExitPolicy.Default, IPAddress.Loopback);
        var result = await exit.ConnectAsync(new StreamTarget("sneaky.example", 80), default);
        Assert.Null(result.Socket);
        Assert.Equal(EndReason.ResolveFailed, result.Failure);
        Assert.Equal(EndReason.ResolveFailed, (await With(ExitPolicy.Default).ConnectAsync(new StreamTarget("nowhere.example", 80), default)).Failure);
        // An address the client gave: refusing it as what it is tells nothing of the exit's DNS.
        var literal = await exit.ConnectAsync(new StreamTarget("127.0.0.1", 80), default);
        Assert.Equal(EndReason.ExitPolicy, literal.Failure);
    }

    [Fact]
    public async Task A_port_the_policy_refuses_everywhere_is_refused_before_any_lookup()
    {
        int lookups = 0;
        var exit = new ExitConnector(new ExitPolicy([new ExitRule(ExitAction.Accept, null, 0, 443, 443)]), null, TimeSpan.FromSeconds(5), TimeProvider.System,
            (_, _) => { lookups++; return Task.FromResult(new[] { IPAddress.Parse("93.184.216.34") }); });
        Assert.Equal(EndReason.ExitPolicy, (await exit.ConnectAsync(new StreamTarget("example.org", 25), default)).Failure);
        Assert.Equal(0, lookups);
    }

    [Theory]
    [InlineData("abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.quid")]
    [InlineData("www.Service.QUID.")]
    public async Task A_session_address_is_never_handed_to_the_exits_resolver(string host)
    {
        int lookups = 0;
        var exit = new ExitConnector(ExitPolicy.Default, null, TimeSpan.FromSeconds(5), TimeProvider.System,
            (_, _) => { lookups++; return Task.FromResult(new[] { IPAddress.Parse("93.184.216.34") }); });
        Assert.Equal(EndReason.ResolveFailed, (await exit.ConnectAsync(new StreamTarget(host, 80), default)).Failure);
        Assert.Equal(EndReason.ResolveFailed, (await exit.ResolveAsync(host, default)).Failure);
        Assert.Equal(0, lookups);
        // A name that merely contains the word is an ordinary name.
        Assert.Equal(EndReason.Done, (await exit.ResolveAsync("quid.example", default)).Failure);
    }

    [Fact]
    public void The_exits_own_addresses_are_refused_unless_a_rule_names_them_or_loopback_is_accepted()
    {
        var own = IPAddress.Parse("203.0.113.7");
        var other = IPAddress.Parse("198.51.100.1");
        var addresses = new OwnAddresses([own], TimeProvider.System, () => [IPAddress.Parse("2001:db8::7")]);
        ExitConnector Exit(params ExitRule[] rules) => new(new ExitPolicy(rules), null, TimeSpan.FromSeconds(5), TimeProvider.System, ownAddresses: addresses);
        var anything = new ExitRule(ExitAction.Accept, null, 0, 0, ushort.MaxValue);

        var defaults = new ExitConnector(ExitPolicy.Default, null, TimeSpan.FromSeconds(5), TimeProvider.System, ownAddresses: addresses);
        Assert.False(defaults.Allows(own, 80));
        Assert.False(defaults.Allows(IPAddress.Parse("::ffff:203.0.113.7"), 80));
        Assert.False(defaults.Allows(IPAddress.Parse("2001:db8::7"), 443)); // an interface's address, never configured
        Assert.True(defaults.Allows(other, 80));
        // The outside address a NAT gateway mapped for us is ours from then on.
        addresses.Learned(IPAddress.Parse("::ffff:198.51.100.1"));
        Assert.False(defaults.Allows(other, 80));

        var named = Exit(new ExitRule(ExitAction.Reject, IPAddress.Loopback, 8, 0, ushort.MaxValue), new ExitRule(ExitAction.Accept, own, 32, 80, 80), anything);
        Assert.True(named.Allows(own, 80));
        Assert.False(named.Allows(own, 22));
        // A test network's accept *:* reaches loopback, hence the host anyway: its own address too.
        Assert.True(Exit(anything).Allows(own, 22));
    }
}
