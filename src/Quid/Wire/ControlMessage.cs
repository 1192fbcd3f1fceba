using Quid.Crypto;

namespace Quid.Wire;

/// <summary>
/// Messages between two linked nodes about the link itself, the overlay and the exchange.
/// They travel on circuit 0 in Control cells (see <see cref="ControlFraming"/>).
/// </summary>
public abstract record ControlMessage
{
    public const int MaxSize = 64 * 1024;
}

/// <summary>The sender's own, current descriptor.</summary>
public sealed record DescriptorMessage(Descriptor Descriptor) : ControlMessage;

/// <summary>Descriptors of nodes the sender knows: peer exchange.</summary>
public sealed record PeersMessage(IReadOnlyList<Descriptor> Descriptors) : ControlMessage
{
    public const int MaxDescriptors = 32;
}

public sealed record AgreementProposal(AgreementTerms Terms, byte[] ProposerSignature) : ControlMessage;

public sealed record AgreementAcceptance(AgreementId Agreement, byte[] AcceptorSignature) : ControlMessage;

public enum AgreementRejectReason : byte
{
    NoCapacity = 1,
    BadTerms = 2,
    Shunned = 3,
    AlreadyPartners = 4,
}

public sealed record AgreementRejection(AgreementId Agreement, AgreementRejectReason Reason) : ControlMessage;

public enum AgreementEndReason : byte
{
    Requested = 1,
    ShuttingDown = 2,
    Underdelivered = 3,
}

public sealed record AgreementEnd(AgreementId Agreement, AgreementEndReason Reason) : ControlMessage;

public static class ControlCodec
{
    private enum MessageType : byte
    {
        Descriptor = 1,
        Peers = 2,
        AgreementProposal = 16,
        AgreementAcceptance = 17,
        AgreementRejection = 18,
        AgreementEnd = 19,
    }

    public static byte[] Encode(ControlMessage message)
    {
        // Never emit what Decode refuses: the peer could only close the link.
        if (message is PeersMessage { Descriptors.Count: > PeersMessage.MaxDescriptors } peers)
            throw new ArgumentException($"{peers.Descriptors.Count} descriptors in one peers message, at most {PeersMessage.MaxDescriptors}.", nameof(message));
        int length = EncodedLength(message);
        if (length > ControlMessage.MaxSize)
            throw new ArgumentException($"{message.GetType().Name} of {length} bytes exceeds {ControlMessage.MaxSize}.", nameof(message));
        var buffer = new byte[length];
        var writer = new WireWriter(buffer);
        switch (message)
        {
            case DescriptorMessage m:
                writer.WriteByte((byte)MessageType.Descriptor);
                writer.WriteBytes(m.Descriptor.Encoded);
                break;
            case PeersMessage m:
                writer.WriteByte((byte)MessageType.Peers);
                writer.WriteByte((byte)m.Descriptors.Count);
                foreach (var d in m.Descriptors)
                {
                    writer.WriteUInt16((ushort)d.Encoded.Length);
                    writer.WriteBytes(d.Encoded);
                }
                break;
            case AgreementProposal m:
                writer.WriteByte((byte)MessageType.AgreementProposal);
                m.Terms.Encode(ref writer);
                writer.WriteBytes(m.ProposerSignature);
                break;
            case AgreementAcceptance m:
                writer.WriteByte((byte)MessageType.AgreementAcceptance);
                m.Agreement.WriteTo(writer.Reserve(AgreementTerms.IdSize));
                writer.WriteBytes(m.AcceptorSignature);
                break;
            case AgreementRejection m:
                writer.WriteByte((byte)MessageType.AgreementRejection);
                m.Agreement.WriteTo(writer.Reserve(AgreementTerms.IdSize));
                writer.WriteByte((byte)m.Reason);
                break;
            case AgreementEnd m:
                writer.WriteByte((byte)MessageType.AgreementEnd);
                m.Agreement.WriteTo(writer.Reserve(AgreementTerms.IdSize));
                writer.WriteByte((byte)m.Reason);
                break;
            default:
                throw new ArgumentException($"No encoding for {message.GetType().Name}.", nameof(message));
        }
        return buffer;
    }

    private static int EncodedLength(ControlMessage message) => 1 + message switch
    {
        DescriptorMessage m => m.Descriptor.Encoded.Length,
        PeersMessage m => 1 + m.Descriptors.Sum(d => 2 + d.Encoded.Length),
        AgreementProposal => AgreementTerms.EncodedSize + NodeIdentity.SignatureSize,
        AgreementAcceptance => AgreementTerms.IdSize + NodeIdentity.SignatureSize,
        AgreementRejection or AgreementEnd => AgreementTerms.IdSize + 1,
        _ => 0,
    };

    public static ControlMessage Decode(ReadOnlySpan<byte> payload)
    {
        if (payload.Length > ControlMessage.MaxSize) throw new WireException(WireError.Oversized, $"Control message of {payload.Length} bytes exceeds {ControlMessage.MaxSize}.");
        var reader = new WireReader(payload);
        var type = (MessageType)reader.ReadByte();
        ControlMessage message = type switch
        {
            MessageType.Descriptor => new DescriptorMessage(Descriptor.Decode(reader.ReadBytes(reader.Remaining))),
            MessageType.Peers => DecodePeers(ref reader),
            MessageType.AgreementProposal => new AgreementProposal(AgreementTerms.Decode(ref reader), reader.ReadBytes(NodeIdentity.SignatureSize).ToArray()),
            MessageType.AgreementAcceptance => new AgreementAcceptance(new AgreementId(reader.ReadBytes(AgreementTerms.IdSize)), reader.ReadBytes(NodeIdentity.SignatureSize).ToArray()),
            MessageType.AgreementRejection => new AgreementRejection(new AgreementId(reader.ReadBytes(AgreementTerms.IdSize)), ReadEnum<AgreementRejectReason>(ref reader)),
            MessageType.AgreementEnd => new AgreementEnd(new AgreementId(reader.ReadBytes(AgreementTerms.IdSize)), ReadEnum<AgreementEndReason>(ref reader)),
            _ => throw new WireException(WireError.UnknownMessageType, $"Unknown control message type {(byte)type}."),
        };
        reader.ExpectEnd();
        return message;
    }

    private static PeersMessage DecodePeers(ref WireReader reader)
    {
        int count = reader.ReadByte();
        if (count > PeersMessage.MaxDescriptors) throw new WireException(WireError.Oversized, $"{count} descriptors in one peers message, at most {PeersMessage.MaxDescriptors}.");
        var descriptors = new Descriptor[count];
        for (int i = 0; i < count; i++) descriptors[i] = Descriptor.Decode(reader.ReadBytes(reader.ReadUInt16()));
        return new PeersMessage(descriptors);
    }

    private static T ReadEnum<T>(ref WireReader reader) where T : struct, Enum
    {
        byte value = reader.ReadByte();
        var result = (T)Enum.ToObject(typeof(T), value);
        return Enum.IsDefined(result) ? result : throw new WireException(WireError.BadField, $"Unknown {typeof(T).Name} {value}.");
    }
}
