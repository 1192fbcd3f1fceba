using Quid.Crypto;

namespace Quid.Wire;

/// <summary>
/// Messages between two linked nodes about the link itself, the overlay and the exchange.
/// They travel on circuit 0 in Control cells (see <see cref="ControlFraming"/>).
/// </summary>
public abstract record ControlMessage
{
    public const int MaxSize = 64 * 1024;

    /// <summary>The first byte of the message's encoding: what a receiver may rate-limit by before decoding the rest.</summary>
    public abstract ControlType Type { get; }
}

/// <summary>The sender's own, current descriptor.</summary>
public sealed record DescriptorMessage(Descriptor Descriptor) : ControlMessage
{
    public override ControlType Type => ControlType.Descriptor;
}

/// <summary>Descriptors of nodes the sender knows: peer exchange.</summary>
public sealed record PeersMessage(IReadOnlyList<Descriptor> Descriptors) : ControlMessage
{
    public const int MaxDescriptors = 32;

    public override ControlType Type => ControlType.Peers;
}

/// <summary>16 random bytes naming one search, so ultrapeers can drop copies and route hits back.</summary>
public readonly record struct QueryId(UInt128 Value)
{
    public const int Size = 16;

    public QueryId(ReadOnlySpan<byte> bytes) : this(System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(bytes)) { }

    public static QueryId New() => new(System.Security.Cryptography.RandomNumberGenerator.GetBytes(Size));

    /// <summary>A fresh id from <paramref name="random"/>: the overlay's own source, seeded in the simulator so that runs repeat.</summary>
    public static QueryId New(Random random)
    {
        Span<byte> bytes = stackalloc byte[Size];
        random.NextBytes(bytes);
        return new(bytes);
    }

    public void WriteTo(Span<byte> destination) => System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(destination, Value);

    public override string ToString() => Value.ToString("x32", System.Globalization.CultureInfo.InvariantCulture)[..8];
}

/// <summary>
/// A search for offers, flooded among ultrapeers: nodes with a free block of at least
/// <see cref="Wanted"/> whose own request fits in <see cref="CanGrant"/> (the searcher's largest
/// free block; none means the searcher can only serve donors).
/// </summary>
public sealed record QueryMessage(QueryId Id, byte Ttl, byte Hops, Block Wanted, Block? CanGrant, byte MaxResults) : ControlMessage
{
    public const byte MaxTtl = 7;
    public const byte MaxResultsLimit = 16;

    public override ControlType Type => ControlType.Query;
}

/// <summary>Signed descriptors answering a query, travelling back the way the query came.</summary>
public sealed record QueryHitMessage(QueryId Query, IReadOnlyList<Descriptor> Descriptors) : ControlMessage
{
    public override ControlType Type => ControlType.QueryHit;
}

/// <summary>
/// A service record flooded among ultrapeers from an introduction point (PROTOCOL §9.9): each
/// ultrapeer it reaches stores it with the neighbour it came from, the way back for introductions.
/// </summary>
public sealed record RecordPublishMessage(QueryId Id, byte Ttl, ServiceRecord Record) : ControlMessage
{
    public override ControlType Type => ControlType.RecordPublish;
}

/// <summary>
/// A lookup of a service's lookup id, flooded among ultrapeers as queries are, carrying the
/// client's introduction, opaque to the network: an ultrapeer that holds the record answers and
/// passes the introduction on toward the introduction point, so one trip does both.
/// </summary>
public sealed record LookupMessage(QueryId Id, byte Ttl, byte[] LookupId, byte[] Introduction) : ControlMessage
{
    public const int MaxIntroductionSize = 1024;

    public override ControlType Type => ControlType.Lookup;
}

/// <summary>The record a lookup asked for, travelling back the way the lookup came.</summary>
public sealed record LookupHitMessage(QueryId Lookup, ServiceRecord Record) : ControlMessage
{
    public override ControlType Type => ControlType.LookupHit;
}

/// <summary>A client's introduction on its way back along a record's publication to the introduction point that published it.</summary>
public sealed record IntroduceMessage(QueryId Publish, QueryId Lookup, byte[] Introduction) : ControlMessage
{
    public override ControlType Type => ControlType.Introduce;
}

/// <summary>
/// An introduction that found no way on (PROTOCOL §9.9): sent back to whoever passed it along
/// that publication, or, from the holder that has no publication left to try, back the way the
/// lookup came, so that the lookup goes on to other holders.
/// </summary>
public sealed record IntroduceFailedMessage(QueryId Publish, QueryId Lookup) : ControlMessage
{
    public override ControlType Type => ControlType.IntroduceFailed;
}

/// <summary>
/// An ultrapeer's summary of the offers it would name to a query that ends at it, sent to its
/// ultrapeer neighbours when it changes, so that the last hop of a flood goes only where it finds
/// something (PROTOCOL §5.7).
/// </summary>
public sealed record OfferSummaryMessage(OfferSummary Summary) : ControlMessage
{
    public override ControlType Type => ControlType.OfferSummary;
}

public enum GoodbyeReason : byte
{
    Full = 1,
    NotAFriend = 2,
    Abuse = 3,
    ShuttingDown = 4,
    Duplicate = 5,
}

/// <summary>Sent just before closing a link on purpose, so the other side knows why and whether to come back.</summary>
public sealed record GoodbyeMessage(GoodbyeReason Reason) : ControlMessage
{
    public override ControlType Type => ControlType.Goodbye;
}

public sealed record AgreementProposal(AgreementTerms Terms, byte[] ProposerSignature) : ControlMessage
{
    public override ControlType Type => ControlType.AgreementProposal;
}

public sealed record AgreementAcceptance(AgreementId Agreement, byte[] AcceptorSignature) : ControlMessage
{
    public override ControlType Type => ControlType.AgreementAcceptance;
}

public enum AgreementRejectReason : byte
{
    NoCapacity = 1,
    BadTerms = 2,
    Shunned = 3,
    AlreadyPartners = 4,
    /// <summary>A private agreement would make the acceptor the first hop of more than its public partners grant it onward; a public one may be welcome.</summary>
    NoFirstHopRoom = 5,
}

public sealed record AgreementRejection(AgreementId Agreement, AgreementRejectReason Reason) : ControlMessage
{
    public override ControlType Type => ControlType.AgreementRejection;
}

public enum AgreementEndReason : byte
{
    Requested = 1,
    ShuttingDown = 2,
    Underdelivered = 3,
    /// <summary>The link to the partner went down; never sent, since there is no link to send it on.</summary>
    LinkLost = 4,
}

public sealed record AgreementEnd(AgreementId Agreement, AgreementEndReason Reason) : ControlMessage
{
    public override ControlType Type => ControlType.AgreementEnd;
}

/// <summary>
/// The sender now grants less (or, after a recovery, more) under this agreement: one buddy
/// order at a time, in proportion to what the receiver was found to deliver.
/// </summary>
public sealed record GrantChanged(AgreementId Agreement, Block? Grant) : ControlMessage
{
    public override ControlType Type => ControlType.GrantChanged;
}

/// <summary>The first byte of every control message.</summary>
public enum ControlType : byte
{
    Descriptor = 1,
    Peers = 2,
    Query = 3,
    QueryHit = 4,
    Goodbye = 5,
    RecordPublish = 6,
    Lookup = 7,
    LookupHit = 8,
    Introduce = 9,
    IntroduceFailed = 10,
    OfferSummary = 11,
    AgreementProposal = 16,
    AgreementAcceptance = 17,
    AgreementRejection = 18,
    AgreementEnd = 19,
    GrantChanged = 20,
    CreditRequest = 21,
    CreditIssue = 22,
    CreditRefused = 23,
}

public static class ControlCodec
{
    public static byte[] Encode(ControlMessage message)
    {
        // Never emit what Decode refuses: the peer could only close the link.
        if (message is PeersMessage { Descriptors.Count: > PeersMessage.MaxDescriptors } peers)
            throw new ArgumentException($"{peers.Descriptors.Count} descriptors in one peers message, at most {PeersMessage.MaxDescriptors}.", nameof(message));
        if (message is LookupMessage { LookupId.Length: not ServiceRecord.LookupIdSize })
            throw new ArgumentException($"A lookup id is {ServiceRecord.LookupIdSize} bytes.", nameof(message));
        if (message is LookupMessage { Introduction.Length: > LookupMessage.MaxIntroductionSize } or IntroduceMessage { Introduction.Length: > LookupMessage.MaxIntroductionSize })
            throw new ArgumentException($"An introduction is at most {LookupMessage.MaxIntroductionSize} bytes.", nameof(message));
        if (message is RecordPublishMessage { Ttl: 0 or > QueryMessage.MaxTtl } or LookupMessage { Ttl: 0 or > QueryMessage.MaxTtl })
            throw new ArgumentException($"A flood's TTL is 1..{QueryMessage.MaxTtl}.", nameof(message));
        int length = EncodedLength(message);
        if (length > ControlMessage.MaxSize)
            throw new ArgumentException($"{message.GetType().Name} of {length} bytes exceeds {ControlMessage.MaxSize}.", nameof(message));
        var buffer = new byte[length];
        var writer = new WireWriter(buffer);
        writer.WriteByte((byte)message.Type);
        switch (message)
        {
            case DescriptorMessage m:
                writer.WriteBytes(m.Descriptor.Encoded);
                break;
            case PeersMessage m:
                WriteDescriptors(ref writer, m.Descriptors);
                break;
            case QueryMessage m:
                m.Id.WriteTo(writer.Reserve(QueryId.Size));
                writer.WriteByte(m.Ttl);
                writer.WriteByte(m.Hops);
                writer.WriteByte(m.Wanted.Order);
                writer.WriteByte(Block.Encode(m.CanGrant));
                writer.WriteByte(m.MaxResults);
                break;
            case QueryHitMessage m:
                m.Query.WriteTo(writer.Reserve(QueryId.Size));
                WriteDescriptors(ref writer, m.Descriptors);
                break;
            case GoodbyeMessage m:
                writer.WriteByte((byte)m.Reason);
                break;
            case RecordPublishMessage m:
                m.Id.WriteTo(writer.Reserve(QueryId.Size));
                writer.WriteByte(m.Ttl);
                writer.WriteBytes(m.Record.Encoded);
                break;
            case LookupMessage m:
                m.Id.WriteTo(writer.Reserve(QueryId.Size));
                writer.WriteByte(m.Ttl);
                writer.WriteBytes(m.LookupId);
                writer.WriteUInt16((ushort)m.Introduction.Length);
                writer.WriteBytes(m.Introduction);
                break;
            case LookupHitMessage m:
                m.Lookup.WriteTo(writer.Reserve(QueryId.Size));
                writer.WriteBytes(m.Record.Encoded);
                break;
            case IntroduceMessage m:
                m.Publish.WriteTo(writer.Reserve(QueryId.Size));
                m.Lookup.WriteTo(writer.Reserve(QueryId.Size));
                writer.WriteUInt16((ushort)m.Introduction.Length);
                writer.WriteBytes(m.Introduction);
                break;
            case IntroduceFailedMessage m:
                m.Publish.WriteTo(writer.Reserve(QueryId.Size));
                m.Lookup.WriteTo(writer.Reserve(QueryId.Size));
                break;
            case OfferSummaryMessage m:
                m.Summary.WriteTo(writer.Reserve(OfferSummary.Size));
                break;
            case AgreementProposal m:
                m.Terms.Encode(ref writer);
                writer.WriteBytes(m.ProposerSignature);
                break;
            case AgreementAcceptance m:
                m.Agreement.WriteTo(writer.Reserve(AgreementTerms.IdSize));
                writer.WriteBytes(m.AcceptorSignature);
                break;
            case AgreementRejection m:
                m.Agreement.WriteTo(writer.Reserve(AgreementTerms.IdSize));
                writer.WriteByte((byte)m.Reason);
                break;
            case AgreementEnd m:
                m.Agreement.WriteTo(writer.Reserve(AgreementTerms.IdSize));
                writer.WriteByte((byte)m.Reason);
                break;
            case GrantChanged m:
                m.Agreement.WriteTo(writer.Reserve(AgreementTerms.IdSize));
                writer.WriteByte(Block.Encode(m.Grant));
                break;
            case CreditRequest m:
                writer.WriteUInt32(m.Id);
                writer.WriteUInt64(m.Epoch);
                CreditCodec.WriteBlinded(ref writer, m.Credits);
                break;
            case CreditIssue m:
                writer.WriteUInt32(m.Id);
                CreditCodec.WriteEvaluation(ref writer, m.Evaluation);
                break;
            case CreditRefused m:
                writer.WriteUInt32(m.Id);
                writer.WriteByte((byte)m.Reason);
                writer.WriteUInt64(m.Allowance);
                break;
            default:
                throw new ArgumentException($"No encoding for {message.GetType().Name}.", nameof(message));
        }
        return buffer;
    }

    /// <summary>The size of a message's encoding, without encoding it: what the simulator charges a link for a message it passes as an object.</summary>
    public static int EncodedLength(ControlMessage message) => 1 + message switch
    {
        DescriptorMessage m => m.Descriptor.Encoded.Length,
        PeersMessage m => 1 + m.Descriptors.Sum(d => 2 + d.Encoded.Length),
        QueryMessage => QueryId.Size + 5,
        QueryHitMessage m => QueryId.Size + 1 + m.Descriptors.Sum(d => 2 + d.Encoded.Length),
        GoodbyeMessage => 1,
        RecordPublishMessage m => QueryId.Size + 1 + m.Record.Encoded.Length,
        LookupMessage m => QueryId.Size + 1 + ServiceRecord.LookupIdSize + 2 + m.Introduction.Length,
        LookupHitMessage m => QueryId.Size + m.Record.Encoded.Length,
        IntroduceMessage m => 2 * QueryId.Size + 2 + m.Introduction.Length,
        IntroduceFailedMessage => 2 * QueryId.Size,
        OfferSummaryMessage => OfferSummary.Size,
        AgreementProposal m => m.Terms.EncodedLength + NodeIdentity.SignatureSize,
        AgreementAcceptance => AgreementTerms.IdSize + NodeIdentity.SignatureSize,
        AgreementRejection or AgreementEnd or GrantChanged => AgreementTerms.IdSize + 1,
        CreditRequest m => 4 + 8 + CreditCodec.BlindedLength(m.Credits),
        CreditIssue m => 4 + CreditCodec.EvaluationLength(m.Evaluation),
        CreditRefused => 4 + 1 + 8,
        _ => 0,
    };

    public static ControlMessage Decode(ReadOnlySpan<byte> payload)
    {
        if (payload.Length > ControlMessage.MaxSize) throw new WireException(WireError.Oversized, $"Control message of {payload.Length} bytes exceeds {ControlMessage.MaxSize}.");
        var reader = new WireReader(payload);
        var type = (ControlType)reader.ReadByte();
        ControlMessage message = type switch
        {
            ControlType.Descriptor => new DescriptorMessage(Descriptor.Decode(reader.ReadBytes(reader.Remaining))),
            ControlType.Peers => new PeersMessage(ReadDescriptors(ref reader, PeersMessage.MaxDescriptors)),
            ControlType.Query => DecodeQuery(ref reader),
            ControlType.QueryHit => new QueryHitMessage(new QueryId(reader.ReadBytes(QueryId.Size)), ReadDescriptors(ref reader, QueryMessage.MaxResultsLimit)),
            ControlType.Goodbye => new GoodbyeMessage(ReadEnum<GoodbyeReason>(ref reader)),
            ControlType.RecordPublish => new RecordPublishMessage(new QueryId(reader.ReadBytes(QueryId.Size)), ReadTtl(ref reader), ServiceRecord.Decode(reader.ReadBytes(reader.Remaining))),
            ControlType.Lookup => new LookupMessage(new QueryId(reader.ReadBytes(QueryId.Size)), ReadTtl(ref reader), reader.ReadBytes(ServiceRecord.LookupIdSize).ToArray(), ReadIntroduction(ref reader)),
            ControlType.LookupHit => new LookupHitMessage(new QueryId(reader.ReadBytes(QueryId.Size)), ServiceRecord.Decode(reader.ReadBytes(reader.Remaining))),
            ControlType.Introduce => new IntroduceMessage(new QueryId(reader.ReadBytes(QueryId.Size)), new QueryId(reader.ReadBytes(QueryId.Size)), ReadIntroduction(ref reader)),
            ControlType.IntroduceFailed => new IntroduceFailedMessage(new QueryId(reader.ReadBytes(QueryId.Size)), new QueryId(reader.ReadBytes(QueryId.Size))),
            ControlType.OfferSummary => new OfferSummaryMessage(OfferSummary.Decode(reader.ReadBytes(OfferSummary.Size))),
            ControlType.AgreementProposal => new AgreementProposal(AgreementTerms.Decode(ref reader), reader.ReadBytes(NodeIdentity.SignatureSize).ToArray()),
            ControlType.AgreementAcceptance => new AgreementAcceptance(new AgreementId(reader.ReadBytes(AgreementTerms.IdSize)), reader.ReadBytes(NodeIdentity.SignatureSize).ToArray()),
            ControlType.AgreementRejection => new AgreementRejection(new AgreementId(reader.ReadBytes(AgreementTerms.IdSize)), ReadEnum<AgreementRejectReason>(ref reader)),
            ControlType.AgreementEnd => new AgreementEnd(new AgreementId(reader.ReadBytes(AgreementTerms.IdSize)), ReadEnum<AgreementEndReason>(ref reader)),
            ControlType.GrantChanged => new GrantChanged(new AgreementId(reader.ReadBytes(AgreementTerms.IdSize)), Block.Decode(reader.ReadByte())),
            ControlType.CreditRequest => new CreditRequest(reader.ReadUInt32(), reader.ReadUInt64(), CreditCodec.ReadBlinded(ref reader)),
            ControlType.CreditIssue => new CreditIssue(reader.ReadUInt32(), CreditCodec.ReadEvaluation(ref reader)),
            ControlType.CreditRefused => new CreditRefused(reader.ReadUInt32(), ReadEnum<CreditRefusal>(ref reader), reader.ReadUInt64()),
            _ => throw new WireException(WireError.UnknownMessageType, $"Unknown control message type {(byte)type}."),
        };
        reader.ExpectEnd();
        return message;
    }

    /// <summary>The message type, read before decoding so a flood can be refused before any signature is checked.</summary>
    public static ControlType PeekType(ReadOnlySpan<byte> payload) => payload.IsEmpty ? 0 : (ControlType)payload[0];

    private static void WriteDescriptors(ref WireWriter writer, IReadOnlyList<Descriptor> descriptors)
    {
        writer.WriteByte((byte)descriptors.Count);
        foreach (var d in descriptors)
        {
            writer.WriteUInt16((ushort)d.Encoded.Length);
            writer.WriteBytes(d.Encoded);
        }
    }

    private static Descriptor[] ReadDescriptors(ref WireReader reader, int max)
    {
        int count = reader.ReadByte();
        if (count > max) throw new WireException(WireError.Oversized, $"{count} descriptors in one message, at most {max}.");
        var descriptors = new Descriptor[count];
        for (int i = 0; i < count; i++) descriptors[i] = Descriptor.Decode(reader.ReadBytes(reader.ReadUInt16()));
        return descriptors;
    }

    private static QueryMessage DecodeQuery(ref WireReader reader)
    {
        var id = new QueryId(reader.ReadBytes(QueryId.Size));
        byte ttl = reader.ReadByte();
        byte hops = reader.ReadByte();
        var wanted = Block.Decode(reader.ReadByte()) ?? throw new WireException(WireError.BadField, "A query must want a block.");
        var canGrant = Block.Decode(reader.ReadByte());
        byte maxResults = reader.ReadByte();
        if (ttl == 0 || ttl > QueryMessage.MaxTtl) throw new WireException(WireError.BadField, $"Query TTL {ttl} is outside 1..{QueryMessage.MaxTtl}.");
        if (maxResults == 0 || maxResults > QueryMessage.MaxResultsLimit) throw new WireException(WireError.BadField, $"Query asks for {maxResults} results, 1..{QueryMessage.MaxResultsLimit} allowed.");
        return new QueryMessage(id, ttl, hops, wanted, canGrant, maxResults);
    }

    private static byte ReadTtl(ref WireReader reader)
    {
        byte ttl = reader.ReadByte();
        return ttl is > 0 and <= QueryMessage.MaxTtl ? ttl : throw new WireException(WireError.BadField, $"TTL {ttl} is outside 1..{QueryMessage.MaxTtl}.");
    }

    private static byte[] ReadIntroduction(ref WireReader reader)
    {
        int length = reader.ReadUInt16();
        if (length > LookupMessage.MaxIntroductionSize) throw new WireException(WireError.Oversized, $"An introduction of {length} bytes exceeds {LookupMessage.MaxIntroductionSize}.");
        return reader.ReadBytes(length).ToArray();
    }

    private static T ReadEnum<T>(ref WireReader reader) where T : struct, Enum
    {
        byte value = reader.ReadByte();
        var result = (T)Enum.ToObject(typeof(T), value);
        return Enum.IsDefined(result) ? result : throw new WireException(WireError.BadField, $"Unknown {typeof(T).Name} {value}.");
    }
}
