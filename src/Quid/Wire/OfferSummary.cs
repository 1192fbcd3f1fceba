namespace Quid.Wire;

/// <summary>
/// What an ultrapeer would answer to a query that ends at it (PROTOCOL §5.7): for each block
/// order, the smallest request among the offers it would name whose largest free block is of
/// that order. A query matches an offer whose free block is at least what it wants and whose
/// request the searcher can grant, so the table answers "would this query find anything here"
/// exactly, as Gnutella's query routing tables do for keywords, in 21 bytes.
/// </summary>
public sealed class OfferSummary : IEquatable<OfferSummary>
{
    public const int Size = Block.MaxOrder + 1;
    /// <summary>No offer here has a largest free block of this order.</summary>
    public const byte Nothing = 0xFF;
    /// <summary>Some offer with a largest free block of this order asks nothing back: it matches any searcher.</summary>
    public const byte NoRequest = 0xFE;

    private readonly byte[] _least;

    private OfferSummary(byte[] least) => _least = least;

    /// <summary>A summary of no offers.</summary>
    public static OfferSummary Empty { get; } = new(Enumerable.Repeat(Nothing, Size).ToArray());

    /// <summary>The summary of the offers <paramref name="table"/> was filled with by <see cref="Include"/>.</summary>
    public static OfferSummary From(ReadOnlySpan<byte> table) =>
        table.Length == Size ? new(table.ToArray()) : throw new ArgumentException($"A summary is {Size} entries.", nameof(table));

    /// <summary>A table to fill: every entry <see cref="Nothing"/>.</summary>
    public static void Clear(Span<byte> table) => table.Fill(Nothing);

    /// <summary>Counts an offer into a table: its largest free block's entry keeps the smaller request. True when the entry changed.</summary>
    public static bool Include(Span<byte> table, Block largestFree, Block? request)
    {
        ref byte entry = ref table[largestFree.Order];
        byte value = request is { } r ? r.Order : NoRequest;
        if (Rank(value) >= Rank(entry)) return false;
        entry = value;
        return true;
    }

    /// <summary>Whether some offer summarised here has a free block of at least <paramref name="wanted"/> and a request within <paramref name="canGrant"/>.</summary>
    public bool Matches(Block wanted, Block? canGrant)
    {
        for (int order = wanted.Order; order < Size; order++)
        {
            byte least = _least[order];
            if (least == NoRequest || (least != Nothing && canGrant is { } can && least <= can.Order)) return true;
        }
        return false;
    }

    /// <summary>Whether this is the summary of the offers in <paramref name="table"/>: checked before sending one again.</summary>
    public bool Is(ReadOnlySpan<byte> table) => table.SequenceEqual(_least);

    public void WriteTo(Span<byte> destination) => _least.CopyTo(destination);

    /// <summary>The entries, one per block order.</summary>
    public ReadOnlySpan<byte> Table => _least;

    public static OfferSummary Decode(ReadOnlySpan<byte> encoded)
    {
        if (encoded.Length != Size) throw new WireException(WireError.Truncated, $"An offer summary is {Size} bytes.");
        foreach (byte entry in encoded)
            if (entry is > Block.MaxOrder and not Nothing and not NoRequest)
                throw new WireException(WireError.BadField, $"Offer summary entry {entry} is neither a block order, {NoRequest} nor {Nothing}.");
        return new(encoded.ToArray());
    }

    public bool Equals(OfferSummary? other) => other is not null && Is(other._least);
    public override bool Equals(object? obj) => Equals(obj as OfferSummary);
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.AddBytes(_least);
        return hash.ToHashCode();
    }

    public override string ToString() => Convert.ToHexString(_least);

    /// <summary>Smaller is better: asking nothing back beats any request, and no offer ranks last.</summary>
    private static int Rank(byte entry) => entry == NoRequest ? -1 : entry;
}
