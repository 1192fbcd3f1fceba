using System.Buffers.Binary;
using System.Net;
using Quid.Crypto;

namespace Quid.Wire;

/// <summary>Reads big-endian fields from a span; running off the end is a typed <see cref="WireException"/>.</summary>
public ref struct WireReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _position;

    public readonly int Position => _position;
    public readonly int Remaining => _data.Length - _position;

    public ReadOnlySpan<byte> ReadBytes(int count)
    {
        if (count < 0 || count > Remaining) throw new WireException(WireError.Truncated, $"Needed {count} bytes at offset {_position}, only {Remaining} left.");
        var slice = _data.Slice(_position, count);
        _position += count;
        return slice;
    }

    public byte ReadByte() => ReadBytes(1)[0];
    public ushort ReadUInt16() => BinaryPrimitives.ReadUInt16BigEndian(ReadBytes(2));
    public uint ReadUInt32() => BinaryPrimitives.ReadUInt32BigEndian(ReadBytes(4));
    public ulong ReadUInt64() => BinaryPrimitives.ReadUInt64BigEndian(ReadBytes(8));
    public NodeId ReadNodeId() => new(ReadBytes(NodeId.Size));

    /// <summary>A u8 family (0 none, 4, 6), the address bytes and a u16 port.</summary>
    public IPEndPoint? ReadEndPoint()
    {
        byte family = ReadByte();
        IPAddress address = family switch
        {
            0 => IPAddress.None,
            4 => new IPAddress(ReadBytes(4)),
            6 => new IPAddress(ReadBytes(16)),
            _ => throw new WireException(WireError.BadField, $"Unknown address family {family}."),
        };
        ushort port = ReadUInt16();
        return family == 0 ? null : new IPEndPoint(address, port);
    }

    public readonly void ExpectEnd()
    {
        if (Remaining != 0) throw new WireException(WireError.BadField, $"{Remaining} unexpected trailing bytes.");
    }
}

/// <summary>Writes big-endian fields into a span the caller sized.</summary>
public ref struct WireWriter(Span<byte> buffer)
{
    private readonly Span<byte> _buffer = buffer;
    private int _position;

    public readonly int Position => _position;

    public Span<byte> Reserve(int count)
    {
        var slice = _buffer.Slice(_position, count);
        _position += count;
        return slice;
    }

    public void WriteBytes(ReadOnlySpan<byte> bytes) => bytes.CopyTo(Reserve(bytes.Length));
    public void WriteByte(byte value) => Reserve(1)[0] = value;
    public void WriteUInt16(ushort value) => BinaryPrimitives.WriteUInt16BigEndian(Reserve(2), value);
    public void WriteUInt32(uint value) => BinaryPrimitives.WriteUInt32BigEndian(Reserve(4), value);
    public void WriteUInt64(ulong value) => BinaryPrimitives.WriteUInt64BigEndian(Reserve(8), value);
    public void WriteNodeId(NodeId id) => id.WriteTo(Reserve(NodeId.Size));

    public void WriteEndPoint(IPEndPoint? endPoint)
    {
        if (endPoint is null)
        {
            WriteByte(0);
            WriteUInt16(0);
            return;
        }
        bool v6 = endPoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        WriteByte(v6 ? (byte)6 : (byte)4);
        endPoint.Address.TryWriteBytes(Reserve(v6 ? 16 : 4), out _);
        WriteUInt16((ushort)endPoint.Port);
    }
}
