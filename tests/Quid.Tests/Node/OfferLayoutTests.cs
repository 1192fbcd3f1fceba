using Quid.Crypto;
using Quid.Exchange;
using Quid.Node.Control;
using Quid.Wire;

namespace Quid.Tests.Node;

/// <summary>The offer drawn as the buddy allocator holds it: grants where they sit, the rest in the free blocks it advertises.</summary>
public sealed class OfferLayoutTests
{
    private static readonly NodeId Alice = new(Enumerable.Repeat((byte)1, NodeId.Size).ToArray());
    private static readonly NodeId Bob = new(Enumerable.Repeat((byte)2, NodeId.Size).ToArray());

    [Fact]
    public void Granting_16_of_512_draws_the_grant_and_the_five_free_blocks_the_seed_describes()
    {
        var offer = Block.FromKbps(512);
        var allocator = new BuddyAllocator(offer);
        Assert.True(allocator.TryAllocate(Block.FromKbps(16), out var grant));

        var blocks = ControlViews.OfferBlocks(offer, [(Alice, grant)], allocator.FreeBlocks);

        Assert.Equal([16, 16, 32, 64, 128, 256], blocks.Select(b => b.Kbps));
        Assert.Equal([0, 16, 32, 64, 128, 256], blocks.Select(b => b.OffsetKbps));
        Assert.Equal(OfferBlockState.Granted, blocks[0].State);
        Assert.Equal(Alice.ToString(), blocks[0].Partner);
        Assert.All(blocks.Skip(1), b => Assert.Equal(OfferBlockState.Free, b.State));
        Assert.Equal(offer.Kbps, blocks.Sum(b => b.Kbps));
    }

    [Fact]
    public void A_block_held_for_a_proposal_is_neither_granted_nor_free()
    {
        var offer = Block.FromKbps(1024);
        var allocator = new BuddyAllocator(offer);
        Assert.True(allocator.TryAllocate(Block.FromKbps(256), out var active));
        Assert.True(allocator.TryAllocate(Block.FromKbps(128), out var pending));

        // Only the active agreement is reported as a grant; the pending one's block is not free either.
        var blocks = ControlViews.OfferBlocks(offer, [(Bob, active)], allocator.FreeBlocks);

        Assert.Equal(offer.Kbps, blocks.Sum(b => b.Kbps));
        Assert.Equal(256, blocks.Single(b => b.State == OfferBlockState.Granted).Kbps);
        Assert.Equal(allocator.FreeKbps, blocks.Where(b => b.State == OfferBlockState.Free).Sum(b => b.Kbps));
        Assert.Equal(pending.Size.Kbps, blocks.Where(b => b.State == OfferBlockState.Reserved).Sum(b => b.Kbps));
        Assert.All(blocks.Where(b => b.State == OfferBlockState.Reserved), b => Assert.InRange(b.OffsetKbps, pending.Offset * 16L, (pending.Offset * 16L) + pending.Size.Kbps - 1));
    }

    [Fact]
    public void A_fully_granted_offer_has_no_free_block()
    {
        var offer = Block.FromKbps(64);
        var allocator = new BuddyAllocator(offer);
        Assert.True(allocator.TryAllocate(Block.FromKbps(32), out var a));
        Assert.True(allocator.TryAllocate(Block.FromKbps(32), out var b));

        var blocks = ControlViews.OfferBlocks(offer, [(Alice, a), (Bob, b)], allocator.FreeBlocks);

        Assert.Equal([Alice.ToString(), Bob.ToString()], blocks.Select(x => x.Partner));
        Assert.All(blocks, x => Assert.Equal(OfferBlockState.Granted, x.State));
    }
}
