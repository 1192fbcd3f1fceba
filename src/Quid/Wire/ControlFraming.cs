namespace Quid.Wire;

/// <summary>
/// Splits a control message over Control cells and joins it again. Each cell body holds
/// u8 flags (bit 0: more fragments follow), u16 fragment length, the fragment, zero padding.
/// </summary>
public static class ControlFraming
{
    public const int FragmentHeaderSize = 3;
    public const int MaxFragment = Cell.BodySize - FragmentHeaderSize;
    private const byte MoreFragments = 1;

    public static int CellCount(int payloadLength) => Math.Max(1, (payloadLength + MaxFragment - 1) / MaxFragment);

    /// <summary>Writes whole cells (header included) into <paramref name="cells"/>, which holds CellCount cells.</summary>
    public static void WriteCells(ReadOnlySpan<byte> payload, Span<byte> cells)
    {
        int count = CellCount(payload.Length);
        cells[..(count * Cell.Size)].Clear();
        for (int i = 0; i < count; i++)
        {
            var cell = cells.Slice(i * Cell.Size, Cell.Size);
            Cell.WriteHeader(cell, 0, CellCommand.Control);
            var body = Cell.Body(cell);
            var fragment = payload.Slice(i * MaxFragment, Math.Min(MaxFragment, payload.Length - i * MaxFragment));
            body[0] = i < count - 1 ? MoreFragments : (byte)0;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(body[1..], (ushort)fragment.Length);
            fragment.CopyTo(body[FragmentHeaderSize..]);
        }
    }
}

/// <summary>Joins control fragments from one link, refusing any message over <see cref="ControlMessage.MaxSize"/>.</summary>
public sealed class ControlReassembler
{
    private byte[]? _buffer;
    private int _length;

    /// <summary>Adds one Control cell body; returns the whole message when its last fragment arrives.</summary>
    public byte[]? Add(ReadOnlySpan<byte> body)
    {
        var reader = new WireReader(body);
        byte flags = reader.ReadByte();
        if ((flags & ~1) != 0) throw new WireException(WireError.BadField, $"Unknown control fragment flags {flags}.");
        int length = reader.ReadUInt16();
        if (length > ControlFraming.MaxFragment) throw new WireException(WireError.Oversized, $"Control fragment of {length} bytes exceeds a cell.");
        var fragment = reader.ReadBytes(length);
        if (_length + length > ControlMessage.MaxSize)
        {
            _buffer = null;
            _length = 0;
            throw new WireException(WireError.Oversized, $"Control message exceeds {ControlMessage.MaxSize} bytes.");
        }
        bool more = (flags & 1) != 0;
        if (!more && _length == 0) return fragment.ToArray();

        _buffer ??= new byte[ControlFraming.MaxFragment * 2];
        if (_buffer.Length < _length + length) Array.Resize(ref _buffer, Math.Min(ControlMessage.MaxSize, Math.Max(_buffer.Length * 2, _length + length)));
        fragment.CopyTo(_buffer.AsSpan(_length));
        _length += length;
        if (more) return null;
        var message = _buffer.AsSpan(0, _length).ToArray();
        _buffer = null;
        _length = 0;
        return message;
    }
}
