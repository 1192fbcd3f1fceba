using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Quid.Crypto;

/// <summary>
/// A node's pseudonym: the first 20 bytes of SHA-256 over its Ed25519 public key.
/// It names a key, never an address. Shown as 32 lowercase base32 characters.
/// </summary>
public readonly struct NodeId : IEquatable<NodeId>, IComparable<NodeId>
{
    public const int Size = 20;
    private static readonly byte[] Domain = "quid node id v1"u8.ToArray();

    // Three fields instead of an array: equality and hashing are hot in routing tables.
    private readonly ulong _a;
    private readonly ulong _b;
    private readonly uint _c;

    public NodeId(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size) throw new ArgumentException($"A node id is {Size} bytes.", nameof(bytes));
        _a = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        _b = BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]);
        _c = BinaryPrimitives.ReadUInt32BigEndian(bytes[16..]);
    }

    public static NodeId FromSigningKey(ReadOnlySpan<byte> ed25519PublicKey)
    {
        Span<byte> input = stackalloc byte[Domain.Length + ed25519PublicKey.Length];
        Domain.CopyTo(input);
        ed25519PublicKey.CopyTo(input[Domain.Length..]);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(input, hash);
        return new NodeId(hash[..Size]);
    }

    public bool IsEmpty => _a == 0 && _b == 0 && _c == 0;

    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, _a);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _b);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], _c);
    }

    public byte[] ToBytes()
    {
        var bytes = new byte[Size];
        WriteTo(bytes);
        return bytes;
    }

    public bool Equals(NodeId other) => _a == other._a && _b == other._b && _c == other._c;
    public override bool Equals(object? obj) => obj is NodeId other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(_a, _b, _c);
    public int CompareTo(NodeId other)
    {
        int c = _a.CompareTo(other._a);
        if (c != 0) return c;
        c = _b.CompareTo(other._b);
        return c != 0 ? c : _c.CompareTo(other._c);
    }
    public static bool operator ==(NodeId left, NodeId right) => left.Equals(right);
    public static bool operator !=(NodeId left, NodeId right) => !left.Equals(right);
    public static bool operator <(NodeId left, NodeId right) => left.CompareTo(right) < 0;
    public static bool operator >(NodeId left, NodeId right) => left.CompareTo(right) > 0;
    public static bool operator <=(NodeId left, NodeId right) => left.CompareTo(right) <= 0;
    public static bool operator >=(NodeId left, NodeId right) => left.CompareTo(right) >= 0;

    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[Size];
        WriteTo(bytes);
        return Base32.Encode(bytes);
    }

    /// <summary>The first 8 characters: enough to tell nodes apart in logs and tables.</summary>
    public string Brief => ToString()[..8];

    public static bool TryParse(string? text, out NodeId id)
    {
        id = default;
        if (text is null) return false;
        Span<byte> bytes = stackalloc byte[Size];
        if (!Base32.TryDecode(text.Trim(), bytes, out int written) || written != Size) return false;
        id = new NodeId(bytes);
        return true;
    }
}
