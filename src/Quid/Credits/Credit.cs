using Quid.Crypto;
using Quid.Wire;

namespace Quid.Credits;

/// <summary>
/// A credit held: a bearer token redeemable once, only at <paramref name="Issuer"/>, for
/// 2^<paramref name="Order"/> MiB·days of what it grants (PROTOCOL §10). Whoever holds the
/// input and output can spend it; the issuer never saw either before it is spent.
/// </summary>
public sealed record Credit(NodeId Issuer, ulong Epoch, byte Order, byte[] Input, byte[] Output)
{
    public long Value => 1L << Order;
    public DateTimeOffset Expires => CreditEpoch.Expires(Epoch);
    public CreditToken Token => new(Order, Input, Output);

    /// <summary>The denominations, largest first, that make <paramref name="amount"/>: one per bit set.</summary>
    public static List<byte> Denominations(long amount)
    {
        if (amount < 0 || amount >= 1L << (CreditCodec.MaxOrder + 1)) throw new ArgumentOutOfRangeException(nameof(amount), amount, $"An amount of credits is 0 to {(1L << (CreditCodec.MaxOrder + 1)) - 1} MiB·days.");
        var orders = new List<byte>();
        for (int order = CreditCodec.MaxOrder; order >= 0; order--)
            if ((amount & (1L << order)) != 0) orders.Add((byte)order);
        return orders;
    }

    public static long Total(IEnumerable<byte> orders) => orders.Sum(o => 1L << o);
}
