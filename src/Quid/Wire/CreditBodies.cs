namespace Quid.Wire;

/// <summary>A credit asked for, blinded: its denomination (2^<paramref name="Order"/> MiB·days) and the blinded element (PROTOCOL §10.3).</summary>
public readonly record struct BlindedCredit(byte Order, byte[] Element);

/// <summary>The issuer's key for one denomination of an epoch, and its proof that it evaluated every element of that denomination with it.</summary>
public sealed record CreditProof(byte Order, byte[] PublicKey, byte[] Proof);

/// <summary>
/// The issuer's answer to blinded credits: one evaluated element per credit asked, in order, and a
/// proof per denomination asked, smallest first.
/// </summary>
public sealed record CreditEvaluation(IReadOnlyList<CreditProof> Proofs, IReadOnlyList<byte[]> Evaluated);

/// <summary>A credit as spent: its denomination, its token input and the output the holder finalized. The issuer and epoch travel beside it.</summary>
public readonly record struct CreditToken(byte Order, byte[] Input, byte[] Output);

public enum CreditRefusal : byte
{
    /// <summary>The asker is owed fewer credits than it asked (its allowance comes with the refusal).</summary>
    NoAllowance = 1,
    /// <summary>Credits are issued only under the current epoch, and exchanged only within their own.</summary>
    WrongEpoch = 2,
    /// <summary>A credit offered was spent before.</summary>
    Spent = 3,
    /// <summary>A credit offered is not one this issuer made.</summary>
    Invalid = 4,
    /// <summary>A credit offered is past its epoch's grace.</summary>
    Expired = 5,
    /// <summary>An exchange asked for a different total than it offered.</summary>
    Unbalanced = 6,
    /// <summary>The issuer does not issue credits (it grants no disk).</summary>
    NotIssuer = 7,
    /// <summary>The host holds no object of that id.</summary>
    NotFound = 8,
    /// <summary>The host has no room left for the object (its disk offer is taken).</summary>
    NoRoom = 9,
    /// <summary>The credits offered do not pay for the size and days asked.</summary>
    Underpaid = 10,
    /// <summary>The object exists already, or the owner's secret does not match.</summary>
    NotOwner = 11,
    /// <summary>The host refuses the program's module (malformed, too large, or asking for what it does not offer) before taking its payment.</summary>
    ModuleRefused = 12,
    /// <summary>The program trapped or ran out of fuel as it started: its payment is spent.</summary>
    StartFailed = 13,
}

/// <summary>A credit spent as payment, with its epoch: a payment may mix epochs.</summary>
public readonly record struct EpochCredit(ulong Epoch, CreditToken Token);

/// <summary>A partner asks the credits it is owed for the disk we grant it (PROTOCOL §10.3).</summary>
public sealed record CreditRequest(uint Id, ulong Epoch, IReadOnlyList<BlindedCredit> Credits) : ControlMessage
{
    public override ControlType Type => ControlType.CreditRequest;
}

/// <summary>The issuer's evaluation of a <see cref="CreditRequest"/>.</summary>
public sealed record CreditIssue(uint Id, CreditEvaluation Evaluation) : ControlMessage
{
    public override ControlType Type => ControlType.CreditIssue;
}

/// <summary>The issuer refuses a <see cref="CreditRequest"/>; <paramref name="Allowance"/> says what it would issue, in MiB·days.</summary>
public sealed record CreditRefused(uint Id, CreditRefusal Reason, ulong Allowance) : ControlMessage
{
    public override ControlType Type => ControlType.CreditRefused;
}

/// <summary>The encodings credits share in control messages and on the desk stream (PROTOCOL §10.3, §10.4).</summary>
public static class CreditCodec
{
    /// <summary>Credits in one request, exchange or answer: 64 of them make any amount up to 2^64 in at most one of each denomination.</summary>
    public const int MaxCredits = 64;
    /// <summary>The largest denomination, 2^30 MiB·days: a pebibyte for a day.</summary>
    public const byte MaxOrder = 30;
    public const int InputSize = 32;
    public const int ElementSize = 32;
    public const int OutputSize = 64;
    public const int ProofSize = 64;

    public static int BlindedLength(IReadOnlyList<BlindedCredit> credits) => 1 + credits.Count * (1 + ElementSize);

    public static void WriteBlinded(ref WireWriter writer, IReadOnlyList<BlindedCredit> credits)
    {
        writer.WriteByte(CheckCount(credits.Count));
        foreach (var c in credits)
        {
            writer.WriteByte(CheckOrder(c.Order));
            writer.WriteBytes(CheckLength(c.Element, ElementSize));
        }
    }

    public static BlindedCredit[] ReadBlinded(ref WireReader reader)
    {
        var credits = new BlindedCredit[ReadCount(ref reader)];
        for (int i = 0; i < credits.Length; i++) credits[i] = new BlindedCredit(ReadOrder(ref reader), reader.ReadBytes(ElementSize).ToArray());
        return credits;
    }

    public static int TokensLength(IReadOnlyList<CreditToken> tokens) => 1 + tokens.Count * (1 + InputSize + OutputSize);

    public static void WriteTokens(ref WireWriter writer, IReadOnlyList<CreditToken> tokens)
    {
        writer.WriteByte(CheckCount(tokens.Count));
        foreach (var t in tokens)
        {
            writer.WriteByte(CheckOrder(t.Order));
            writer.WriteBytes(CheckLength(t.Input, InputSize));
            writer.WriteBytes(CheckLength(t.Output, OutputSize));
        }
    }

    public static CreditToken[] ReadTokens(ref WireReader reader)
    {
        var tokens = new CreditToken[ReadCount(ref reader)];
        for (int i = 0; i < tokens.Length; i++)
            tokens[i] = new CreditToken(ReadOrder(ref reader), reader.ReadBytes(InputSize).ToArray(), reader.ReadBytes(OutputSize).ToArray());
        return tokens;
    }

    public static int PaymentLength(IReadOnlyList<EpochCredit> payment) => 1 + payment.Count * (8 + 1 + InputSize + OutputSize);

    public static void WritePayment(ref WireWriter writer, IReadOnlyList<EpochCredit> payment)
    {
        writer.WriteByte(CheckCount(payment.Count));
        foreach (var p in payment)
        {
            writer.WriteUInt64(p.Epoch);
            writer.WriteByte(CheckOrder(p.Token.Order));
            writer.WriteBytes(CheckLength(p.Token.Input, InputSize));
            writer.WriteBytes(CheckLength(p.Token.Output, OutputSize));
        }
    }

    public static EpochCredit[] ReadPayment(ref WireReader reader)
    {
        var payment = new EpochCredit[ReadCount(ref reader)];
        for (int i = 0; i < payment.Length; i++)
            payment[i] = new EpochCredit(reader.ReadUInt64(), new CreditToken(ReadOrder(ref reader), reader.ReadBytes(InputSize).ToArray(), reader.ReadBytes(OutputSize).ToArray()));
        return payment;
    }

    public static int EvaluationLength(CreditEvaluation evaluation) =>
        1 + evaluation.Proofs.Count * (1 + ElementSize + ProofSize) + 1 + evaluation.Evaluated.Count * ElementSize;

    public static void WriteEvaluation(ref WireWriter writer, CreditEvaluation evaluation)
    {
        writer.WriteByte(CheckCount(evaluation.Proofs.Count));
        foreach (var p in evaluation.Proofs)
        {
            writer.WriteByte(CheckOrder(p.Order));
            writer.WriteBytes(CheckLength(p.PublicKey, ElementSize));
            writer.WriteBytes(CheckLength(p.Proof, ProofSize));
        }
        writer.WriteByte(CheckCount(evaluation.Evaluated.Count));
        foreach (var e in evaluation.Evaluated) writer.WriteBytes(CheckLength(e, ElementSize));
    }

    public static CreditEvaluation ReadEvaluation(ref WireReader reader)
    {
        var proofs = new CreditProof[ReadCount(ref reader)];
        for (int i = 0; i < proofs.Length; i++)
        {
            proofs[i] = new CreditProof(ReadOrder(ref reader), reader.ReadBytes(ElementSize).ToArray(), reader.ReadBytes(ProofSize).ToArray());
            if (i > 0 && proofs[i].Order <= proofs[i - 1].Order) throw new WireException(WireError.BadField, "Credit proofs must come smallest denomination first, one each.");
        }
        var evaluated = new byte[ReadCount(ref reader)][];
        for (int i = 0; i < evaluated.Length; i++) evaluated[i] = reader.ReadBytes(ElementSize).ToArray();
        return new CreditEvaluation(proofs, evaluated);
    }

    private static byte CheckCount(int count) =>
        count <= MaxCredits ? (byte)count : throw new ArgumentException($"{count} credits in one message, at most {MaxCredits}.");

    private static byte CheckOrder(byte order) =>
        order <= MaxOrder ? order : throw new ArgumentException($"Credit denomination order {order} is over {MaxOrder}.");

    private static byte[] CheckLength(byte[] value, int length) =>
        value.Length == length ? value : throw new ArgumentException($"A credit field of {value.Length} bytes where {length} belong.");

    private static int ReadCount(ref WireReader reader)
    {
        int count = reader.ReadByte();
        return count <= MaxCredits ? count : throw new WireException(WireError.Oversized, $"{count} credits in one message, at most {MaxCredits}.");
    }

    private static byte ReadOrder(ref WireReader reader)
    {
        byte order = reader.ReadByte();
        return order <= MaxOrder ? order : throw new WireException(WireError.BadField, $"Credit denomination order {order} is over {MaxOrder}.");
    }
}
