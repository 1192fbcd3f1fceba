using Quid.Circuits;
using Quid.Crypto;

namespace Quid.Tests.Circuits;

/// <summary>The exit-socket budget's fair shares, with plain objects for circuits.</summary>
public sealed class ExitSocketsTests
{
    private static readonly NodeId Alice = new(Enumerable.Repeat((byte)1, NodeId.Size).ToArray());
    private static readonly NodeId Bob = new(Enumerable.Repeat((byte)2, NodeId.Size).ToArray());
    private static readonly NodeId Carol = new(Enumerable.Repeat((byte)3, NodeId.Size).ToArray());

    private static List<ExitSockets.Lease> TakeAll(ExitSockets sockets, NodeId partner, object circuit)
    {
        var leases = new List<ExitSockets.Lease>();
        while (sockets.TryTake(partner, circuit) is { } lease) leases.Add(lease);
        return leases;
    }

    [Fact]
    public void The_budget_keeps_a_reserve_and_a_quarter_of_the_rest_and_never_less_than_a_quarter_of_the_limit()
    {
        Assert.Equal((4096 - ExitSockets.Reserve) * 3 / 4, ExitSockets.BudgetFor(4096));
        Assert.Equal(64, ExitSockets.BudgetFor(256));
        Assert.Equal(1, ExitSockets.BudgetFor(2));
        Assert.True(ExitSockets.BudgetFor(long.MaxValue) > 0);
    }

    [Fact]
    public void One_partner_gets_at_most_half_so_another_partner_always_finds_room()
    {
        var sockets = new ExitSockets(100);
        var alice = TakeAll(sockets, Alice, "a1").Concat(TakeAll(sockets, Alice, "a2")).Concat(TakeAll(sockets, Alice, "a3")).ToList();
        Assert.Equal(50, alice.Count);
        Assert.Equal(50, sockets.InUse);

        var bob = TakeAll(sockets, Bob, "b1");
        Assert.Equal(25, bob.Count); // half of Bob's share: his one circuit leaves room for his next
        Assert.NotNull(sockets.TryTake(Bob, "b2"));

        // A third partner's share is a third, half of it per circuit; Alice, past her third, is refused.
        Assert.Equal(16, TakeAll(sockets, Carol, "c1").Count);
        Assert.Null(sockets.TryTake(Alice, "a4"));
        Assert.Equal(92, sockets.InUse);

        // Her share comes back as her streams end.
        foreach (var lease in alice.Take(20)) lease.Dispose();
        Assert.NotNull(sockets.TryTake(Alice, "a4"));
    }

    [Fact]
    public void A_lease_returns_its_socket_once_and_an_empty_partner_leaves_no_trace()
    {
        var sockets = new ExitSockets(4);
        var lease = sockets.TryTake(Alice, "a")!;
        lease.Dispose();
        lease.Dispose();
        Assert.Equal(0, sockets.InUse);
        Assert.Single(TakeAll(sockets, Alice, "a"));
        Assert.Single(TakeAll(sockets, Bob, "b"));
        Assert.Equal(2, sockets.InUse);
    }

    [Fact]
    public void The_whole_budget_is_never_exceeded_by_many_partners()
    {
        var sockets = new ExitSockets(10);
        int taken = 0;
        for (byte p = 1; p < 40; p++)
            taken += TakeAll(sockets, new NodeId(Enumerable.Repeat(p, NodeId.Size).ToArray()), p).Count;
        Assert.Equal(10, taken);
        Assert.Equal(10, sockets.InUse);
    }
}
