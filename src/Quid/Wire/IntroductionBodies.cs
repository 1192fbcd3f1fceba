namespace Quid.Wire;

/// <summary>An introduction point's answer to EstablishIntroduction (PROTOCOL §9.13).</summary>
public enum IntroductionStatus : byte
{
    /// <summary>The record is published, and introductions for it will come on this circuit.</summary>
    Publishing = 0,
    /// <summary>The record is malformed, expired, or not signed by the key it is filed under.</summary>
    BadRecord = 1,
    /// <summary>This node introduces for as many circuits as it will, or publishes too often for this one.</summary>
    Refused = 2,
}

/// <summary>A lookup's answer at the client's last hop (PROTOCOL §9.13).</summary>
public enum LookupStatus : byte
{
    /// <summary>A current record was found: it follows.</summary>
    Found = 0,
    /// <summary>Neither ring found a record: to the client, as a name that does not exist.</summary>
    NotFound = 1,
    /// <summary>This node looks up for as many circuits as it will; try another.</summary>
    Refused = 2,
}

/// <summary>ServiceLookup's data: the lookup id (32), then the introduction (1 … 1,024 bytes, opaque to the last hop).</summary>
public readonly record struct ServiceLookupBody(byte[] LookupId, byte[] Introduction)
{
    public const int MaxSize = ServiceRecord.LookupIdSize + LookupMessage.MaxIntroductionSize;

    public int Write(Span<byte> data)
    {
        if (LookupId.Length != ServiceRecord.LookupIdSize) throw new ArgumentException($"A lookup id is {ServiceRecord.LookupIdSize} bytes.");
        if (Introduction.Length is 0 or > LookupMessage.MaxIntroductionSize) throw new ArgumentException($"An introduction is 1 to {LookupMessage.MaxIntroductionSize} bytes.");
        LookupId.CopyTo(data);
        Introduction.CopyTo(data[ServiceRecord.LookupIdSize..]);
        return ServiceRecord.LookupIdSize + Introduction.Length;
    }

    public static ServiceLookupBody Read(ReadOnlySpan<byte> data)
    {
        if (data.Length <= ServiceRecord.LookupIdSize) throw new WireException(WireError.Truncated, "A service lookup without an introduction.");
        if (data.Length > MaxSize) throw new WireException(WireError.Oversized, $"A service lookup of {data.Length} bytes exceeds {MaxSize}.");
        return new ServiceLookupBody(data[..ServiceRecord.LookupIdSize].ToArray(), data[ServiceRecord.LookupIdSize..].ToArray());
    }
}

/// <summary>ServiceLookupAnswered's data: u8 status, then, for Found only, the record's encoding.</summary>
public readonly record struct ServiceLookupAnsweredBody(LookupStatus Status, ServiceRecord? Record)
{
    public byte[] ToBytes() => Status == LookupStatus.Found ? [(byte)Status, .. Record!.Encoded] : [(byte)Status];

    public static ServiceLookupAnsweredBody Read(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) throw new WireException(WireError.Truncated, "A lookup answer without a status.");
        var status = (LookupStatus)data[0];
        if (!Enum.IsDefined(status)) throw new WireException(WireError.BadField, $"Unknown lookup status {data[0]}.");
        if (status != LookupStatus.Found)
        {
            if (data.Length != 1) throw new WireException(WireError.BadField, "A lookup that found nothing carries no record.");
            return new ServiceLookupAnsweredBody(status, null);
        }
        return new ServiceLookupAnsweredBody(status, ServiceRecord.Decode(data[1..]));
    }
}

/// <summary>IntroductionEstablished's data: u8 status, one the protocol names.</summary>
public static class IntroductionEstablishedBody
{
    public static IntroductionStatus Read(ReadOnlySpan<byte> data)
    {
        if (data.Length != 1) throw new WireException(data.IsEmpty ? WireError.Truncated : WireError.BadField, "IntroductionEstablished carries one byte.");
        var status = (IntroductionStatus)data[0];
        if (!Enum.IsDefined(status)) throw new WireException(WireError.BadField, $"Unknown introduction status {data[0]}.");
        return status;
    }
}

/// <summary>Introduction's data: the introduction as the client sealed it, 1 … 1,024 bytes.</summary>
public static class IntroductionBody
{
    public static byte[] Read(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) throw new WireException(WireError.Truncated, "An empty introduction.");
        if (data.Length > LookupMessage.MaxIntroductionSize) throw new WireException(WireError.Oversized, $"An introduction of {data.Length} bytes exceeds {LookupMessage.MaxIntroductionSize}.");
        return data.ToArray();
    }
}
