namespace Quid.Wire;

/// <summary>
/// A unit of compute: 2^order Gfuel a day, where a Gfuel is 2^30 units of Wasmtime's fuel (about
/// as many WebAssembly instructions: a second or two of one core). CPU is granted in these, as
/// disk is in <see cref="DiskBlock"/>s, and paid out as credits at <see cref="FuelPerCredit"/>.
/// </summary>
public readonly record struct CpuBlock(byte Order) : IComparable<CpuBlock>
{
    public const long FuelPerGfuel = 1L << 30;
    /// <summary>What one credit buys of CPU (PROTOCOL §10.1): a credit is a MiB·day of disk or this much fuel, about a fifteenth of a core-second.</summary>
    public const long FuelPerCredit = 1L << 26;
    /// <summary>2^30 Gfuel a day is some ten thousand cores: more than any single node offers.</summary>
    public const byte MaxOrder = 30;

    public long Gfuel => 1L << Order;
    /// <summary>The fuel granted a day.</summary>
    public long Fuel => FuelPerGfuel << Order;
    /// <summary>What the grant is worth a day, in credits.</summary>
    public long CreditsPerDay => Fuel / FuelPerCredit;

    /// <summary>The largest block within <paramref name="gfuel"/> Gfuel a day; null for less than one.</summary>
    public static CpuBlock? Floor(long gfuel) =>
        gfuel < 1 ? null : new CpuBlock((byte)Math.Min(MaxOrder, System.Numerics.BitOperations.Log2((ulong)gfuel)));

    public int CompareTo(CpuBlock other) => Order.CompareTo(other.Order);
    public static bool operator <(CpuBlock a, CpuBlock b) => a.Order < b.Order;
    public static bool operator >(CpuBlock a, CpuBlock b) => a.Order > b.Order;
    public static bool operator <=(CpuBlock a, CpuBlock b) => a.Order <= b.Order;
    public static bool operator >=(CpuBlock a, CpuBlock b) => a.Order >= b.Order;

    public override string ToString() => Gfuel >= 1024 ? $"{Gfuel / 1024} Tfuel/day" : $"{Gfuel} Gfuel/day";

    /// <summary>Wire form of "a CPU block or nothing": the order, or 0xFF for none.</summary>
    public static CpuBlock? Decode(byte value) => value switch
    {
        Block.NoneByte => null,
        <= MaxOrder => new CpuBlock(value),
        _ => throw new WireException(WireError.BadField, $"CPU block order {value} is out of range."),
    };

    public static byte Encode(CpuBlock? block) => block?.Order ?? Block.NoneByte;
}
