using Quid.Crypto;
using Quid.Wire;

namespace Quid.Credits;

/// <summary>
/// The desk conversation (PROTOCOL §10.4) over any stream: in the node, a stream a client's
/// circuit began at the issuer itself, so the issuer answers without learning who asks.
/// </summary>
public static class CreditDesk
{
    /// <summary>Exchanges one desk stream serves before it closes: enough for a large card, few enough that a stream cannot hold the issuer forever.</summary>
    public const int ExchangesPerStream = 64;
    /// <summary>How long the desk waits for a client's next frame, and a client for the desk's answer.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Serves exchanges on <paramref name="stream"/> until the client ends it, sends nonsense, or
    /// waits too long; any other request goes to <paramref name="other"/> (the node's storage and
    /// programs), which answers on the stream itself and says whether to go on.
    /// </summary>
    public static async Task ServeAsync(Stream stream, CreditIssuer issuer, TimeProvider time, CancellationToken cancellationToken,
        Func<Stream, DeskMessage, CancellationToken, Task<bool>>? other = null, Func<DeskMessage, CancellationToken, ValueTask>? pace = null)
    {
        for (int served = 0; served < ExchangesPerStream; served++)
        {
            DeskMessage? request;
            try
            {
                request = await ReadAsync(stream, time, cancellationToken).ConfigureAwait(false);
            }
            catch (WireException e)
            {
                await WriteAsync(stream, new DeskRefused(CreditRefusal.Invalid, $"Not a desk message: {e.Message}"), cancellationToken).ConfigureAwait(false);
                return;
            }
            if (request is null) return;
            if (pace is not null) await pace(request, cancellationToken).ConfigureAwait(false);
            if (request is DeskExchange exchange)
            {
                var result = issuer.Exchange(exchange);
                await WriteAsync(stream, result.Evaluation is { } evaluation ? new DeskExchanged(evaluation) : new DeskRefused(result.Refusal!.Value, result.Text),
                    cancellationToken).ConfigureAwait(false);
            }
            else if (request is DeskPut or DeskGet or DeskAudit or DeskRenew or DeskRemove or DeskDeploy or DeskTopup or DeskQuery or DeskStop)
            {
                if (other is null)
                    await WriteAsync(stream, new DeskRefused(CreditRefusal.NoRoom, "This node hosts nothing: it offers no disk and no CPU."), cancellationToken).ConfigureAwait(false);
                else if (!await other(stream, request, cancellationToken).ConfigureAwait(false))
                    return;
            }
            else
            {
                await WriteAsync(stream, new DeskRefused(CreditRefusal.Invalid, $"A desk takes requests, not {request.Type}."), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// What a request costs the desk, in credits it must evaluate or check (at least one): the
    /// weight by which a node paces its desk against a flood of them.
    /// </summary>
    public static int Weight(DeskMessage request) => request switch
    {
        DeskExchange exchange => Math.Max(1, exchange.Spend.Count + exchange.Mint.Count),
        DeskPut put => Math.Max(1, put.Payment.Count),
        DeskRenew renew => Math.Max(1, renew.Payment.Count),
        DeskDeploy deploy => Math.Max(1, deploy.Payment.Count),
        DeskTopup topup => Math.Max(1, topup.Payment.Count),
        _ => 1,
    };

    /// <summary>
    /// Spends <paramref name="spend"/> (all of one issuer and epoch, the desk's) for fresh credits
    /// of <paramref name="mint"/>'s denominations; throws <see cref="CreditException"/> with the
    /// desk's reason when it refuses, or when its answer does not check.
    /// </summary>
    public static async Task<(IReadOnlyList<Credit> Credits, IReadOnlyList<CreditProof> Keys)> ExchangeAsync(Stream stream, IReadOnlyList<Credit> spend, IReadOnlyList<byte> mint,
        Func<byte, byte[]?>? knownKey, TimeProvider time, CancellationToken cancellationToken)
    {
        var pending = Prepare(spend, mint, out var request);
        await WriteAsync(stream, request, cancellationToken).ConfigureAwait(false);
        DeskMessage? answer;
        try
        {
            answer = await ReadAsync(stream, time, cancellationToken).ConfigureAwait(false);
        }
        catch (WireException e)
        {
            throw new CreditException($"The issuer's desk answered nonsense: {e.Message}");
        }
        return Finish(pending, answer, knownKey);
    }

    /// <summary>The request that spends <paramref name="spend"/> for <paramref name="mint"/>, and what the answer will be finished with.</summary>
    public static PendingCredits Prepare(IReadOnlyList<Credit> spend, IReadOnlyList<byte> mint, out DeskExchange request)
    {
        if (spend.Count is 0 or > CreditCodec.MaxCredits) throw new ArgumentException($"An exchange spends 1 to {CreditCodec.MaxCredits} credits.", nameof(spend));
        var (issuer, epoch) = (spend[0].Issuer, spend[0].Epoch);
        if (spend.Any(c => c.Issuer != issuer || c.Epoch != epoch)) throw new ArgumentException("An exchange spends credits of one issuer and epoch.", nameof(spend));
        var pending = PendingCredits.Prepare(issuer, epoch, mint);
        request = new DeskExchange(epoch, [.. spend.Select(c => c.Token)], pending.Blinded);
        return pending;
    }

    /// <summary>The credits a desk's <paramref name="answer"/> makes of <paramref name="pending"/>, and the keys they were made under.</summary>
    public static (IReadOnlyList<Credit> Credits, IReadOnlyList<CreditProof> Keys) Finish(PendingCredits pending, DeskMessage? answer, Func<byte, byte[]?>? knownKey) => answer switch
    {
        DeskExchanged exchanged => (pending.Finalize(exchanged.Evaluation, knownKey), exchanged.Evaluation.Proofs),
        DeskRefused refused => throw new CreditException($"{pending.Issuer.Brief} refused: {refused.Text}", refused.Reason),
        null => throw new CreditException($"{pending.Issuer.Brief}'s desk closed without an answer: it may be serving all the streams it takes, or have stopped; try again later."),
        _ => throw new CreditException($"{pending.Issuer.Brief}'s desk answered with a {answer.Type}."),
    };

    /// <summary>Reads one frame; null when the stream ended cleanly before it. <paramref name="wait"/>: how long the other side may take (<see cref="Patience"/> if not said).</summary>
    public static async Task<DeskMessage?> ReadAsync(Stream stream, TimeProvider time, CancellationToken cancellationToken, TimeSpan? wait = null)
    {
        using var patience = new CancellationTokenSource(wait ?? Patience, time);
        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, patience.Token);
        var header = new byte[DeskCodec.LengthSize];
        try
        {
            int read = await stream.ReadAtLeastAsync(header, header.Length, throwOnEndOfStream: false, either.Token).ConfigureAwait(false);
            if (read == 0) return null;
            if (read < header.Length) throw new WireException(WireError.Truncated, "The desk stream ended inside a frame header.");
            var body = new byte[DeskCodec.ReadLength(header)];
            read = await stream.ReadAtLeastAsync(body, body.Length, throwOnEndOfStream: false, either.Token).ConfigureAwait(false);
            if (read < body.Length) throw new WireException(WireError.Truncated, "The desk stream ended inside a frame.");
            return DeskCodec.Decode(body);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new WireException(WireError.Truncated, $"Nothing came on the desk stream for {(wait ?? Patience).TotalSeconds:0} s.");
        }
    }

    public static async Task WriteAsync(Stream stream, DeskMessage message, CancellationToken cancellationToken)
    {
        await stream.WriteAsync(DeskCodec.Encode(message), cancellationToken).ConfigureAwait(false);
        await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}
