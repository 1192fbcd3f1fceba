using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Quid.Wire;

/// <summary>
/// The data of an Echo, which the EchoReply must return unchanged: u64 probe, u64 sequence,
/// random bytes, <see cref="RelayCell.MaxData"/> in all. Only the prober reads it; the exit
/// returns it as it came. Refusing a reply costs no exception, since a partner may send one in
/// every cell.
/// </summary>
public readonly record struct EchoProbe(ulong Probe, ulong Sequence)
{
    public const int Size = RelayCell.MaxData;

    /// <summary>Writes the marks and fills the rest with random bytes, so the partner cannot answer without the payload.</summary>
    public void Write(Span<byte> data)
    {
        BinaryPrimitives.WriteUInt64BigEndian(data, Probe);
        BinaryPrimitives.WriteUInt64BigEndian(data[8..], Sequence);
        RandomNumberGenerator.Fill(data[16..Size]);
    }

    /// <summary>False for data of any other length.</summary>
    public static bool TryRead(ReadOnlySpan<byte> data, out EchoProbe echo)
    {
        echo = default;
        if (data.Length != Size) return false;
        echo = new EchoProbe(BinaryPrimitives.ReadUInt64BigEndian(data), BinaryPrimitives.ReadUInt64BigEndian(data[8..]));
        return true;
    }
}
