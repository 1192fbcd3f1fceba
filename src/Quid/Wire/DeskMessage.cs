using System.Buffers.Binary;
using System.Text;

namespace Quid.Wire;

/// <summary>
/// What a client and an issuer say on a desk stream: a stream the client's circuit ends at the
/// issuer itself (PROTOCOL §10.4), so the issuer serves it without learning who it is.
/// </summary>
public abstract record DeskMessage
{
    /// <summary>The largest frame body: 64 credits spent and 64 asked fit with room to spare.</summary>
    public const int MaxSize = 16 * 1024;
    /// <summary>The longest reason a refusal carries, in UTF-8 bytes.</summary>
    public const int MaxTextSize = 512;
    public abstract DeskType Type { get; }
}

public enum DeskType : byte
{
    Exchange = 1,
    Exchanged = 2,
    Refused = 3,
    Put = 4,
    Ready = 5,
    Stored = 6,
    Get = 7,
    Data = 8,
    Audit = 9,
    Audited = 10,
    Renew = 11,
    Remove = 12,
    Deploy = 13,
    Program = 14,
    Topup = 15,
    Query = 16,
    Stop = 17,
}

/// <summary>Where a hosted program is in its life (PROTOCOL §11.2).</summary>
public enum ProgramState : byte
{
    /// <summary>It has fuel, and runs when a message or its timer comes.</summary>
    Running = 1,
    /// <summary>Out of fuel: kept, state and all, until its grace ends, for anyone holding its id to top up.</summary>
    Paused = 2,
    /// <summary>Stopped by its owner, or its grace ran out: nothing of it is left.</summary>
    Deleted = 3,
}

/// <summary>
/// Spend <paramref name="Spend"/> and get, blinded, <paramref name="Mint"/> of the same total and
/// epoch: how a credit changes hands (the taker swaps it for its own) and how change is made.
/// </summary>
public sealed record DeskExchange(ulong Epoch, IReadOnlyList<CreditToken> Spend, IReadOnlyList<BlindedCredit> Mint) : DeskMessage
{
    public override DeskType Type => DeskType.Exchange;
}

public sealed record DeskExchanged(CreditEvaluation Evaluation) : DeskMessage
{
    public override DeskType Type => DeskType.Exchanged;
}

public sealed record DeskRefused(CreditRefusal Reason, string Text) : DeskMessage
{
    public override DeskType Type => DeskType.Refused;
}

/// <summary>
/// Store <paramref name="Size"/> bytes under <paramref name="Id"/> for <paramref name="Days"/>,
/// paid with the host's own credits (PROTOCOL §10.7). <paramref name="OwnerHash"/> is SHA-256 of
/// the secret that removes it. The host answers Ready, then reads exactly Size bytes, then Stored.
/// </summary>
public sealed record DeskPut(byte[] Id, long Size, ushort Days, byte[] OwnerHash, IReadOnlyList<EpochCredit> Payment) : DeskMessage
{
    public override DeskType Type => DeskType.Put;
}

public sealed record DeskReady : DeskMessage
{
    public override DeskType Type => DeskType.Ready;
}

/// <summary>The object is stored (or renewed) and paid until <paramref name="PaidUntil"/>, Unix seconds; 0 after a Remove.</summary>
public sealed record DeskStored(ulong PaidUntil) : DeskMessage
{
    public override DeskType Type => DeskType.Stored;
}

public sealed record DeskGet(byte[] Id) : DeskMessage
{
    public override DeskType Type => DeskType.Get;
}

/// <summary>The object follows: exactly <paramref name="Size"/> raw bytes after this frame.</summary>
public sealed record DeskData(long Size) : DeskMessage
{
    public override DeskType Type => DeskType.Data;
}

/// <summary>Prove you hold the object: SHA-256 of <paramref name="Nonce"/> and its bytes.</summary>
public sealed record DeskAudit(byte[] Id, byte[] Nonce) : DeskMessage
{
    public override DeskType Type => DeskType.Audit;
}

/// <summary>The audit's digest, and until when the object is paid (Unix seconds), so its owner is warned in time.</summary>
public sealed record DeskAudited(byte[] Digest, ulong PaidUntil) : DeskMessage
{
    public override DeskType Type => DeskType.Audited;
}

public sealed record DeskRenew(byte[] Id, ushort Days, IReadOnlyList<EpochCredit> Payment) : DeskMessage
{
    public override DeskType Type => DeskType.Renew;
}

/// <summary>Delete the object: <paramref name="OwnerSecret"/> hashes to what its Put named.</summary>
public sealed record DeskRemove(byte[] Id, byte[] OwnerSecret) : DeskMessage
{
    public override DeskType Type => DeskType.Remove;
}

/// <summary>
/// Run a program (PROTOCOL §11.2): a WebAssembly module of <paramref name="ModuleSize"/> bytes,
/// paid with the host's credits, each worth <c>CpuBlock.FuelPerCredit</c> of fuel. It takes
/// <paramref name="Postage"/> credits with each message it is sent (0: free). The host answers
/// Ready, reads the module's bytes, then answers Program (or Refused).
/// </summary>
public sealed record DeskDeploy(uint ModuleSize, uint Postage, byte[] OwnerHash, IReadOnlyList<EpochCredit> Payment) : DeskMessage
{
    public override DeskType Type => DeskType.Deploy;
}

/// <summary>
/// A program as its host sees it: its id, state, fuel left, memory and store, when it will be
/// deleted if not topped up (Unix seconds; 0 while it runs), the public key of its session
/// address, and whether its fuel is low (the warning to its owner).
/// </summary>
public sealed record DeskProgram(byte[] Id, ProgramState State, ulong Fuel, ulong MemoryBytes, ulong StoredBytes, ulong DeleteAt, byte[] AddressKey, bool Low) : DeskMessage
{
    public override DeskType Type => DeskType.Program;
}

/// <summary>Adds fuel to a program, paid with the host's credits: anyone holding its id may.</summary>
public sealed record DeskTopup(byte[] Id, IReadOnlyList<EpochCredit> Payment) : DeskMessage
{
    public override DeskType Type => DeskType.Topup;
}

/// <summary>How is the program of that id?</summary>
public sealed record DeskQuery(byte[] Id) : DeskMessage
{
    public override DeskType Type => DeskType.Query;
}

/// <summary>Delete the program now: <paramref name="OwnerSecret"/> hashes to what its Deploy named.</summary>
public sealed record DeskStop(byte[] Id, byte[] OwnerSecret) : DeskMessage
{
    public override DeskType Type => DeskType.Stop;
}

/// <summary>Desk frames: a 2-byte big-endian length, then the type byte and the body.</summary>
public static class DeskCodec
{
    public const int LengthSize = 2;
    /// <summary>An object's id: 16 random bytes its owner chose, which name it to anyone who holds them.</summary>
    public const int ObjectSize = 16;
    public const int HashSize = 32;
    /// <summary>The largest object one Put stores: 64 GiB.</summary>
    public const long MaxObjectSize = 64L << 30;
    /// <summary>The longest a Put or Renew pays for at once: a year.</summary>
    public const ushort MaxDays = 366;
    /// <summary>The largest module a Deploy may announce; a host takes at most its own limit, less.</summary>
    public const uint MaxModuleSize = 16 << 20;
    /// <summary>The public key of a program's session address.</summary>
    public const int AddressKeySize = 32;

    private static byte[] Checked(byte[] value, int size) =>
        value.Length == size ? value : throw new ArgumentException($"A field of {value.Length} bytes where {size} belong.");

    public static byte[] Encode(DeskMessage message)
    {
        byte[] text = message is DeskRefused r ? Truncated(r.Text) : [];
        int length = 1 + message switch
        {
            DeskExchange m => 8 + CreditCodec.TokensLength(m.Spend) + CreditCodec.BlindedLength(m.Mint),
            DeskExchanged m => CreditCodec.EvaluationLength(m.Evaluation),
            DeskRefused => 1 + 2 + text.Length,
            DeskPut m => ObjectSize + 8 + 2 + HashSize + CreditCodec.PaymentLength(m.Payment),
            DeskReady => 0,
            DeskStored => 8,
            DeskGet => ObjectSize,
            DeskData => 8,
            DeskAudit => ObjectSize + HashSize,
            DeskAudited => HashSize + 8,
            DeskRenew m => ObjectSize + 2 + CreditCodec.PaymentLength(m.Payment),
            DeskRemove => ObjectSize + HashSize,
            DeskDeploy m => 4 + 4 + HashSize + CreditCodec.PaymentLength(m.Payment),
            DeskProgram => ObjectSize + 1 + 8 + 8 + 8 + 8 + AddressKeySize + 1,
            DeskTopup m => ObjectSize + CreditCodec.PaymentLength(m.Payment),
            DeskQuery => ObjectSize,
            DeskStop => ObjectSize + HashSize,
            _ => throw new ArgumentException($"No encoding for {message.GetType().Name}.", nameof(message)),
        };
        if (length > DeskMessage.MaxSize) throw new ArgumentException($"A desk message of {length} bytes exceeds {DeskMessage.MaxSize}.", nameof(message));
        var frame = new byte[LengthSize + length];
        BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)length);
        var writer = new WireWriter(frame.AsSpan(LengthSize));
        writer.WriteByte((byte)message.Type);
        switch (message)
        {
            case DeskExchange m:
                writer.WriteUInt64(m.Epoch);
                CreditCodec.WriteTokens(ref writer, m.Spend);
                CreditCodec.WriteBlinded(ref writer, m.Mint);
                break;
            case DeskExchanged m:
                CreditCodec.WriteEvaluation(ref writer, m.Evaluation);
                break;
            case DeskRefused m:
                writer.WriteByte((byte)m.Reason);
                writer.WriteUInt16((ushort)text.Length);
                writer.WriteBytes(text);
                break;
            case DeskPut m:
                writer.WriteBytes(Checked(m.Id, ObjectSize));
                writer.WriteUInt64((ulong)(m.Size is >= 0 and <= MaxObjectSize ? m.Size : throw new ArgumentException($"An object is 0 to {MaxObjectSize} bytes.", nameof(message))));
                writer.WriteUInt16(m.Days is >= 1 and <= MaxDays ? m.Days : throw new ArgumentException($"An object is kept 1 to {MaxDays} days.", nameof(message)));
                writer.WriteBytes(Checked(m.OwnerHash, HashSize));
                CreditCodec.WritePayment(ref writer, m.Payment);
                break;
            case DeskStored m:
                writer.WriteUInt64(m.PaidUntil);
                break;
            case DeskGet m:
                writer.WriteBytes(Checked(m.Id, ObjectSize));
                break;
            case DeskData m:
                writer.WriteUInt64((ulong)m.Size);
                break;
            case DeskAudit m:
                writer.WriteBytes(Checked(m.Id, ObjectSize));
                writer.WriteBytes(Checked(m.Nonce, HashSize));
                break;
            case DeskAudited m:
                writer.WriteBytes(Checked(m.Digest, HashSize));
                writer.WriteUInt64(m.PaidUntil);
                break;
            case DeskRenew m:
                writer.WriteBytes(Checked(m.Id, ObjectSize));
                writer.WriteUInt16(m.Days is >= 1 and <= MaxDays ? m.Days : throw new ArgumentException($"An object is kept 1 to {MaxDays} days.", nameof(message)));
                CreditCodec.WritePayment(ref writer, m.Payment);
                break;
            case DeskRemove m:
                writer.WriteBytes(Checked(m.Id, ObjectSize));
                writer.WriteBytes(Checked(m.OwnerSecret, HashSize));
                break;
            case DeskDeploy m:
                writer.WriteUInt32(m.ModuleSize is >= 1 and <= MaxModuleSize ? m.ModuleSize : throw new ArgumentException($"A module is 1 to {MaxModuleSize} bytes.", nameof(message)));
                writer.WriteUInt32(m.Postage);
                writer.WriteBytes(Checked(m.OwnerHash, HashSize));
                CreditCodec.WritePayment(ref writer, m.Payment);
                break;
            case DeskProgram m:
                writer.WriteBytes(Checked(m.Id, ObjectSize));
                writer.WriteByte(Enum.IsDefined(m.State) ? (byte)m.State : throw new ArgumentException($"No program state {m.State}.", nameof(message)));
                writer.WriteUInt64(m.Fuel);
                writer.WriteUInt64(m.MemoryBytes);
                writer.WriteUInt64(m.StoredBytes);
                writer.WriteUInt64(m.DeleteAt);
                writer.WriteBytes(Checked(m.AddressKey, AddressKeySize));
                writer.WriteByte(m.Low ? (byte)1 : (byte)0);
                break;
            case DeskTopup m:
                writer.WriteBytes(Checked(m.Id, ObjectSize));
                CreditCodec.WritePayment(ref writer, m.Payment);
                break;
            case DeskQuery m:
                writer.WriteBytes(Checked(m.Id, ObjectSize));
                break;
            case DeskStop m:
                writer.WriteBytes(Checked(m.Id, ObjectSize));
                writer.WriteBytes(Checked(m.OwnerSecret, HashSize));
                break;
        }
        return frame;
    }

    /// <summary>The text's UTF-8 within <see cref="DeskMessage.MaxTextSize"/>, cut between characters so the far side can decode it.</summary>
    private static byte[] Truncated(string text)
    {
        if (text.Length > DeskMessage.MaxTextSize) text = text[..DeskMessage.MaxTextSize];
        while (Encoding.UTF8.GetByteCount(text) > DeskMessage.MaxTextSize) text = text[..(text.Length - 1)];
        if (text.Length > 0 && char.IsHighSurrogate(text[^1])) text = text[..^1];
        return Encoding.UTF8.GetBytes(text);
    }

    /// <summary>The body length a frame header announces; refuses one over <see cref="DeskMessage.MaxSize"/> before it is read.</summary>
    public static int ReadLength(ReadOnlySpan<byte> header)
    {
        if (header.Length < LengthSize) throw new WireException(WireError.Truncated, "A desk frame header is 2 bytes.");
        int length = BinaryPrimitives.ReadUInt16BigEndian(header);
        if (length == 0) throw new WireException(WireError.Truncated, "An empty desk frame.");
        return length <= DeskMessage.MaxSize ? length : throw new WireException(WireError.Oversized, $"A desk frame of {length} bytes exceeds {DeskMessage.MaxSize}.");
    }

    /// <summary>Decodes a frame's body (without its length).</summary>
    public static DeskMessage Decode(ReadOnlySpan<byte> body)
    {
        if (body.Length > DeskMessage.MaxSize) throw new WireException(WireError.Oversized, $"A desk frame of {body.Length} bytes exceeds {DeskMessage.MaxSize}.");
        var reader = new WireReader(body);
        var type = (DeskType)reader.ReadByte();
        DeskMessage message = type switch
        {
            DeskType.Exchange => new DeskExchange(reader.ReadUInt64(), CreditCodec.ReadTokens(ref reader), CreditCodec.ReadBlinded(ref reader)),
            DeskType.Exchanged => new DeskExchanged(CreditCodec.ReadEvaluation(ref reader)),
            DeskType.Refused => ReadRefused(ref reader),
            DeskType.Put => new DeskPut(reader.ReadBytes(ObjectSize).ToArray(), ReadSize(ref reader), ReadDays(ref reader), reader.ReadBytes(HashSize).ToArray(), CreditCodec.ReadPayment(ref reader)),
            DeskType.Ready => new DeskReady(),
            DeskType.Stored => new DeskStored(reader.ReadUInt64()),
            DeskType.Get => new DeskGet(reader.ReadBytes(ObjectSize).ToArray()),
            DeskType.Data => new DeskData(ReadSize(ref reader)),
            DeskType.Audit => new DeskAudit(reader.ReadBytes(ObjectSize).ToArray(), reader.ReadBytes(HashSize).ToArray()),
            DeskType.Audited => new DeskAudited(reader.ReadBytes(HashSize).ToArray(), reader.ReadUInt64()),
            DeskType.Renew => new DeskRenew(reader.ReadBytes(ObjectSize).ToArray(), ReadDays(ref reader), CreditCodec.ReadPayment(ref reader)),
            DeskType.Remove => new DeskRemove(reader.ReadBytes(ObjectSize).ToArray(), reader.ReadBytes(HashSize).ToArray()),
            DeskType.Deploy => new DeskDeploy(ReadModuleSize(ref reader), reader.ReadUInt32(), reader.ReadBytes(HashSize).ToArray(), CreditCodec.ReadPayment(ref reader)),
            DeskType.Program => ReadProgram(ref reader),
            DeskType.Topup => new DeskTopup(reader.ReadBytes(ObjectSize).ToArray(), CreditCodec.ReadPayment(ref reader)),
            DeskType.Query => new DeskQuery(reader.ReadBytes(ObjectSize).ToArray()),
            DeskType.Stop => new DeskStop(reader.ReadBytes(ObjectSize).ToArray(), reader.ReadBytes(HashSize).ToArray()),
            _ => throw new WireException(WireError.UnknownMessageType, $"Unknown desk message type {(byte)type}."),
        };
        reader.ExpectEnd();
        return message;
    }

    private static long ReadSize(ref WireReader reader)
    {
        ulong size = reader.ReadUInt64();
        return size <= MaxObjectSize ? (long)size : throw new WireException(WireError.Oversized, $"An object of {size} bytes is over {MaxObjectSize}.");
    }

    private static uint ReadModuleSize(ref WireReader reader)
    {
        uint size = reader.ReadUInt32();
        return size is >= 1 and <= MaxModuleSize ? size : throw new WireException(WireError.Oversized, $"A module of {size} bytes is outside 1..{MaxModuleSize}.");
    }

    private static DeskProgram ReadProgram(ref WireReader reader)
    {
        var id = reader.ReadBytes(ObjectSize).ToArray();
        var state = (ProgramState)reader.ReadByte();
        if (!Enum.IsDefined(state)) throw new WireException(WireError.BadField, $"Unknown program state {(byte)state}.");
        ulong fuel = reader.ReadUInt64(), memory = reader.ReadUInt64(), stored = reader.ReadUInt64(), deleteAt = reader.ReadUInt64();
        var key = reader.ReadBytes(AddressKeySize).ToArray();
        byte low = reader.ReadByte();
        if (low > 1) throw new WireException(WireError.BadField, $"A program's low flag is 0 or 1, not {low}.");
        return new DeskProgram(id, state, fuel, memory, stored, deleteAt, key, low == 1);
    }

    private static ushort ReadDays(ref WireReader reader)
    {
        ushort days = reader.ReadUInt16();
        return days is >= 1 and <= MaxDays ? days : throw new WireException(WireError.BadField, $"{days} days is outside 1..{MaxDays}.");
    }

    private static DeskRefused ReadRefused(ref WireReader reader)
    {
        byte reason = reader.ReadByte();
        if (!Enum.IsDefined((CreditRefusal)reason)) throw new WireException(WireError.BadField, $"Unknown credit refusal {reason}.");
        int length = reader.ReadUInt16();
        if (length > DeskMessage.MaxTextSize) throw new WireException(WireError.Oversized, $"A refusal's text of {length} bytes exceeds {DeskMessage.MaxTextSize}.");
        var bytes = reader.ReadBytes(length);
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new WireException(WireError.BadField, "A refusal's text is not UTF-8.");
        }
        return new DeskRefused((CreditRefusal)reason, text);
    }
}
