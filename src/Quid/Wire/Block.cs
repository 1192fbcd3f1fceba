namespace Quid.Wire;

/// <summary>
/// A unit of bandwidth: 16·2^order kbps. Offers, requests and grants are all blocks, so every
/// amount anyone advertises is one that others can search for.
/// </summary>
public readonly record struct Block(byte Order) : IComparable<Block>
{
    public const int BaseKbps = 16;
    /// <summary>16·2^20 kbps is about 16 Gbit/s: more than any single node offers.</summary>
    public const byte MaxOrder = 20;

    public long Kbps => (long)BaseKbps << Order;
    /// <summary>The block's rate in bytes per second (1 kbps = 1000 bit/s).</summary>
    public long BytesPerSecond => Kbps * 1000 / 8;

    public static bool TryFromKbps(long kbps, out Block block)
    {
        block = default;
        if (kbps < BaseKbps || kbps % BaseKbps != 0) return false;
        long units = kbps / BaseKbps;
        if ((units & (units - 1)) != 0) return false;
        int order = System.Numerics.BitOperations.Log2((ulong)units);
        if (order > MaxOrder) return false;
        block = new Block((byte)order);
        return true;
    }

    public static Block FromKbps(long kbps) =>
        TryFromKbps(kbps, out var block) ? block : throw new ArgumentException($"{kbps} kbps is not a block: use 16, 32, 64 … (16·2^k) kbps.", nameof(kbps));

    /// <summary>The largest block within <paramref name="kbps"/>, and the smallest block for less.</summary>
    public static Block Floor(double kbps) =>
        new((byte)Math.Clamp((int)Math.Floor(Math.Log2(Math.Max(kbps, BaseKbps) / BaseKbps)), 0, MaxOrder));

    /// <summary>The block of twice the rate, or this one if it is the largest.</summary>
    public Block Larger => new((byte)Math.Min(MaxOrder, Order + 1));

    public static Block Min(Block a, Block b) => a <= b ? a : b;

    public int CompareTo(Block other) => Order.CompareTo(other.Order);
    public static bool operator <(Block a, Block b) => a.Order < b.Order;
    public static bool operator >(Block a, Block b) => a.Order > b.Order;
    public static bool operator <=(Block a, Block b) => a.Order <= b.Order;
    public static bool operator >=(Block a, Block b) => a.Order >= b.Order;

    public override string ToString() => $"{Kbps} kbps";

    /// <summary>Wire form of "a block or nothing": the order, or 0xFF for none.</summary>
    public const byte NoneByte = 0xFF;

    public static Block? Decode(byte value) => value switch
    {
        NoneByte => null,
        <= MaxOrder => new Block(value),
        _ => throw new WireException(WireError.BadField, $"Block order {value} is out of range."),
    };

    public static byte Encode(Block? block) => block?.Order ?? NoneByte;
}
