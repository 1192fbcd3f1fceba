using System.Net;
using Quid.Crypto;

namespace Quid.Wire;

[Flags]
public enum NodeRoles : byte
{
    None = 0,
    Ultrapeer = 1,
    /// <summary>
    /// Its request is met: another agreement would have it hold more than it asked for, so a
    /// searching node proposes to it only when no node that is short fits (a donor, which asks
    /// nothing, never sets it).
    /// </summary>
    RequestMet = 2,
}

/// <summary>
/// What a node says about itself, signed by its key: where to reach it, the bandwidth it has
/// free and what it wants, where it lets traffic exit, who its partners are, and until when this
/// holds. Peers check the signature and the expiry; nobody trusts an unsigned claim.
/// </summary>
public sealed record Descriptor
{
    public const byte Version = 1;
    public const int MaxEncodedSize = 16 * 1024;
    public const int MaxFreeBlocks = Block.MaxOrder + 1;
    public const int MaxPartners = 256;
    private static readonly byte[] SignatureContext = "quid descriptor v1"u8.ToArray();

    private readonly byte[] _signingKey = [];
    private readonly IReadOnlyList<Block> _freeBlocks = [];

    public required byte[] SigningKey
    {
        get => _signingKey;
        init
        {
            _signingKey = value;
            Id = NodeId.FromSigningKey(value);
        }
    }
    public required byte[] LinkKey { get; init; }
    public required DateTimeOffset Published { get; init; }
    public required DateTimeOffset Expires { get; init; }
    /// <summary>Where the node accepts links; null for a node that only dials out.</summary>
    public IPEndPoint? Address { get; init; }
    public required Block Offer { get; init; }
    /// <summary>The block the node asks for in return; null for a donor.</summary>
    public Block? Request { get; init; }
    public IReadOnlyList<Block> FreeBlocks
    {
        get => _freeBlocks;
        init
        {
            _freeBlocks = value;
            LargestFreeBlock = value.Count == 0 ? null : value.Max();
        }
    }
    public NodeRoles Roles { get; init; }
    public required ExitPolicy ExitPolicy { get; init; }
    public IReadOnlyList<NodeId> Partners { get; init; } = [];
    /// <summary>The largest disk block the node can still grant a partner (PROTOCOL §10.1); null when it offers no disk or has none left.</summary>
    public DiskBlock? FreeDisk { get; init; }
    /// <summary>The disk block the node asks each partner for; null when it asks none.</summary>
    public DiskBlock? DiskRequest { get; init; }
    /// <summary>The largest CPU block the node can still grant a partner; null when it offers no CPU or has none left.</summary>
    public CpuBlock? FreeCpu { get; init; }
    /// <summary>The CPU block the node asks each partner for; null when it asks none.</summary>
    public CpuBlock? CpuRequest { get; init; }

    /// <summary>The signed encoding, present on every descriptor that was signed or decoded.</summary>
    public byte[] Encoded { get; private init; } = [];

    /// <summary>
    /// The node id, a hash of the signing key. It is worked out once, when the key is set:
    /// every node that handles a descriptor asks for it, searches and gossip many times over.
    /// </summary>
    public NodeId Id { get; private init; }

    /// <summary>The largest of the free blocks, kept with them because every match asks for it.</summary>
    public Block? LargestFreeBlock { get; private init; }

    public bool IsExpired(DateTimeOffset now) => now >= Expires;

    public Descriptor Sign(NodeIdentity identity)
    {
        if (!identity.SigningPublicKey.AsSpan().SequenceEqual(SigningKey))
            throw new ArgumentException("A descriptor is signed by the key it names.", nameof(identity));
        var buffer = new byte[BodyLength + NodeIdentity.SignatureSize];
        var writer = new WireWriter(buffer);
        EncodeBody(ref writer);
        identity.Sign(SignedMessage(buffer.AsSpan(0, BodyLength)), buffer.AsSpan(BodyLength));
        // The wire carries whole seconds: the signed object must say what its signed bytes say.
        return this with
        {
            Published = DateTimeOffset.FromUnixTimeSeconds(Published.ToUnixTimeSeconds()),
            Expires = DateTimeOffset.FromUnixTimeSeconds(Expires.ToUnixTimeSeconds()),
            Encoded = buffer,
        };
    }

    private int BodyLength =>
        1 + 32 + 32 + 8 + 8 + (Address is null ? 3 : Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? 19 : 7)
        + 1 + 1 + 1 + FreeBlocks.Count + 1 + ExitPolicy.EncodedLength + 2 + Partners.Count * NodeId.Size + (TradesCpu ? 4 : TradesDisk ? 2 : 0);

    private bool TradesDisk => FreeDisk is not null || DiskRequest is not null;
    private bool TradesCpu => FreeCpu is not null || CpuRequest is not null;

    private void EncodeBody(ref WireWriter writer)
    {
        if (FreeBlocks.Count > MaxFreeBlocks || Partners.Count > MaxPartners)
            throw new ArgumentException("Descriptor lists are over their limits.");
        writer.WriteByte(Version);
        writer.WriteBytes(SigningKey);
        writer.WriteBytes(LinkKey);
        writer.WriteUInt64((ulong)Published.ToUnixTimeSeconds());
        writer.WriteUInt64((ulong)Expires.ToUnixTimeSeconds());
        writer.WriteEndPoint(Address);
        writer.WriteByte(Offer.Order);
        writer.WriteByte(Block.Encode(Request));
        writer.WriteByte((byte)FreeBlocks.Count);
        foreach (var block in FreeBlocks) writer.WriteByte(block.Order);
        writer.WriteByte((byte)Roles);
        ExitPolicy.Encode(ref writer);
        writer.WriteUInt16((ushort)Partners.Count);
        foreach (var partner in Partners) writer.WriteNodeId(partner);
        // Disk, then CPU, come last and only when traded, so a node that trades neither signs what it did before.
        if (!TradesDisk && !TradesCpu) return;
        writer.WriteByte(DiskBlock.Encode(FreeDisk));
        writer.WriteByte(DiskBlock.Encode(DiskRequest));
        if (!TradesCpu) return;
        writer.WriteByte(CpuBlock.Encode(FreeCpu));
        writer.WriteByte(CpuBlock.Encode(CpuRequest));
    }

    private static byte[] SignedMessage(ReadOnlySpan<byte> body) => [.. SignatureContext, .. body];

    /// <summary>Parses and checks the signature. Expiry is the caller's to judge, with its clock.</summary>
    public static Descriptor Decode(ReadOnlySpan<byte> encoded)
    {
        if (encoded.Length > MaxEncodedSize) throw new WireException(WireError.Oversized, $"Descriptor of {encoded.Length} bytes exceeds {MaxEncodedSize}.");
        if (encoded.Length < NodeIdentity.SignatureSize) throw new WireException(WireError.Truncated, "Descriptor is shorter than its signature.");
        var body = encoded[..^NodeIdentity.SignatureSize];
        var reader = new WireReader(body);
        byte version = reader.ReadByte();
        if (version != Version) throw new WireException(WireError.BadVersion, $"Descriptor version {version} is not {Version}.");
        byte[] signingKey = reader.ReadBytes(32).ToArray();
        byte[] linkKey = reader.ReadBytes(32).ToArray();
        var published = ReadTime(ref reader);
        var expires = ReadTime(ref reader);
        var address = reader.ReadEndPoint();
        var offer = Block.Decode(reader.ReadByte()) ?? throw new WireException(WireError.BadField, "A descriptor must offer a block.");
        var request = Block.Decode(reader.ReadByte());
        int freeCount = reader.ReadByte();
        if (freeCount > MaxFreeBlocks) throw new WireException(WireError.Oversized, $"{freeCount} free blocks listed, at most {MaxFreeBlocks}.");
        var free = new Block[freeCount];
        for (int i = 0; i < freeCount; i++)
            free[i] = Block.Decode(reader.ReadByte()) ?? throw new WireException(WireError.BadField, "A free block cannot be none.");
        var roles = (NodeRoles)reader.ReadByte();
        var policy = ExitPolicy.Decode(ref reader);
        int partnerCount = reader.ReadUInt16();
        if (partnerCount > MaxPartners) throw new WireException(WireError.Oversized, $"{partnerCount} partners listed, at most {MaxPartners}.");
        var partners = new NodeId[partnerCount];
        for (int i = 0; i < partnerCount; i++) partners[i] = reader.ReadNodeId();
        DiskBlock? freeDisk = null, diskRequest = null;
        bool encodedDisk = reader.Remaining > 0;
        if (encodedDisk)
        {
            freeDisk = DiskBlock.Decode(reader.ReadByte());
            diskRequest = DiskBlock.Decode(reader.ReadByte());
        }
        CpuBlock? freeCpu = null, cpuRequest = null;
        if (reader.Remaining > 0)
        {
            freeCpu = CpuBlock.Decode(reader.ReadByte());
            cpuRequest = CpuBlock.Decode(reader.ReadByte());
            if (freeCpu is null && cpuRequest is null) throw new WireException(WireError.BadField, "A descriptor's CPU fields, when present, must say something.");
        }
        else if (freeDisk is null && diskRequest is null && encodedDisk)
            throw new WireException(WireError.BadField, "A descriptor's disk fields, when present without CPU, must say something.");
        reader.ExpectEnd();
        if (expires <= published) throw new WireException(WireError.BadField, "Descriptor expires before it was published.");
        if (free.Sum(b => b.Kbps) > offer.Kbps) throw new WireException(WireError.BadField, "Descriptor lists more free capacity than it offers.");
        if (!NodeIdentity.Verify(signingKey, SignedMessage(body), encoded[^NodeIdentity.SignatureSize..]))
            throw new WireException(WireError.BadSignature, "Descriptor signature does not verify.");
        return new Descriptor
        {
            SigningKey = signingKey,
            LinkKey = linkKey,
            Published = published,
            Expires = expires,
            Address = address,
            Offer = offer,
            Request = request,
            FreeBlocks = free,
            Roles = roles,
            ExitPolicy = policy,
            Partners = partners,
            FreeDisk = freeDisk,
            DiskRequest = diskRequest,
            FreeCpu = freeCpu,
            CpuRequest = cpuRequest,
            Encoded = encoded.ToArray(),
        };
    }

    private static DateTimeOffset ReadTime(ref WireReader reader)
    {
        ulong seconds = reader.ReadUInt64();
        // Beyond year 9999 DateTimeOffset cannot represent it: that is a bad field, not a crash.
        if (seconds > 253_402_300_799UL) throw new WireException(WireError.BadField, "Timestamp out of range.");
        return DateTimeOffset.FromUnixTimeSeconds((long)seconds);
    }
}
