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
        Assert.Equal(EndReason.ExitPolicy, why);
        Assert.Equal(EndReason.ResolveFailed, (await With(ExitPolicy.Default).ResolveAsync("nowhere.example", default)).Failure);
    }

    [Fact]
    public async Task A_name_that_resolves_to_a_private_address_is_refused_like_the_address()
    {
        var exit = With(ExitPolicy.Default, IPAddress.Loopback);
        var result = await exit.ConnectAsync(new StreamTarget("sneaky.example", 80), default);
        Assert.Null(result.Socket);
        Assert.Equal(EndReason.ExitPolicy, result.Failure);
        var literal = await exit.ConnectAsync(new StreamTarget("127.0.0.1", 80), default);
        Assert.Equal(EndReason.ExitPolicy, literal.Failure);
    }
}
