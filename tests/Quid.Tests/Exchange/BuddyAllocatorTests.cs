using Quid.Exchange;
using Quid.Wire;

namespace Quid.Tests.Exchange;

public class BuddyAllocatorTests
{
    private static Block K(long kbps) => Block.FromKbps(kbps);

    private static long[] FreeKbps(BuddyAllocator allocator) => [.. allocator.FreeBlocks.Select(b => b.Kbps)];

    [Fact]
    public void AFreshAllocatorIsOneFreeBlockOfItsCapacity()
    {
        var allocator = new BuddyAllocator(K(512));
        Assert.Equal([512L], FreeKbps(allocator));
        Assert.Equal(512, allocator.FreeKbps);
        Assert.Equal(0, allocator.GrantedKbps);
        Assert.Equal(K(512), allocator.LargestFree);
        Assert.Equal(K(512), allocator.Capacity);
    }

    [Fact]
    public void TheSeedsExampleGranting16OutOf512LeavesOnlySearchableBlocks()
    {
        var allocator = new BuddyAllocator(K(512));
        Assert.True(allocator.TryAllocate(K(16), out var grant));
        Assert.Equal(new Allocation(0, K(16)), grant);
        Assert.Equal([256L, 128, 64, 32, 16], FreeKbps(allocator));
        Assert.Equal(496, allocator.FreeKbps);
        Assert.Equal(16, allocator.GrantedKbps);

        allocator.Release(grant);
        Assert.Equal([512L], FreeKbps(allocator));
        Assert.Equal(0, allocator.GrantedKbps);
    }

    [Fact]
    public void AllocationTakesTheSmallestFreeBlockThatFits()
    {
        var allocator = new BuddyAllocator(K(512));
        Assert.True(allocator.TryAllocate(K(16), out _));
        // 32 fits the free 32 exactly: the 256 stays whole.
        Assert.True(allocator.TryAllocate(K(32), out var thirtyTwo));
        Assert.Equal(2, thirtyTwo.Offset);
        Assert.Equal([256L, 128, 64, 16], FreeKbps(allocator));
        Assert.True(allocator.TryAllocate(K(256), out var big));
        Assert.Equal(16, big.Offset);
        Assert.Equal([128L, 64, 16], FreeKbps(allocator));
    }

    [Fact]
    public void AllocationFailsOnlyWhenNoFreeBlockIsLargeEnough()
    {
        var allocator = new BuddyAllocator(K(64));
        Assert.False(allocator.CanAllocate(K(128)));
        Assert.False(allocator.TryAllocate(K(128), out _));
        Assert.True(allocator.TryAllocate(K(32), out _));
        Assert.False(allocator.CanAllocate(K(64)));
        Assert.False(allocator.TryAllocate(K(64), out _));
        Assert.True(allocator.CanAllocate(K(32)));
        Assert.True(allocator.TryAllocate(K(32), out _));
        Assert.Null(allocator.LargestFree);
        Assert.Empty(allocator.FreeBlocks);
        Assert.False(allocator.CanAllocate(K(16)));
        Assert.False(allocator.TryAllocate(K(16), out _));
        Assert.Equal(64, allocator.GrantedKbps);
    }

    [Fact]
    public void ReleaseMergesOnlyWithAFreeBuddy()
    {
        var allocator = new BuddyAllocator(K(128));
        Assert.True(allocator.TryAllocate(K(32), out var a));
        Assert.True(allocator.TryAllocate(K(32), out var b));
        Assert.Equal([64L], FreeKbps(allocator));
        allocator.Release(a);
        Assert.Equal([64L, 32], FreeKbps(allocator));
        allocator.Release(b);
        Assert.Equal([128L], FreeKbps(allocator));
    }

    [Fact]
    public void ShrinkHalvesAGrantAndFreesTheUpperHalf()
    {
        var allocator = new BuddyAllocator(K(512));
        Assert.True(allocator.TryAllocate(K(256), out var grant));
        var half = allocator.Shrink(grant);
        Assert.Equal(new Allocation(grant.Offset, K(128)), half);
        Assert.Equal([256L, 128], FreeKbps(allocator));
        Assert.Equal(128, allocator.GrantedKbps);

        var quarter = allocator.Shrink(half);
        Assert.Equal(new Allocation(grant.Offset, K(64)), quarter);
        Assert.Equal([256L, 128, 64], FreeKbps(allocator));

        allocator.Release(quarter);
        Assert.Equal([512L], FreeKbps(allocator));
    }

    [Fact]
    public void TheSmallestBlockCannotShrink()
    {
        var allocator = new BuddyAllocator(K(64));
        Assert.True(allocator.TryAllocate(K(16), out var grant));
        Assert.Throws<ArgumentException>(() => allocator.Shrink(grant));
        Assert.Equal(16, allocator.GrantedKbps);
    }

    [Fact]
    public void ReleasingABlockThatIsNotOneOfOursIsRefused()
    {
        var allocator = new BuddyAllocator(K(512));
        Assert.Throws<ArgumentException>(() => allocator.Release(new Allocation(1, K(32))));   // misaligned
        Assert.Throws<ArgumentException>(() => allocator.Release(new Allocation(-2, K(32))));
        Assert.Throws<ArgumentException>(() => allocator.Release(new Allocation(32, K(16))));  // past the end
        Assert.Throws<ArgumentException>(() => allocator.Release(new Allocation(0, K(1024)))); // larger than capacity
        Assert.Equal([512L], FreeKbps(allocator));
    }

    [Fact]
    public void ReleasingTheSameGrantTwiceThrows()
    {
        var allocator = new BuddyAllocator(K(512));
        Assert.True(allocator.TryAllocate(K(16), out var grant));
        allocator.Release(grant);
        // The first release merged it back into the whole 512: the second must not add 16 kbps out of thin air.
        Assert.Throws<InvalidOperationException>(() => allocator.Release(grant));
        Assert.Equal([512L], FreeKbps(allocator));
        Assert.Equal(512, allocator.FreeKbps);
    }

    [Fact]
    public void ReleasingAGrantTwiceWhileItsBuddyIsTakenThrows()
    {
        var allocator = new BuddyAllocator(K(64));
        Assert.True(allocator.TryAllocate(K(32), out var a));
        Assert.True(allocator.TryAllocate(K(32), out _));
        allocator.Release(a);
        Assert.Throws<InvalidOperationException>(() => allocator.Release(a));
        Assert.Equal(32, allocator.FreeKbps);
    }

    [Fact]
    public void ReleasingABlockThatOverlapsFreeSpaceThrows()
    {
        var allocator = new BuddyAllocator(K(512));
        Assert.True(allocator.TryAllocate(K(16), out _));
        // Only 16 kbps at offset 0 is granted; "releasing" the whole 512 would count the free rest twice.
        Assert.Throws<InvalidOperationException>(() => allocator.Release(new Allocation(0, K(512))));
        Assert.Throws<InvalidOperationException>(() => allocator.Release(new Allocation(0, K(32))));
        Assert.Throws<InvalidOperationException>(() => allocator.Release(new Allocation(16, K(64))));
        Assert.Equal(496, allocator.FreeKbps);
    }

    [Fact]
    public void RandomGrantsReleasesAndShrinksKeepEveryInvariant()
    {
        var random = new Random(512);
        for (int run = 0; run < 100; run++)
        {
            var capacity = new Block((byte)random.Next(0, 11));
            var allocator = new BuddyAllocator(capacity);
            var granted = new List<Allocation>();
            for (int step = 0; step < 1000; step++)
            {
                int op = random.Next(10);
                if (op < 5 || granted.Count == 0)
                {
                    var size = new Block((byte)random.Next(0, capacity.Order + 2));
                    bool expected = allocator.LargestFree is { } largest && largest >= size;
                    Assert.Equal(expected, allocator.CanAllocate(size));
                    Assert.Equal(expected, allocator.TryAllocate(size, out var allocation));
                    if (expected)
                    {
                        Assert.Equal(size, allocation.Size);
                        granted.Add(allocation);
                    }
                }
                else if (op < 8)
                {
                    int i = random.Next(granted.Count);
                    allocator.Release(granted[i]);
                    granted.RemoveAt(i);
                }
                else
                {
                    int i = random.Next(granted.Count);
                    if (granted[i].Size.Order == 0) continue;
                    var shrunk = allocator.Shrink(granted[i]);
                    Assert.Equal(granted[i].Offset, shrunk.Offset);
                    Assert.Equal(granted[i].Size.Order - 1, shrunk.Size.Order);
                    granted[i] = shrunk;
                }
                CheckInvariants(allocator, granted);
            }

            foreach (var allocation in granted) allocator.Release(allocation);
            Assert.Equal([capacity], allocator.FreeBlocks);
            Assert.Equal(0, allocator.GrantedKbps);
        }
    }

    /// <summary>
    /// The property test: 10^5 independent random sequences of grants, releases, shrinks
    /// and regrowths. After every step free + granted equals the offer and every free block is a
    /// block (16·2^k kbps); at the end of each sequence the full buddy invariant holds, and
    /// releasing everything merges back to the one block offered.
    /// </summary>
    [Fact]
    public void A_hundred_thousand_random_sequences_keep_free_plus_granted_equal_to_the_offer()
    {
        var random = new Random(100_000);
        for (int run = 0; run < 100_000; run++)
        {
            var capacity = new Block((byte)random.Next(0, 11));
            var allocator = new BuddyAllocator(capacity);
            var granted = new List<Allocation>();
            int steps = random.Next(1, 25);
            for (int step = 0; step < steps; step++)
            {
                int op = random.Next(10);
                if (op < 5 || granted.Count == 0)
                {
                    if (allocator.TryAllocate(new Block((byte)random.Next(0, capacity.Order + 1)), out var allocation)) granted.Add(allocation);
                }
                else if (op < 7)
                {
                    int i = random.Next(granted.Count);
                    allocator.Release(granted[i]);
                    granted.RemoveAt(i);
                }
                else if (op < 9)
                {
                    int i = random.Next(granted.Count);
                    if (granted[i].Size.Order > 0) granted[i] = allocator.Shrink(granted[i]);
                }
                else
                {
                    int i = random.Next(granted.Count);
                    if (allocator.TryGrow(granted[i]) is { } grown) granted[i] = grown;
                }
                Assert.Equal(capacity.Kbps, allocator.FreeKbps + granted.Sum(g => g.Size.Kbps));
                // The free total, the largest free block and the advertised blocks are kept as
                // blocks come and go: each must agree with the free lists themselves.
                var free = allocator.FreeAllocations.Select(a => a.Size).ToList();
                Assert.Equal(free.Sum(b => b.Kbps), allocator.FreeKbps);
                Assert.Equal(free.Count == 0 ? null : free.Max(), allocator.LargestFree);
                Assert.Equal(free, allocator.FreeBlocks);
                Assert.All(allocator.FreeBlocks, b => Assert.True(Block.TryFromKbps(b.Kbps, out _)));
            }
            CheckInvariants(allocator, granted);
            foreach (var allocation in granted) allocator.Release(allocation);
            Assert.Equal([capacity], allocator.FreeBlocks);
        }
    }

    [Fact]
    public void A_shrunk_grant_grows_back_only_while_its_buddy_is_free()
    {
        var allocator = new BuddyAllocator(K(512));
        allocator.TryAllocate(K(256), out var grant);
        var half = allocator.Shrink(grant);
        Assert.Equal(K(128), half.Size);
        allocator.TryAllocate(K(128), out var neighbour); // takes the freed upper half
        Assert.Null(allocator.TryGrow(half));
        allocator.Release(neighbour);
        var grown = allocator.TryGrow(half);
        Assert.Equal(new Allocation(grant.Offset, K(256)), grown);
        Assert.Equal([K(256)], allocator.FreeBlocks);
    }

    /// <summary>
    /// Grants are aligned, disjoint and inside the capacity, and the free blocks are exactly the
    /// buddy decomposition of what is left: every maximal aligned 16·2^k block holding no grant.
    /// That is what "free blocks are aligned to their size and merged with free buddies" means.
    /// </summary>
    private static void CheckInvariants(BuddyAllocator allocator, List<Allocation> granted)
    {
        int units = 1 << allocator.Capacity.Order;
        var owner = new int[units];
        foreach (var g in granted)
        {
            int size = 1 << g.Size.Order;
            Assert.Equal(0, g.Offset % size);
            Assert.InRange(g.Offset, 0, units - size);
            for (int u = g.Offset; u < g.Offset + size; u++)
            {
                Assert.Equal(0, owner[u]);
                owner[u] = 1;
            }
        }

        long grantedKbps = granted.Sum(g => g.Size.Kbps);
        Assert.Equal(grantedKbps, allocator.GrantedKbps);
        Assert.Equal(allocator.Capacity.Kbps, allocator.FreeKbps + allocator.GrantedKbps);

        var expectedFree = new List<byte>();
        Decompose(owner, 0, allocator.Capacity.Order, expectedFree);
        var free = allocator.FreeBlocks;
        Assert.Equal(expectedFree.OrderDescending(), free.Select(b => b.Order));
        Assert.All(free, b => Assert.True(Block.TryFromKbps(b.Kbps, out _)));
        Assert.Equal(allocator.FreeKbps, free.Sum(b => b.Kbps));
        Assert.Equal(free.Count == 0 ? null : free[0], allocator.LargestFree);
        // The check a node makes every second instead of listing them: the list itself, and no
        // list one block longer, shorter, or other in its smallest block.
        Assert.True(allocator.FreeBlocksAre(free));
        Assert.False(allocator.FreeBlocksAre([.. free, new Block(0)]));
        if (free.Count > 0)
        {
            Assert.False(allocator.FreeBlocksAre([.. free.Take(free.Count - 1)]));
            Assert.False(allocator.FreeBlocksAre([.. free.Take(free.Count - 1), new Block((byte)(free[^1].Order + 1))]));
        }
    }

    private static void Decompose(int[] owner, int offset, int order, List<byte> free)
    {
        var span = owner.AsSpan(offset, 1 << order);
        if (!span.Contains(1))
        {
            free.Add((byte)order);
            return;
        }
        if (order == 0 || !span.Contains(0)) return;
        Decompose(owner, offset, order - 1, free);
        Decompose(owner, offset + (1 << (order - 1)), order - 1, free);
    }
}
