namespace Quid.Proxy.Socks;

public enum SocksStepKind
{
    /// <summary>The input is a proper prefix of a valid message: keep it, append more bytes, call again.</summary>
    NeedMore,
    /// <summary>Send <see cref="SocksStep.Reply"/>, drop <see cref="SocksStep.Consumed"/> bytes, call again with the rest (it may already hold the next message).</summary>
    Reply,
    /// <summary><see cref="SocksStep.Request"/> is complete; bytes past <see cref="SocksStep.Consumed"/> are the client's early data.</summary>
    Finished,
    /// <summary>Send <see cref="SocksStep.Reply"/> (possibly empty), then close.</summary>
    Failed,
}

/// <summary>What the caller must do after one <see cref="SocksServerHandshake.Step"/>.</summary>
public readonly struct SocksStep
{
    private SocksStep(SocksStepKind kind, int consumed, ReadOnlyMemory<byte> reply, SocksRequest? request, SocksError? error)
    {
        Kind = kind;
        Consumed = consumed;
        Reply = reply;
        Request = request;
        Error = error;
    }

    public SocksStepKind Kind { get; }

    /// <summary>Bytes of the input this step used up; 0 for <see cref="SocksStepKind.NeedMore"/> and <see cref="SocksStepKind.Failed"/>.</summary>
    public int Consumed { get; }

    /// <summary>Bytes to send now. Empty for <see cref="SocksStepKind.Finished"/>: the caller sends the final reply (<see cref="SocksReply"/>) once it knows the outcome.</summary>
    public ReadOnlyMemory<byte> Reply { get; }

    /// <summary>Set exactly when <see cref="Kind"/> is <see cref="SocksStepKind.Finished"/>.</summary>
    public SocksRequest? Request { get; }

    /// <summary>Set exactly when <see cref="Kind"/> is <see cref="SocksStepKind.Failed"/>.</summary>
    public SocksError? Error { get; }

    internal static SocksStep NeedMore { get; } = new(SocksStepKind.NeedMore, 0, default, null, null);

    internal static SocksStep Send(int consumed, byte[] reply) => new(SocksStepKind.Reply, consumed, reply, null, null);

    internal static SocksStep Finish(int consumed, SocksRequest request) => new(SocksStepKind.Finished, consumed, default, request, null);

    internal static SocksStep Fail(SocksErrorKind kind, string message, byte[]? reply = null) =>
        new(SocksStepKind.Failed, 0, reply ?? [], null, new SocksError(kind, message));
}
