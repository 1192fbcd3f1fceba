using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Quid.Exchange;
using Quid.Links;
using Quid.Wire;

namespace Quid.Circuits;

/// <summary>
/// Unannounced echo probes of our partners, each on a one-hop circuit through the partner that is
/// built on first use and kept: the partner, as that circuit's exit, must return every payload.
/// </summary>
public sealed class Prober(CircuitBuilder builder, TimeProvider time, ILogger logger)
{
    /// <summary>Echoes a probe keeps unanswered.</summary>
    public const int Window = 64;
    /// <summary>The least a paced probe waits for its next echo, in seconds: a wait shorter than the clock's tick would spin.</summary>
    private const double PaceTick = 0.001;

    private readonly ConcurrentDictionary<ICellPort, Task<Circuit>> _circuits = new();

    /// <summary>
    /// Measures what a partner delivers: echo cells with random payloads go out on a one-hop
    /// circuit through it, as many as it returns. From the first echo back, for
    /// <paramref name="duration"/>, every byte it sends us on our circuits (echoes and real
    /// traffic alike, counted in <paramref name="account"/>) counts; an echo must carry the payload
    /// we sent. The first echo may take longer than the measure: behind a slow, loaded uplink (ours
    /// or the partner's) it waits in queues for seconds that say nothing of the partner's rate. A
    /// partner whose first echo is not back within <paramref name="firstEchoWithin"/> of the
    /// probe's start, or whose probe circuit fails or is not built by then, is measured on what it
    /// sent us meanwhile: a small grant full of our own downloads holds the echoes behind them, and
    /// that is delivery all the same; one that sends nothing delivered nothing. After a first
    /// window, echoes go out at no more than <paramref name="echoKbps"/>: the partner's whole idle
    /// capacity, echoed, would fill our own uplink, and what we carry for others would wait.
    /// <paramref name="promisedKbps"/> is for the log only. Returns kbps.
    /// </summary>
    public async Task<double> ProbeAsync(ICellPort link, Descriptor partner, PartnerAccount account, long promisedKbps, double echoKbps, TimeSpan duration,
        TimeSpan firstEchoWithin, CancellationToken cancellationToken)
    {
        // The probe's end is on the node's clock, like every other timeout: first the wait for the
        // first echo, circuit build included, then, from that echo, the measure.
        using var over = new CancellationTokenSource(firstEchoWithin, time);
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, over.Token);
        long startBytes = account.BytesDeliveredToUs, startAt = time.GetTimestamp();
        // How far behind our own link to the partner was: a queue of ours says nothing of its rate.
        var behind = link.Backlog;
        Circuit circuit;
        try
        {
            circuit = await ProbeCircuitAsync(link, partner, waiting.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is StreamException or OperationCanceledException)
        {
            // A CREATE that waited 12 s behind a loaded link was an honest partner's "nothing"
            // (seen on the testbed). A refusal that comes at once waits out the rest of the wait too,
            // so that what the partner sent is measured over the same span whatever the failure.
            try
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, time, waiting.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
            }
            double meanwhile = Kbps(account.BytesDeliveredToUs - startBytes, time.GetElapsedTime(startAt));
            logger.LogDebug("Probe of {Peer}: its probe circuit {Failed} ({Reason}), measured on what it sent meanwhile: {Kbps:F0} of {Promised} kbps; our link to it was {Behind} ms behind, now {Now} ms",
                partner.Id.Brief, e is StreamException ? "failed" : "was not built", e.Message, meanwhile, promisedKbps, (int)behind.TotalMilliseconds, (int)link.Backlog.TotalMilliseconds);
            return meanwhile;
        }
        var outstanding = new ConcurrentDictionary<ulong, byte[]>();
        using var returned = new SemaphoreSlim(0);
        int forged = 0;
        // Each probe marks its payloads, so late replies to an earlier probe are told apart from forgeries.
        ulong probe = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        long firstBytes = 0, firstAt = 0;
        circuit.OnEchoReplies(reply =>
        {
            if (!EchoProbe.TryRead(reply.Span, out var echo) || echo.Probe != probe) return;
            // The rate counts from the first echo back, for a whole duration: filling the pipe is not
            // the partner's slowness, and a late first echo followed by the pipe's contents in a burst
            // must not be measured over the moment that was left.
            if (Interlocked.CompareExchange(ref firstAt, time.GetTimestamp(), 0) == 0)
            {
                Interlocked.Exchange(ref firstBytes, account.BytesDeliveredToUs);
                try
                {
                    over.CancelAfter(duration);
                }
                catch (ObjectDisposedException)
                {
                    // The probe ended as this first echo came: it counts for nothing anyway.
                }
            }
            if (outstanding.TryRemove(echo.Sequence, out var sent) && reply.Span.SequenceEqual(sent))
                returned.Release();
            else
                Interlocked.Increment(ref forged);
        });
        try
        {
            ulong sequence = 0;
            double echoesPerSecond = echoKbps * 1000 / 8 / Cell.Size;
            long echoingSince = time.GetTimestamp();
            try
            {
                while (circuit.State == CircuitState.Open)
                {
                    // One round fills the window once, as far as the pace allows, and then waits:
                    // replies (forged ones too) free slots as fast as a partner sends them, and only
                    // the wait sees the time run out.
                    double paced = Window + time.GetElapsedTime(echoingSince).TotalSeconds * echoesPerSecond - sequence;
                    int room = (int)Math.Min(Window - outstanding.Count, Math.Floor(paced));
                    for (; room > 0; room--, paced--)
                    {
                        var payload = new byte[EchoProbe.Size];
                        new EchoProbe(probe, ++sequence).Write(payload);
                        outstanding[sequence] = payload;
                        if (!circuit.SendRelay(RelayCommand.Echo, 0, payload)) break;
                    }
                    if (paced < 1 && outstanding.Count < Window)
                        await Task.Delay(TimeSpan.FromSeconds(Math.Max((1 - paced) / echoesPerSecond, PaceTick)), time, waiting.Token).ConfigureAwait(false);
                    else
                        await returned.WaitAsync(waiting.Token).ConfigureAwait(false);
                    // Every good reply woke us once; one wake is enough to refill.
                    while (returned.Wait(0, CancellationToken.None))
                    {
                    }
                }
            }
            catch (OperationCanceledException) when (over.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                // Time is up: what came back so far is the measure.
            }
            long end = account.BytesDeliveredToUs;
            long first = Interlocked.Read(ref firstAt);
            // An echo that does not carry what we sent is a lie about capacity: it counts for nothing.
            if (Volatile.Read(ref forged) > 0)
            {
                logger.LogDebug("Probe of {Peer}: {Forged} echoes not as sent, measured at nothing", partner.Id.Brief, Volatile.Read(ref forged));
                return 0;
            }
            var elapsed = time.GetElapsedTime(first == 0 ? startAt : first);
            double kbps = Kbps(end - (first == 0 ? startBytes : Interlocked.Read(ref firstBytes)), elapsed);
            // How it ended, so that a verdict can be traced: the first echo's wait, or none at all.
            if (first == 0)
                logger.LogDebug("Probe of {Peer}: no echo within {Wait:F1} s, measured on what it sent meanwhile: {Kbps:F0} of {Promised} kbps; our link to it was {Behind} ms behind, now {Now} ms",
                    partner.Id.Brief, firstEchoWithin.TotalSeconds, kbps, promisedKbps, (int)behind.TotalMilliseconds, (int)link.Backlog.TotalMilliseconds);
            else
                logger.LogDebug("Probe of {Peer}: first echo after {FirstEcho:F1} s, {Kbps:F0} of {Promised} kbps over {Elapsed:F1} s",
                    partner.Id.Brief, time.GetElapsedTime(startAt, first).TotalSeconds, kbps, promisedKbps, elapsed.TotalSeconds);
            return kbps;
        }
        finally
        {
            circuit.OnEchoReplies(null);
        }
    }

    private static double Kbps(long bytes, TimeSpan elapsed) => elapsed <= TimeSpan.Zero ? 0 : bytes * 8 / 1000.0 / elapsed.TotalSeconds;

    /// <summary>The one-hop circuit probes of this partner use, built on first use and kept.</summary>
    private async Task<Circuit> ProbeCircuitAsync(ICellPort link, Descriptor partner, CancellationToken cancellationToken)
    {
        // A probe circuit went with its link.
        foreach (var closed in _circuits.Keys.Where(l => !l.IsOpen)) _circuits.TryRemove(closed, out _);
        while (true)
        {
            var building = _circuits.GetOrAdd(link, _ => builder.BuildAsync(link, [partner], isolation: null, CancellationToken.None));
            try
            {
                var circuit = await building.WaitAsync(cancellationToken).ConfigureAwait(false);
                if (circuit.State == CircuitState.Open) return circuit;
            }
            catch (StreamException)
            {
                _circuits.TryRemove(new KeyValuePair<ICellPort, Task<Circuit>>(link, building));
                throw;
            }
            _circuits.TryRemove(new KeyValuePair<ICellPort, Task<Circuit>>(link, building));
        }
    }
}
