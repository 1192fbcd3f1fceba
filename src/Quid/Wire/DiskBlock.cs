namespace Quid.Wire;

/// <summary>
/// A unit of disk: 1 MiB·2^order. Disk is granted in these, as bandwidth is in <see cref="Block"/>s,
/// so that what a node grants and what credits it issues for it come in the same few sizes.
/// </summary>
public readonly record struct DiskBlock(byte Order) : IComparable<DiskBlock>
{
    public const long BaseBytes = 1L << 20;
    /// <summary>2^30 MiB is a pebibyte: more than any single node offers.</summary>
    public const byte MaxOrder = 30;

    public long Bytes => BaseBytes << Order;
    public long MiB => 1L << Order;

    public static bool TryFromBytes(long bytes, out DiskBlock block)
    {
        block = default;
        if (bytes < BaseBytes || bytes % BaseBytes != 0) return false;
        long units = bytes / BaseBytes;
        if ((units & (units - 1)) != 0) return false;
        int order = System.Numerics.BitOperations.Log2((ulong)units);
        if (order > MaxOrder) return false;
        block = new DiskBlock((byte)order);
        return true;
    }

    public static DiskBlock FromBytes(long bytes) =>
        TryFromBytes(bytes, out var block) ? block : throw new ArgumentException($"{bytes} bytes is not a disk block: use 1MiB, 2MiB, 4MiB … (a power of two MiB).", nameof(bytes));

    /// <summary>The largest block within <paramref name="mib"/> MiB; null for less than one.</summary>
    public static DiskBlock? Floor(long mib) =>
        mib < 1 ? null : new DiskBlock((byte)Math.Min(MaxOrder, System.Numerics.BitOperations.Log2((ulong)mib)));

    public int CompareTo(DiskBlock other) => Order.CompareTo(other.Order);
    public static bool operator <(DiskBlock a, DiskBlock b) => a.Order < b.Order;
    public static bool operator >(DiskBlock a, DiskBlock b) => a.Order > b.Order;
    public static bool operator <=(DiskBlock a, DiskBlock b) => a.Order <= b.Order;
    public static bool operator >=(DiskBlock a, DiskBlock b) => a.Order >= b.Order;

    public override string ToString() => MiB >= 1024 ? $"{MiB / 1024} GiB" : $"{MiB} MiB";

    /// <summary>Wire form of "a disk block or nothing": the order, or 0xFF for none.</summary>
    public static DiskBlock? Decode(byte value) => value switch
    {
        Block.NoneByte => null,
        <= MaxOrder => new DiskBlock(value),
        _ => throw new WireException(WireError.BadField, $"Disk block order {value} is out of range."),
    };

    public static byte Encode(DiskBlock? block) => block?.Order ?? Block.NoneByte;
}
