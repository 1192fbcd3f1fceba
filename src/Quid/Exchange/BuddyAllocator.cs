using System.Numerics;
using Quid.Wire;

namespace Quid.Exchange;

/// <summary>A block handed out of the offer: where it sits in the offer and how large it is.</summary>
public readonly record struct Allocation(int Offset, Block Size);

/// <summary>
/// The offered capacity as a buddy allocator, which is how Quid avoids the seed's "bad numbers":
/// granting 16 kbps out of 512 leaves 256+128+64+32+16, all blocks someone can search for, and a
/// released grant merges with its free buddy again. Offsets are in units of the smallest block.
/// </summary>
public sealed class BuddyAllocator
{
    private readonly SortedSet<int>[] _free;
    // Which orders hold a free block, and how much is free, kept as blocks come and go: matches,
    // searches and descriptors ask for them all the time, and counting one set per order at each
    // ask (a cache miss each) was a fifth of a 10,000-node simulation.
    private uint _ordersFree;
    private long _freeKbps;

    public Block Capacity { get; }

    public BuddyAllocator(Block capacity)
    {
        Capacity = capacity;
        _free = new SortedSet<int>[capacity.Order + 1];
        for (int i = 0; i <= capacity.Order; i++) _free[i] = [];
        AddFree(capacity.Order, 0);
    }

    public long FreeKbps => _freeKbps;

    public long GrantedKbps => Capacity.Kbps - FreeKbps;

    /// <summary>Every free block, largest first: what the node advertises.</summary>
    public IReadOnlyList<Block> FreeBlocks
    {
        get
        {
            var blocks = new List<Block>();
            for (int order = _free.Length - 1; order >= 0; order--)
                if ((_ordersFree & 1u << order) != 0)
                    for (int i = 0; i < _free[order].Count; i++) blocks.Add(new Block((byte)order));
            return blocks;
        }
    }

    /// <summary>Whether <paramref name="blocks"/> are the free blocks, largest first, as <see cref="FreeBlocks"/> lists them, without building that list.</summary>
    public bool FreeBlocksAre(IReadOnlyList<Block> blocks)
    {
        int i = 0;
        for (int order = _free.Length - 1; order >= 0; order--)
        {
            if ((_ordersFree & 1u << order) == 0) continue;
            var block = new Block((byte)order);
            for (int end = i + _free[order].Count; i < end; i++)
                if (i >= blocks.Count || blocks[i] != block) return false;
        }
        return i == blocks.Count;
    }

    /// <summary>Every free block with its place in the offer, so that a checker can see they tile it and are fully merged.</summary>
    public IEnumerable<Allocation> FreeAllocations
    {
        get
        {
            for (int order = _free.Length - 1; order >= 0; order--)
                foreach (int offset in _free[order]) yield return new Allocation(offset, new Block((byte)order));
        }
    }

    public Block? LargestFree => _ordersFree == 0 ? null : new Block((byte)(31 - BitOperations.LeadingZeroCount(_ordersFree)));

    public bool CanAllocate(Block size) => size <= Capacity && LargestFree is { } largest && largest >= size;

    /// <summary>Takes <paramref name="size"/> from the smallest free block that holds it, splitting as needed.</summary>
    public bool TryAllocate(Block size, out Allocation allocation)
    {
        allocation = default;
        int order = size.Order;
        uint large = order < 32 ? _ordersFree >> order << order : 0;
        if (large == 0) return false;
        int from = BitOperations.TrailingZeroCount(large);

        int offset = _free[from].Min;
        RemoveFree(from, offset);
        // Split down: keep the lower half, free the upper half at each level.
        while (from > order)
        {
            from--;
            AddFree(from, offset + (1 << from));
        }
        allocation = new Allocation(offset, size);
        return true;
    }

    /// <summary>Returns a block to the free lists, merging it with its buddy while the buddy is free.</summary>
    public void Release(Allocation allocation)
    {
        int order = allocation.Size.Order;
        int offset = allocation.Offset;
        if (order > Capacity.Order || offset < 0 || (offset & ((1 << order) - 1)) != 0 || offset + (1 << order) > 1 << Capacity.Order)
            throw new ArgumentException($"{allocation} is not a block of this allocator.", nameof(allocation));
        // The block must be wholly granted: free space inside it, or a free block holding it, means
        // it was released already (and perhaps merged) or never granted as one piece.
        for (int o = 0; o <= Capacity.Order; o++)
        {
            bool overlapsFree = o >= order
                ? _free[o].Contains(offset & ~((1 << o) - 1))
                : _free[o].GetViewBetween(offset, offset + (1 << order) - 1).Count > 0;
            if (overlapsFree) throw new InvalidOperationException($"{allocation} is not wholly granted: released twice, or never granted.");
        }
        while (order < Capacity.Order)
        {
            int buddy = offset ^ (1 << order);
            if (!RemoveFree(order, buddy)) break;
            offset = Math.Min(offset, buddy);
            order++;
        }
        if (!AddFree(order, offset)) throw new InvalidOperationException($"{allocation} was released twice.");
    }

    /// <summary>
    /// Halves a granted block in place: the lower half stays granted, the upper half is freed
    /// (and merges if its buddy is free). This is how a grant shrinks one order at a time.
    /// </summary>
    public Allocation Shrink(Allocation allocation)
    {
        if (allocation.Size.Order == 0) throw new ArgumentException("The smallest block cannot shrink.", nameof(allocation));
        var half = new Block((byte)(allocation.Size.Order - 1));
        Release(new Allocation(allocation.Offset + (1 << half.Order), half));
        return new Allocation(allocation.Offset, half);
    }

    /// <summary>
    /// Doubles a granted block in place when its buddy is free: how a grant that was cut grows
    /// back once the partner delivers again. Null when the buddy is taken.
    /// </summary>
    public Allocation? TryGrow(Allocation allocation)
    {
        int order = allocation.Size.Order;
        if (order >= Capacity.Order) return null;
        int buddy = allocation.Offset ^ (1 << order);
        if (!RemoveFree(order, buddy)) return null;
        return new Allocation(Math.Min(allocation.Offset, buddy), new Block((byte)(order + 1)));
    }

    private bool AddFree(int order, int offset)
    {
        if (!_free[order].Add(offset)) return false;
        _ordersFree |= 1u << order;
        _freeKbps += new Block((byte)order).Kbps;
        return true;
    }

    private bool RemoveFree(int order, int offset)
    {
        if (!_free[order].Remove(offset)) return false;
        if (_free[order].Count == 0) _ordersFree &= ~(1u << order);
        _freeKbps -= new Block((byte)order).Kbps;
        return true;
    }
}
