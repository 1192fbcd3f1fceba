using System.Buffers.Binary;
using Quid.Crypto;

namespace Quid.Wire;

/// <summary>Why a hop could not extend a circuit; the ExtendFailed message's byte.</summary>
public enum ExtendFailure : byte
{
    NotAPartner = 1,
    Refused = 2,
    Timeout = 3,
    Malformed = 4,
    /// <summary>What we already carry to the next hop fills its grant to us: try another.</summary>
    Full = 5,
}

/// <summary>
/// A Create cell's body: u16 handshake type (1: ntor), the ntor request, zero padding. Refusing
/// one costs no exception, since a neighbour may send a Create in every cell.
/// </summary>
public readonly record struct CreateBody(byte[] NtorRequest)
{
    public const ushort NtorHandshake = 1;
    public const int Size = 2 + Ntor.RequestSize;

    /// <summary>Fills a whole cell body: the request, then zeros.</summary>
    public void Write(Span<byte> body)
    {
        if (NtorRequest.Length != Ntor.RequestSize) throw new ArgumentException($"An ntor request is {Ntor.RequestSize} bytes.");
        var writer = new WireWriter(body);
        writer.WriteUInt16(NtorHandshake);
        writer.WriteBytes(NtorRequest);
        body[Size..].Clear();
    }

    /// <summary>False for a body too short or naming another handshake; the padding is not read.</summary>
    public static bool TryRead(ReadOnlySpan<byte> body, out CreateBody create)
    {
        create = default;
        if (body.Length < Size || BinaryPrimitives.ReadUInt16BigEndian(body) != NtorHandshake) return false;
        create = new CreateBody(body.Slice(2, Ntor.RequestSize).ToArray());
        return true;
    }
}

/// <summary>A Created cell's body: the ntor reply, zero padding.</summary>
public readonly record struct CreatedBody(byte[] NtorReply)
{
    public const int Size = Ntor.ReplySize;

    /// <summary>Fills a whole cell body: the reply, then zeros.</summary>
    public void Write(Span<byte> body)
    {
        if (NtorReply.Length != Size) throw new ArgumentException($"An ntor reply is {Size} bytes.");
        NtorReply.CopyTo(body);
        body[Size..].Clear();
    }

    /// <summary>The padding is not read.</summary>
    public static CreatedBody Read(ReadOnlySpan<byte> body) => new(new WireReader(body).ReadBytes(Size).ToArray());
}

/// <summary>An Extend relay message's data: the node to extend to, the ntor request for it, then a flags byte (bit 0: even if full).</summary>
public readonly record struct ExtendBody(NodeId Next, byte[] NtorRequest, bool EvenIfFull = false)
{
    public const int Size = NodeId.Size + Ntor.RequestSize + 1;
    private const byte EvenIfFullFlag = 1;

    public int Write(Span<byte> data)
    {
        if (NtorRequest.Length != Ntor.RequestSize) throw new ArgumentException($"An ntor request is {Ntor.RequestSize} bytes.");
        var writer = new WireWriter(data);
        writer.WriteNodeId(Next);
        writer.WriteBytes(NtorRequest);
        writer.WriteByte(EvenIfFull ? EvenIfFullFlag : (byte)0);
        return Size;
    }

    public static ExtendBody Read(ReadOnlySpan<byte> data)
    {
        var reader = new WireReader(data);
        var next = reader.ReadNodeId();
        var request = reader.ReadBytes(Ntor.RequestSize).ToArray();
        byte flags = reader.ReadByte();
        if ((flags & ~EvenIfFullFlag) != 0) throw new WireException(WireError.BadField, $"Unknown Extend flags {flags:x2}.");
        reader.ExpectEnd();
        return new ExtendBody(next, request, flags == EvenIfFullFlag);
    }
}

/// <summary>An Extended relay message's data: the new hop's ntor reply, exactly.</summary>
public readonly record struct ExtendedBody(byte[] NtorReply)
{
    public const int Size = Ntor.ReplySize;

    public int Write(Span<byte> data)
    {
        if (NtorReply.Length != Size) throw new ArgumentException($"An ntor reply is {Size} bytes.");
        NtorReply.CopyTo(data);
        return Size;
    }

    public static ExtendedBody Read(ReadOnlySpan<byte> data)
    {
        var reader = new WireReader(data);
        var reply = reader.ReadBytes(Size).ToArray();
        reader.ExpectEnd();
        return new ExtendedBody(reply);
    }
}

/// <summary>An ExtendFailed relay message's data: u8 reason, one the protocol names.</summary>
public readonly record struct ExtendFailedBody(ExtendFailure Reason)
{
    public const int Size = 1;

    public int Write(Span<byte> data)
    {
        if (!Enum.IsDefined(Reason)) throw new ArgumentException($"{(byte)Reason} is not an extend failure.");
        data[0] = (byte)Reason;
        return Size;
    }

    public static ExtendFailedBody Read(ReadOnlySpan<byte> data)
    {
        var reader = new WireReader(data);
        var reason = (ExtendFailure)reader.ReadByte();
        reader.ExpectEnd();
        if (!Enum.IsDefined(reason)) throw new WireException(WireError.BadField, $"Unknown extend failure {(byte)reason}.");
        return new ExtendFailedBody(reason);
    }
}
