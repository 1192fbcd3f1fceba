using System.Net;

namespace Quid.Wire;

/// <summary>An End relay message's data: u8 reason, one the protocol names.</summary>
public readonly record struct EndBody(EndReason Reason)
{
    public const int Size = 1;

    public int Write(Span<byte> data)
    {
        if (!Enum.IsDefined(Reason)) throw new ArgumentException($"{(byte)Reason} is not an end reason.");
        data[0] = (byte)Reason;
        return Size;
    }

    public static EndBody Read(ReadOnlySpan<byte> data)
    {
        var reader = new WireReader(data);
        var reason = (EndReason)reader.ReadByte();
        reader.ExpectEnd();
        if (!Enum.IsDefined(reason)) throw new WireException(WireError.BadField, $"Unknown end reason {(byte)reason}.");
        return new EndBody(reason);
    }
}

/// <summary>A Connected relay message's data: the address the exit connected to (see <see cref="RelayAddress"/>).</summary>
public readonly record struct ConnectedBody(IPAddress Address)
{
    public const int MaxSize = RelayAddress.MaxSize;

    public int Write(Span<byte> data) => RelayAddress.Encode(Address, data);

    public static ConnectedBody Read(ReadOnlySpan<byte> data)
    {
        var reader = new WireReader(data);
        var address = RelayAddress.Decode(ref reader);
        reader.ExpectEnd();
        return new ConnectedBody(address);
    }
}

/// <summary>
/// A Resolved relay message's data: u8 status, u8 count, then count addresses (see
/// <see cref="RelayAddress"/>). Either status 0 and 1 to <see cref="MaxAddresses"/> addresses, or
/// an end reason other than done and none.
/// </summary>
public sealed record ResolvedBody
{
    public const int MaxAddresses = 16;
    public const int MaxSize = 2 + MaxAddresses * RelayAddress.MaxSize;

    private ResolvedBody(IReadOnlyList<IPAddress> addresses, EndReason? failure)
    {
        Addresses = addresses;
        Failure = failure;
    }

    /// <summary>What the name resolved to; empty when it did not.</summary>
    public IReadOnlyList<IPAddress> Addresses { get; }
    /// <summary>Why the name did not resolve; null when it did.</summary>
    public EndReason? Failure { get; }

    public static ResolvedBody Found(IEnumerable<IPAddress> addresses)
    {
        IPAddress[] found = [.. addresses];
        if (found.Length is 0 or > MaxAddresses) throw new ArgumentException($"A name resolves to 1 to {MaxAddresses} addresses.");
        return new ResolvedBody(found, null);
    }

    public static ResolvedBody Refused(EndReason reason)
    {
        if (reason == EndReason.Done || !Enum.IsDefined(reason)) throw new ArgumentException($"{(byte)reason} is not a reason a name did not resolve.");
        return new ResolvedBody([], reason);
    }

    public int Write(Span<byte> data)
    {
        var writer = new WireWriter(data);
        writer.WriteByte((byte)(Failure ?? 0));
        writer.WriteByte((byte)Addresses.Count);
        int length = writer.Position;
        foreach (var address in Addresses) length += RelayAddress.Encode(address, data[length..]);
        return length;
    }

    public static ResolvedBody Read(ReadOnlySpan<byte> data)
    {
        var reader = new WireReader(data);
        byte status = reader.ReadByte();
        int count = reader.ReadByte();
        if (status != 0)
        {
            if ((EndReason)status == EndReason.Done || !Enum.IsDefined((EndReason)status)) throw new WireException(WireError.BadField, $"Unknown resolve status {status}.");
            if (count != 0) throw new WireException(WireError.BadField, "A failed resolve carries no addresses.");
            reader.ExpectEnd();
            return new ResolvedBody([], (EndReason)status);
        }
        if (count is 0 or > MaxAddresses) throw new WireException(WireError.BadField, $"A resolve answers 1 to {MaxAddresses} addresses, not {count}.");
        var addresses = new IPAddress[count];
        for (int i = 0; i < count; i++) addresses[i] = RelayAddress.Decode(ref reader);
        reader.ExpectEnd();
        return new ResolvedBody(addresses, null);
    }
}
