using System.Security.Cryptography;
using Quid.Crypto;

namespace Quid.Wire;

/// <summary>
/// The terms of an agreement between two linked nodes: each grants the other a block of
/// bandwidth (or nothing, to a donor), and may grant it a block of disk and a block of CPU, which
/// it pays out as credits (PROTOCOL §10). Both sign these exact bytes, so either can show what was agreed.
/// A <paramref name="Private"/> agreement is one that neither side publishes: each uses the other
/// only as the first hop of its own circuits, and neither extends anyone's circuit to the other.
/// </summary>
public sealed record AgreementTerms(
    NodeId Proposer,
    NodeId Acceptor,
    Block? ProposerGrants,
    Block? AcceptorGrants,
    DateTimeOffset Start,
    byte[] Nonce,
    bool Private = false,
    DiskBlock? ProposerGrantsDisk = null,
    DiskBlock? AcceptorGrantsDisk = null,
    CpuBlock? ProposerGrantsCpu = null,
    CpuBlock? AcceptorGrantsCpu = null)
{
    public const int NonceSize = 16;
    /// <summary>Terms without disk: version 2, as before disk was traded, so such terms sign the same bytes.</summary>
    private const int BandwidthOnlySize = 1 + NodeId.Size * 2 + 2 + 8 + NonceSize + 1;
    /// <summary>Terms with disk but no CPU: version 3, as before CPU was traded.</summary>
    private const int DiskSize = BandwidthOnlySize + 2;
    /// <summary>The longest encoding: version 4, with the two disk and the two CPU grants.</summary>
    public const int MaxEncodedSize = DiskSize + 2;
    public const int IdSize = 16;
    private const byte BandwidthOnlyVersion = 2;
    private const byte DiskVersion = 3;
    private const byte Version = 4;
    private const byte PrivateFlag = 1;
    private static readonly byte[] SignatureContext = "quid agreement v1"u8.ToArray();

    public static AgreementTerms Create(NodeId proposer, NodeId acceptor, Block? proposerGrants, Block? acceptorGrants, DateTimeOffset start, bool isPrivate = false) =>
        Create(proposer, acceptor, proposerGrants, acceptorGrants, start, RandomNumberGenerator.GetBytes(NonceSize), isPrivate, null, null, null, null);

    /// <summary>Terms whose nonce comes from <paramref name="random"/>: the market's own source, seeded in the simulator so that runs repeat.</summary>
    public static AgreementTerms Create(NodeId proposer, NodeId acceptor, Block? proposerGrants, Block? acceptorGrants, DateTimeOffset start, Random random, bool isPrivate,
        DiskBlock? proposerGrantsDisk = null, DiskBlock? acceptorGrantsDisk = null, CpuBlock? proposerGrantsCpu = null, CpuBlock? acceptorGrantsCpu = null)
    {
        var nonce = new byte[NonceSize];
        random.NextBytes(nonce);
        return Create(proposer, acceptor, proposerGrants, acceptorGrants, start, nonce, isPrivate, proposerGrantsDisk, acceptorGrantsDisk, proposerGrantsCpu, acceptorGrantsCpu);
    }

    // The wire carries whole milliseconds: the terms must say what their signed bytes say.
    private static AgreementTerms Create(NodeId proposer, NodeId acceptor, Block? proposerGrants, Block? acceptorGrants, DateTimeOffset start, byte[] nonce, bool isPrivate,
        DiskBlock? proposerGrantsDisk, DiskBlock? acceptorGrantsDisk, CpuBlock? proposerGrantsCpu, CpuBlock? acceptorGrantsCpu) =>
        new(proposer, acceptor, proposerGrants, acceptorGrants, DateTimeOffset.FromUnixTimeMilliseconds(start.ToUnixTimeMilliseconds()), nonce, isPrivate,
            proposerGrantsDisk, acceptorGrantsDisk, proposerGrantsCpu, acceptorGrantsCpu);

    private bool TradesDisk => ProposerGrantsDisk is not null || AcceptorGrantsDisk is not null;
    private bool TradesCpu => ProposerGrantsCpu is not null || AcceptorGrantsCpu is not null;

    // Each encoding is the shortest that says the terms, so terms made before a resource was traded sign the same bytes.
    private byte EncodedVersion => TradesCpu ? Version : TradesDisk ? DiskVersion : BandwidthOnlyVersion;

    public int EncodedLength => TradesCpu ? MaxEncodedSize : TradesDisk ? DiskSize : BandwidthOnlySize;

    public void Encode(ref WireWriter writer)
    {
        writer.WriteByte(EncodedVersion);
        writer.WriteNodeId(Proposer);
        writer.WriteNodeId(Acceptor);
        writer.WriteByte(Block.Encode(ProposerGrants));
        writer.WriteByte(Block.Encode(AcceptorGrants));
        writer.WriteUInt64((ulong)Start.ToUnixTimeMilliseconds());
        writer.WriteBytes(Nonce);
        writer.WriteByte(Private ? PrivateFlag : (byte)0);
        if (EncodedVersion == BandwidthOnlyVersion) return;
        writer.WriteByte(DiskBlock.Encode(ProposerGrantsDisk));
        writer.WriteByte(DiskBlock.Encode(AcceptorGrantsDisk));
        if (EncodedVersion == DiskVersion) return;
        writer.WriteByte(CpuBlock.Encode(ProposerGrantsCpu));
        writer.WriteByte(CpuBlock.Encode(AcceptorGrantsCpu));
    }

    public byte[] Encode()
    {
        var buffer = new byte[EncodedLength];
        var writer = new WireWriter(buffer);
        Encode(ref writer);
        return buffer;
    }

    public static AgreementTerms Decode(ref WireReader reader)
    {
        byte version = reader.ReadByte();
        if (version is not (BandwidthOnlyVersion or DiskVersion or Version)) throw new WireException(WireError.BadVersion, $"Agreement version {version} is not {BandwidthOnlyVersion}, {DiskVersion} or {Version}.");
        var proposer = reader.ReadNodeId();
        var acceptor = reader.ReadNodeId();
        var proposerGrants = Block.Decode(reader.ReadByte());
        var acceptorGrants = Block.Decode(reader.ReadByte());
        ulong start = reader.ReadUInt64();
        if (start > 253_402_300_799_999UL) throw new WireException(WireError.BadField, "Agreement start out of range.");
        var nonce = reader.ReadBytes(NonceSize).ToArray();
        byte flags = reader.ReadByte();
        if ((flags & ~PrivateFlag) != 0) throw new WireException(WireError.BadField, $"Agreement flags 0x{flags:x2} name no known flag.");
        DiskBlock? proposerGrantsDisk = null, acceptorGrantsDisk = null;
        CpuBlock? proposerGrantsCpu = null, acceptorGrantsCpu = null;
        if (version >= DiskVersion)
        {
            proposerGrantsDisk = DiskBlock.Decode(reader.ReadByte());
            acceptorGrantsDisk = DiskBlock.Decode(reader.ReadByte());
            // One encoding per meaning: terms without disk or CPU are version 2, so their id is one.
            if (version == DiskVersion && proposerGrantsDisk is null && acceptorGrantsDisk is null) throw new WireException(WireError.BadField, "Version 3 terms must trade disk.");
        }
        if (version == Version)
        {
            proposerGrantsCpu = CpuBlock.Decode(reader.ReadByte());
            acceptorGrantsCpu = CpuBlock.Decode(reader.ReadByte());
            if (proposerGrantsCpu is null && acceptorGrantsCpu is null) throw new WireException(WireError.BadField, "Version 4 terms must trade CPU.");
        }
        if (proposer == acceptor) throw new WireException(WireError.BadField, "An agreement needs two different nodes.");
        return new AgreementTerms(proposer, acceptor, proposerGrants, acceptorGrants, DateTimeOffset.FromUnixTimeMilliseconds((long)start), nonce, flags == PrivateFlag,
            proposerGrantsDisk, acceptorGrantsDisk, proposerGrantsCpu, acceptorGrantsCpu);
    }

    /// <summary>Names the agreement in messages and in the ledger: a hash of its terms.</summary>
    public AgreementId Id => new(SHA256.HashData(Encode()).AsSpan(0, IdSize));

    public byte[] SignedMessage() => [.. SignatureContext, .. Encode()];

    /// <summary>What a node grants its counterpart under these terms.</summary>
    public Block? GrantedBy(NodeId node) => node == Proposer ? ProposerGrants : node == Acceptor ? AcceptorGrants : null;

    /// <summary>What disk a node grants its counterpart under these terms.</summary>
    public DiskBlock? DiskGrantedBy(NodeId node) => node == Proposer ? ProposerGrantsDisk : node == Acceptor ? AcceptorGrantsDisk : null;

    /// <summary>What CPU a node grants its counterpart under these terms.</summary>
    public CpuBlock? CpuGrantedBy(NodeId node) => node == Proposer ? ProposerGrantsCpu : node == Acceptor ? AcceptorGrantsCpu : null;

    public NodeId Counterpart(NodeId node) => node == Proposer ? Acceptor : Proposer;
}

/// <summary>16 bytes naming an agreement.</summary>
public readonly record struct AgreementId(UInt128 Value)
{
    public AgreementId(ReadOnlySpan<byte> bytes) : this(System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(bytes)) { }

    public void WriteTo(Span<byte> destination) => System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(destination, Value);

    public override string ToString() => Value.ToString("x32", System.Globalization.CultureInfo.InvariantCulture)[..12];
}
