using System.Buffers.Binary;

namespace Quid.Programs;

/// <summary>Why the remailer refused a message: the code after <see cref="Remailer.KindRefused"/>.</summary>
public enum RemailerError
{
    /// <summary>Not a code the remailer sends; what a reply that is no refusal carries.</summary>
    None = 0,
    /// <summary>FORWARD, DEPOSIT or FETCH before INIT: there is no owner yet.</summary>
    NotInitialised = 1,
    /// <summary>A second INIT: the owner is set once, so nobody can take a mailbox over.</summary>
    AlreadyInitialised = 2,
    /// <summary>FETCH with a secret other than INIT's.</summary>
    WrongSecret = 3,
    /// <summary>Empty, truncated, the wrong length, or an address out of range (or the reply address).</summary>
    Malformed = 4,
    /// <summary>Its key-value store is full: the message was not kept.</summary>
    StoreFull = 5,
    /// <summary>A first byte that is no kind the remailer takes.</summary>
    UnknownKind = 6,
}

/// <summary>What a reply from the remailer says: its kind and, by kind, the payload, count or error.</summary>
/// <param name="Kind">The reply's first byte: <see cref="Remailer.KindInitialised"/>, <see cref="Remailer.KindMessage"/>, <see cref="Remailer.KindFetched"/> or <see cref="Remailer.KindRefused"/>.</param>
/// <param name="Payload">A mailbox message (<see cref="Remailer.KindMessage"/>); empty otherwise.</param>
/// <param name="Count">How many messages a FETCH sent (<see cref="Remailer.KindFetched"/>); 0 otherwise.</param>
/// <param name="Error">Why it refused (<see cref="Remailer.KindRefused"/>); <see cref="RemailerError.None"/> otherwise.</param>
public sealed record RemailerReply(byte Kind, byte[] Payload, uint Count, RemailerError Error);

/// <summary>
/// The seed's remailer and mailbox, a hosted program written by hand in WebAssembly text
/// (<c>remailer.wat</c>, which documents it), and the messages it takes and sends. It forwards a
/// payload as a DEPOSIT after a random delay, so that a message in and a message out are hard to
/// match, and keeps DEPOSITs for the owner, who fetches them with the secret set by INIT.
/// Replies go to <see cref="ReplyAddress"/>, the stream the message came by; a message of a reply's
/// kind (0x80 and up) gets none, so that two remailers never answer each other's refusals forever.
/// </summary>
public static class Remailer
{
    /// <summary>INIT: <c>0x01 || secret(32) || max_delay_ms u32</c>.</summary>
    public const byte KindInit = 0x01;
    /// <summary>FORWARD: <c>0x02 || to_len u8 || to || payload</c>.</summary>
    public const byte KindForward = 0x02;
    /// <summary>DEPOSIT: <c>0x03 || payload</c>, also what a FORWARD sends on.</summary>
    public const byte KindDeposit = 0x03;
    /// <summary>FETCH: <c>0x04 || secret(32)</c>.</summary>
    public const byte KindFetch = 0x04;
    /// <summary>Reply to INIT: <c>0x81</c>.</summary>
    public const byte KindInitialised = 0x81;
    /// <summary>Reply to FETCH, one per mailbox message: <c>0x83 || payload</c>.</summary>
    public const byte KindMessage = 0x83;
    /// <summary>Reply ending a FETCH: <c>0x84 || count u32</c>.</summary>
    public const byte KindFetched = 0x84;
    /// <summary>A refusal: <c>0xEE || code u8</c>, a <see cref="RemailerError"/>.</summary>
    public const byte KindRefused = 0xEE;

    /// <summary>The owner's secret, which FETCH must repeat.</summary>
    public const int SecretLength = 32;
    /// <summary>The most messages one FETCH sends, which leaves its count room in an empty outbox of <see cref="HostedProgram.MaxOutbox"/>.</summary>
    public const int MaxFetch = 255;
    /// <summary>The largest DEPOSIT payload: a DEPOSIT is one message.</summary>
    public const int MaxPayload = HostedProgram.MaxMessage - 1;
    /// <summary>The address replies go to: the host's "the stream this message came by". FORWARD may not name it.</summary>
    public static ReadOnlySpan<byte> ReplyAddress => ProgramHost.ReplyAddress;
    /// <summary>The program's tick: a FORWARD waits a whole number of them, from 1 to max(1, max delay / tick).</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(100);

    private const string Resource = "Quid.Programs.remailer.wat";
    private static readonly Lazy<byte[]> Wasm = new(Compile);

    /// <summary>The module's WebAssembly binary, compiled from its text once; a copy each call, so callers cannot change it for each other.</summary>
    public static byte[] Module() => (byte[])Wasm.Value.Clone();

    /// <summary>INIT: sets the owner's <paramref name="secret"/> and the longest forwarding delay, once.</summary>
    public static byte[] Init(ReadOnlySpan<byte> secret, uint maxDelayMs)
    {
        CheckSecret(secret);
        var message = new byte[1 + SecretLength + 4];
        message[0] = KindInit;
        secret.CopyTo(message.AsSpan(1));
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(1 + SecretLength), maxDelayMs);
        return message;
    }

    /// <summary>FORWARD: asks the remailer to send <paramref name="payload"/> on to <paramref name="to"/> as a DEPOSIT, later.</summary>
    public static byte[] Forward(ReadOnlySpan<byte> to, ReadOnlySpan<byte> payload)
    {
        if (to.Length is < 1 or > HostedProgram.MaxAddress)
            throw new ArgumentException($"An address of {to.Length} bytes; the host takes 1 to {HostedProgram.MaxAddress}.", nameof(to));
        if (to.SequenceEqual(ReplyAddress))
            throw new ArgumentException("The reply address means the stream a message came by; a forwarded message has none.", nameof(to));
        int most = HostedProgram.MaxMessage - 2 - to.Length;
        if (payload.Length is < 1 || payload.Length > most)
            throw new ArgumentException($"A payload of {payload.Length} bytes; with this address it takes 1 to {most}, to fit one message.", nameof(payload));
        var message = new byte[2 + to.Length + payload.Length];
        message[0] = KindForward;
        message[1] = (byte)to.Length;
        to.CopyTo(message.AsSpan(2));
        payload.CopyTo(message.AsSpan(2 + to.Length));
        return message;
    }

    /// <summary>DEPOSIT: a message for the mailbox's owner.</summary>
    public static byte[] Deposit(ReadOnlySpan<byte> payload)
    {
        if (payload.Length is < 1 or > MaxPayload)
            throw new ArgumentException($"A payload of {payload.Length} bytes; a deposit takes 1 to {MaxPayload}.", nameof(payload));
        var message = new byte[1 + payload.Length];
        message[0] = KindDeposit;
        payload.CopyTo(message.AsSpan(1));
        return message;
    }

    /// <summary>FETCH: the owner, proved by <paramref name="secret"/>, takes up to <see cref="MaxFetch"/> mailbox messages.</summary>
    public static byte[] Fetch(ReadOnlySpan<byte> secret)
    {
        CheckSecret(secret);
        var message = new byte[1 + SecretLength];
        message[0] = KindFetch;
        secret.CopyTo(message.AsSpan(1));
        return message;
    }

    /// <summary>
    /// Reads a reply; throws <see cref="ArgumentException"/> for bytes that are none, since they come
    /// over the network and a caller should know it got nonsense rather than guess.
    /// </summary>
    public static RemailerReply ParseReply(ReadOnlySpan<byte> reply)
    {
        if (reply.IsEmpty) throw new ArgumentException("An empty reply.", nameof(reply));
        return reply[0] switch
        {
            KindInitialised when reply.Length == 1 => new RemailerReply(KindInitialised, [], 0, RemailerError.None),
            KindMessage when reply.Length >= 2 => new RemailerReply(KindMessage, reply[1..].ToArray(), 0, RemailerError.None),
            KindFetched when reply.Length == 5 => new RemailerReply(KindFetched, [], BinaryPrimitives.ReadUInt32BigEndian(reply[1..]), RemailerError.None),
            KindRefused when reply.Length == 2 && reply[1] != 0 => new RemailerReply(KindRefused, [], 0, (RemailerError)reply[1]),
            _ => throw new ArgumentException($"Not a remailer reply: kind 0x{reply[0]:X2}, {reply.Length} bytes.", nameof(reply)),
        };
    }

    /// <summary>The payload of a DEPOSIT, as a FORWARD arrives at its address; throws <see cref="ArgumentException"/> for anything else.</summary>
    public static ReadOnlySpan<byte> ReadDeposit(ReadOnlySpan<byte> message) =>
        message.Length >= 2 && message[0] == KindDeposit ? message[1..] : throw new ArgumentException("Not a DEPOSIT.", nameof(message));

    private static void CheckSecret(ReadOnlySpan<byte> secret)
    {
        if (secret.Length != SecretLength)
            throw new ArgumentException($"A secret of {secret.Length} bytes; it is {SecretLength}.", nameof(secret));
    }

    private static byte[] Compile()
    {
        using var stream = typeof(Remailer).Assembly.GetManifestResourceStream(Resource)
            ?? throw new InvalidOperationException($"The remailer's {Resource} is missing from the assembly.");
        using var reader = new StreamReader(stream);
        return Wasmtime.Module.ConvertText(reader.ReadToEnd());
    }
}
