using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NSec.Cryptography;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Services;

/// <summary>
/// A service this node publishes under a session address (PROTOCOL §9.13). It keeps circuits to
/// <see cref="IntroductionPoints"/> introduction points, which publish its signed record among
/// the ultrapeers and pass it the introductions that clients' lookups bring. For each
/// introduction it can open (sealed to this period's blinded key, never seen before), it builds
/// a circuit to the rendezvous node the client named and meets the client there; the client's
/// streams then reach <see cref="ServiceConnector"/>. The service's node never publishes, and is
/// never named, in the overlay: its introduction points and rendezvous nodes see a circuit.
/// </summary>
public sealed class HostedService : IAsyncDisposable
{
    public const int IntroductionPoints = 2;
    /// <summary>
    /// When records are republished, with a fresh expiry, after the first: soon at first, as the
    /// ultrapeers that stored the first may not be the ones lookups reach once the overlay has
    /// settled (a young network elects its ultrapeers over its first minutes), then well within
    /// the storers' 10-minute route lifetime (PROTOCOL §9.9).
    /// </summary>
    private static readonly TimeSpan[] RepublishAfter = [TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(90), TimeSpan.FromSeconds(200)];
    private static readonly TimeSpan RecordLifetime = TimeSpan.FromHours(1);
    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(10);
    /// <summary>How long a stop waits for the introduction points to take its withdrawal: a stop must not hang on a silent one.</summary>
    private static readonly TimeSpan WithdrawTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan MeetTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan RetryUnreachableAfter = TimeSpan.FromSeconds(2);
    /// <summary>How often the service looks after its introduction points.</summary>
    private static readonly TimeSpan UpkeepInterval = TimeSpan.FromSeconds(1);
    /// <summary>Meetings under way at once; introductions beyond them and <see cref="WaitingIntroductions"/> are dropped.</summary>
    private const int MeetingsAtOnce = 8;
    private const int WaitingIntroductions = 32;
    /// <summary>Introductions remembered against replay: a replayed one would make us build a circuit to a node of the replayer's choice.</summary>
    private const int MaxRemembered = 16384;

    private readonly ServiceKeys _keys;
    /// <summary>
    /// The handshake keys of the periods we answer introductions for, by address period and
    /// blinding period (<see cref="ServiceKeys.BlindingPeriod"/>), derived as needed; under the lock.
    /// </summary>
    private readonly Dictionary<(ulong Period, ulong Blinding), Key> _handshakeKeys = [];
    private readonly ServiceConnector _connector;
    private readonly CircuitPool _pool;
    private readonly NodeId _self;
    private readonly RendezvousPoint _point;
    /// <summary>How long our last circuit to a rendezvous node took: a client met at our own node waits as long, so the time to its Rendezvous2 does not mark our node.</summary>
    private long _lastBuildTicks;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Channel<byte[]> _introductions = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(WaitingIntroductions) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly TaskCompletionSource _published = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _lock = new();
    private readonly List<Circuit> _points = [];
    private readonly List<Circuit> _meetings = [];
    private readonly Dictionary<string, DateTimeOffset> _remembered = [];
    // Its own isolation: no stream of the pool ever rides a circuit of ours.
    private readonly object _isolation = new();
    private Task _running = Task.CompletedTask;
    /// <summary>The periods of the record our introduction points last took, to withdraw; null before any did.</summary>
    private (ulong Period, ulong Blinding)? _publishedPeriods;
    private int _stopped;
    private long _introduced;
    private long _met;
    private long _dropped;

    /// <param name="self">This node's id: a client whose rendezvous node it is, is met here, without a circuit (<paramref name="point"/> holds its circuit).</param>
    public HostedService(string name, ServiceKeys keys, ServiceConnector connector, CircuitPool pool, NodeId self, RendezvousPoint point, TimeProvider time, ILogger logger)
    {
        _self = self;
        _point = point;
        Name = name;
        _keys = keys;
        _connector = connector;
        _pool = pool;
        _time = time;
        _logger = logger;
        Started = time.GetUtcNow();
    }

    public string Name { get; }
    public AddressKind Kind => _keys.Kind;
    public DateTimeOffset Started { get; }

    /// <summary>The address clients reach it by now: for a moving service, this period's.</summary>
    public SessionAddress Address => _keys.Address(_keys.Periods.Number(_time.GetUtcNow()));

    /// <summary>For a moving service, when <see cref="Address"/> gives way to the next period's; null for the others, whose address stays.</summary>
    public DateTimeOffset? AddressUntil => Kind == AddressKind.Moving ? _keys.Periods.End(_keys.Periods.Number(_time.GetUtcNow())) : null;

    /// <summary>
    /// The text form of a moving service's secret (<see cref="ServiceSecret.ToText"/>), which those
    /// who should follow it from period to period need; null for the other kinds. Show it only to
    /// the service's owner.
    /// </summary>
    public string? FollowSecret { get; init; }

    /// <summary>A private service's access key, as text for its clients; null for a public one.</summary>
    public string? AccessKey => _keys.Access?.ToText();

    /// <summary>Completes when the first introduction point publishes the record; until then no lookup can find the service.</summary>
    public Task Published => _published.Task;

    /// <summary>Introduction points publishing the record now.</summary>
    public int IntroductionPointsUp
    {
        get { lock (_lock) return _points.Count(c => c.State == CircuitState.Open); }
    }

    /// <summary>Clients met now.</summary>
    public int OpenMeetings
    {
        get { lock (_lock) return _meetings.Count(c => c.State == CircuitState.Open); }
    }

    /// <summary>Introductions that opened and were new.</summary>
    public long Introduced => Interlocked.Read(ref _introduced);
    /// <summary>Clients met since the service started.</summary>
    public long Met => Interlocked.Read(ref _met);
    /// <summary>Introductions dropped: under load, unreadable, or replayed.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public void Start()
    {
        _running = Task.WhenAll([RunAsync(_stopping.Token), .. Enumerable.Range(0, MeetingsAtOnce).Select(_ => MeetLoopAsync(_stopping.Token))]);
    }

    // ---- Introduction points ----

    private async Task RunAsync(CancellationToken stopping)
    {
        var nextPublish = DateTimeOffset.MinValue;
        int published = 0;
        ServiceRecord? record = null;
        (ulong Period, ulong Blinding) recordPeriods = default;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                var now = _time.GetUtcNow();
                lock (_lock) _points.RemoveAll(c => c.State == CircuitState.Closed);
                // A moving service's address may change while its blinding period does not: either is a new record.
                var periods = CurrentPeriods(now);
                if (record is null || now >= nextPublish || periods != recordPeriods)
                {
                    (record, recordPeriods) = (NewRecord(now, periods), periods);
                    nextPublish = now + RepublishAfter[Math.Min(published++, RepublishAfter.Length - 1)];
                    foreach (var point in Points()) await EstablishAsync(point, record, stopping).ConfigureAwait(false);
                }
                await AddPointsAsync(record, stopping).ConfigureAwait(false);
                if (Points().Count > 0) lock (_lock) _publishedPeriods = recordPeriods;
                await Task.Delay(UpkeepInterval, _time, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                // Stopping.
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A service that stopped publishing on a surprise would vanish without a word.
                _logger.LogWarning(e, "{Service}: looking after its introduction points failed; trying again", Name);
                await Task.Delay(UpkeepInterval, _time, CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    private List<Circuit> Points()
    {
        lock (_lock) return [.. _points];
    }

    /// <summary>The address's period at <paramref name="now"/> and the period its records are blinded for then.</summary>
    private (ulong Period, ulong Blinding) CurrentPeriods(DateTimeOffset now)
    {
        ulong period = _keys.Periods.Number(now);
        return (period, _keys.BlindingPeriod(period, now));
    }

    private ServiceRecord NewRecord(DateTimeOffset now, (ulong Period, ulong Blinding) periods) =>
        _keys.Record(periods.Period, new ServiceDescriptor(HandshakeKey(periods).PublicKey.Export(KeyBlobFormat.RawPublicKey)), now, RecordLifetime, periods.Blinding);

    /// <summary>The handshake key of these periods; keys of periods long past are let go.</summary>
    private Key HandshakeKey((ulong Period, ulong Blinding) periods)
    {
        lock (_lock)
        {
            if (_handshakeKeys.TryGetValue(periods, out var key)) return key;
            foreach (var old in _handshakeKeys.Keys.Where(p => p.Blinding + 1 < periods.Blinding).ToList())
            {
                _handshakeKeys[old].Dispose();
                _handshakeKeys.Remove(old);
            }
            return _handshakeKeys[periods] = _keys.HandshakeKey(periods.Period, periods.Blinding);
        }
    }

    /// <summary>New circuits to introduction points until there are enough, each at a node none of the others ends at.</summary>
    private async Task AddPointsAsync(ServiceRecord record, CancellationToken stopping)
    {
        for (int attempt = 0; attempt < IntroductionPoints * 2 && Points().Count < IntroductionPoints; attempt++)
        {
            Circuit circuit;
            try
            {
                circuit = await _pool.BuildDedicatedAsync(_isolation, stopping, vanguard: true).ConfigureAwait(false);
            }
            catch (StreamException e)
            {
                _logger.LogDebug("No circuit to an introduction point for {Service} yet: {Reason}", Name, e.Message);
                return;
            }
            if (Points().Any(p => p.Hops[^1].Id == circuit.Hops[^1].Id))
            {
                circuit.Destroy(DestroyReason.Finished);
                continue;
            }
            if (await EstablishAsync(circuit, record, stopping).ConfigureAwait(false))
            {
                lock (_lock) _points.Add(circuit);
                _logger.LogInformation("{Service} is published through an introduction point ({Up} of {Wanted})", Name, Points().Count, IntroductionPoints);
                _published.TrySetResult();
            }
        }
    }

    /// <summary>Publishes the record through one introduction point; a point that refuses or is silent is closed.</summary>
    private async Task<bool> EstablishAsync(Circuit circuit, ServiceRecord record, CancellationToken stopping)
    {
        try
        {
            var status = await circuit.EstablishIntroductionAsync(record, OnIntroduction, AnswerTimeout, stopping).ConfigureAwait(false);
            if (status == IntroductionStatus.Publishing) return true;
            _logger.LogDebug("Introduction point {Point} refused {Service}: {Status}", circuit.Hops[^1].Id.Brief, Name, status);
        }
        catch (StreamException e)
        {
            _logger.LogDebug("Introduction point {Point} failed {Service}: {Reason}", circuit.Hops[^1].Id.Brief, Name, e.Message);
        }
        circuit.Destroy(DestroyReason.Finished);
        return false;
    }

    /// <summary>On a circuit's read loop: queue it, or drop it when we are as busy as we will be.</summary>
    private void OnIntroduction(byte[] introduction)
    {
        if (!_introductions.Writer.TryWrite(introduction)) Interlocked.Increment(ref _dropped);
    }

    // ---- Meeting clients ----

    private async Task MeetLoopAsync(CancellationToken stopping)
    {
        try
        {
            await foreach (var sealedIntroduction in _introductions.Reader.ReadAllAsync(stopping).ConfigureAwait(false))
                await MeetAsync(sealedIntroduction, stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private async Task MeetAsync(byte[] sealedIntroduction, CancellationToken stopping)
    {
        if (Open(sealedIntroduction) is not ({ } introduction, var periods))
        {
            Interlocked.Increment(ref _dropped);
            return;
        }
        Interlocked.Increment(ref _introduced);
        var here = introduction.Points.Where(p => p.Node == _self).Select(p => (RendezvousCookie?)p.Cookie).SingleOrDefault();
        var elsewhere = introduction.Points.Where(p => p.Node != _self).ToList();
        // Our own node, when the client offers it among others, is taken as often as one of them
        // drawn at random, so that a client cannot tell which point is ours by how often we come there.
        if (here is { } ours && (elsewhere.Count == 0 || SecureRandom.Instance.Next(introduction.Points.Count) == 0))
        {
            await MeetHereAsync(ours, introduction.ClientKey, periods, stopping).ConfigureAwait(false);
            return;
        }
        Circuit? circuit = null;
        long started = _time.GetTimestamp();
        try
        {
            IReadOnlyList<NodeId> points = [.. elsewhere.Select(p => p.Node)];
            try
            {
                circuit = await _pool.BuildToAsync(points, _isolation, stopping).ConfigureAwait(false);
            }
            catch (StreamException e) when (e.Reason == EndReason.Unreachable)
            {
                // A node that just started learns its partners' partners over a few seconds: look once more.
                await Task.Delay(RetryUnreachableAfter, _time, stopping).ConfigureAwait(false);
                circuit = await _pool.BuildToAsync(points, _isolation, stopping).ConfigureAwait(false);
            }
            Interlocked.Exchange(ref _lastBuildTicks, _time.GetElapsedTime(started).Ticks);
            var point = circuit.Hops[^1].Id;
            var cookie = elsewhere.First(p => p.Node == point).Cookie;
            await circuit.MeetClientAsync(cookie, HandshakeKey(periods), introduction.ClientKey, _connector, MeetTimeout, stopping).ConfigureAwait(false);
            lock (_lock)
            {
                _meetings.RemoveAll(c => c.State == CircuitState.Closed);
                _meetings.Add(circuit);
            }
            Interlocked.Increment(ref _met);
        }
        catch (StreamException e) when (e.Reason == EndReason.Unreachable && circuit is null && here is { } ourCookie)
        {
            // None of the other points is reachable, even on a second look: ours is.
            await MeetHereAsync(ourCookie, introduction.ClientKey, periods, stopping).ConfigureAwait(false);
        }
        catch (StreamException e)
        {
            circuit?.Destroy(DestroyReason.Finished);
            _logger.LogDebug("{Service} could not meet a client at {Points}: {Reason}", Name,
                string.Join(" or ", elsewhere.Select(p => p.Node.Brief)), e.Message);
        }
    }

    /// <summary>
    /// The client offered our own node as a rendezvous node (it cannot know it is ours), and no
    /// circuit can end where it starts: we meet it on the circuit it built to us, after as long as
    /// a circuit to another node took us, so that how fast it was met does not tell it whose node R is.
    /// </summary>
    private async Task MeetHereAsync(RendezvousCookie cookie, byte[] clientKey, (ulong Period, ulong Blinding) periods, CancellationToken stopping)
    {
        await Task.Delay(TimeSpan.FromTicks(Interlocked.Read(ref _lastBuildTicks)), _time, stopping).ConfigureAwait(false);
        if (_point.TakeWaiting(cookie) is not { } client)
        {
            _logger.LogDebug("{Service}: no client waits here under the introduction's cookie", Name);
            return;
        }
        try
        {
            client.MeetClientHere(HandshakeKey(periods), clientKey, _connector);
        }
        catch (StreamException e)
        {
            _logger.LogDebug("{Service} could not meet a client here: {Reason}", Name, e.Message);
            return;
        }
        lock (_lock)
        {
            _meetings.RemoveAll(c => c.State == CircuitState.Closed);
            _meetings.Add(client);
        }
        Interlocked.Increment(ref _met);
    }

    /// <summary>
    /// The introduction, if it is sealed to this service's blinded key of this period or a
    /// neighbouring one (a client's clock may be a little off) and was not seen before.
    /// </summary>
    private (Introduction? Introduction, (ulong Period, ulong Blinding) Periods) Open(byte[] sealedIntroduction)
    {
        var now = _time.GetUtcNow();
        var current = CurrentPeriods(now);
        var periods = current;
        Introduction? opened = null;
        foreach (var candidate in Candidates(current.Period, now))
        {
            using var blinded = _keys.Blind(candidate.Period, candidate.Blinding);
            try
            {
                opened = Introduction.Open(blinded, sealedIntroduction);
                periods = candidate;
                break;
            }
            catch (IntroductionException)
            {
                // Not for this period's key.
            }
        }
        if (opened is null) return (null, periods);
        string replay = Convert.ToHexString(Introduction.ReplayKey(sealedIntroduction));
        lock (_lock)
        {
            if (_remembered.Count >= MaxRemembered)
                foreach (var old in _remembered.Where(r => now - r.Value > RecordLifetime).Select(r => r.Key).ToList()) _remembered.Remove(old);
            if (_remembered.Count >= MaxRemembered || !_remembered.TryAdd(replay, now)) return (null, periods);
        }
        return (opened, periods);
    }

    /// <summary>
    /// The keys a client's introduction may be sealed to (clocks differ): this period's and its
    /// neighbours'; for a moving service, each of its neighbouring addresses' too.
    /// </summary>
    private IEnumerable<(ulong Period, ulong Blinding)> Candidates(ulong period, DateTimeOffset now)
    {
        ulong[] addresses = Kind == AddressKind.Moving ? [period, period - 1, period + 1] : [period];
        foreach (ulong address in addresses)
        {
            ulong blinding = _keys.BlindingPeriod(address, now);
            foreach (ulong candidate in new[] { blinding, blinding - 1, blinding + 1 }) yield return (address, candidate);
        }
    }

    /// <summary>Sends the withdrawal of the periods last published through every introduction point still up, and waits a little for each to take it.</summary>
    private async Task WithdrawAsync()
    {
        (ulong Period, ulong Blinding)? periods;
        lock (_lock) periods = _publishedPeriods;
        if (periods is not { } published) return;
        var withdrawal = _keys.Withdrawal(published.Period, _time.GetUtcNow(), RecordLifetime, published.Blinding);
        await Task.WhenAll(Points().Where(p => p.State == CircuitState.Open).Select(async point =>
        {
            try
            {
                var status = await point.EstablishIntroductionAsync(withdrawal, OnIntroduction, WithdrawTimeout, CancellationToken.None).ConfigureAwait(false);
                _logger.LogDebug("Introduction point {Point} answered {Service}'s withdrawal: {Status}", point.Hops[^1].Id.Brief, Name, status);
            }
            catch (StreamException e)
            {
                _logger.LogDebug("Introduction point {Point} did not take {Service}'s withdrawal: {Reason}", point.Hops[^1].Id.Brief, Name, e.Message);
            }
        })).ConfigureAwait(false);
    }

    /// <summary>Stops publishing and meeting: the introduction points' and clients' circuits close. A later start publishes the address again.</summary>
    public ValueTask DisposeAsync() => StopAsync(withdraw: false);

    /// <summary>
    /// Stops publishing and meeting; with <paramref name="withdraw"/>, first has the introduction
    /// points publish a withdrawal (PROTOCOL §9.9), which replaces the record at the storers it
    /// reaches, so that a lookup of the address fails at once instead of after every meeting a
    /// client would try. For a service that is gone for good: removed, or ephemeral and its node
    /// stopping. A stable service whose node merely restarts is not withdrawn: it comes back.
    /// </summary>
    public async ValueTask StopAsync(bool withdraw)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        _introductions.Writer.TryComplete();
        await _running.ConfigureAwait(false);
        if (withdraw) await WithdrawAsync().ConfigureAwait(false);
        List<Circuit> circuits;
        lock (_lock) circuits = [.. _points, .. _meetings];
        foreach (var circuit in circuits) circuit.Destroy(DestroyReason.Finished);
        lock (_lock)
        {
            foreach (var key in _handshakeKeys.Values) key.Dispose();
            _handshakeKeys.Clear();
        }
        _keys.Dispose();
        _stopping.Dispose();
    }
}
