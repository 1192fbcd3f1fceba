using Microsoft.Extensions.Logging;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Services;

/// <summary>
/// Reaches <c>.quid</c> names for the proxies (PROTOCOL §9.13). For each service and isolation
/// it builds one circuit to a rendezvous node R of its own choosing (the circuit's last hop),
/// has R wait under a fresh cookie, and asks R to look the service up, carrying an introduction
/// sealed to the service's blinded key: R's node, the cookie, our handshake key. The lookup's
/// answer is the service's record, whose sealed body gives the service's handshake key; the
/// service meanwhile got the introduction through its introduction point, built a circuit to R
/// and met us there. Streams then go over that circuit to the service; later streams to the
/// same service reuse it. The name never reaches an exit or a resolver.
/// </summary>
public sealed class ServiceClient(CircuitPool pool, CircuitOptions options, TimeProvider time, ILogger logger)
{
    /// <summary>A lookup's widening steps and its wait after the last take up to 8 s with 3 ultrapeers, 11 s with 6 (PROTOCOL §9.9); the answer then has a circuit to cross.</summary>
    private static readonly TimeSpan LookupTimeout = TimeSpan.FromSeconds(15);
    /// <summary>The introduction's way to the service, and its circuit to R, up to 7 hops.</summary>
    private static readonly TimeSpan MeetTimeout = TimeSpan.FromSeconds(12);
    /// <summary>
    /// A service that found no way to any of the points we offered is tried again through others;
    /// each point that failed is avoided.
    /// </summary>
    private const int MeetAttempts = 3;
    /// <summary>
    /// The work each attempt's introduction carries (PROTOCOL §9.14): none at first; then, in case
    /// the introduction point was flooded and passed others first, 2^16 hashes (35–50 ms of a
    /// core here), then 2^20 (0.55–0.8 s).
    /// </summary>
    private static readonly int[] EffortByAttempt = [0, 16, 20];
    /// <summary>Circuits built in search of a last hop not yet tried, before one that was is used anyway; for each point offered.</summary>
    private const int BuildsPerAttempt = 3;
    /// <summary>A rendezvous this old closes once it has no stream, as the pool's circuits do.</summary>
    private static readonly TimeSpan IdleLifetime = TimeSpan.FromMinutes(10);

    private readonly Lock _lock = new();
    private readonly Dictionary<(string Address, object Isolation), Task<Circuit>> _meetings = [];
    /// <summary>Access keys of private services we were given, by address.</summary>
    private readonly Dictionary<string, ServiceSecret> _access = [];
    /// <summary>
    /// Moving services we follow, by the name this node's proxies reach them by (<c>NAME.quid</c>,
    /// lower case): each period's address, and the access key of a private one, follow from the keys.
    /// </summary>
    private readonly Dictionary<string, ServiceKeys> _follows = [];

    /// <summary>
    /// Follows the moving service whose secret is <paramref name="secret"/> under
    /// <paramref name="name"/>: from now on <c>NAME.quid</c> through this node's proxies reaches
    /// the service at whatever its address is when the stream opens. <paramref name="access"/> is
    /// its access key if it is private. A name followed already is followed anew; the client
    /// owns <paramref name="access"/> from here on. Returns the address now.
    /// </summary>
    public SessionAddress Follow(string name, ServiceSecret secret, ServiceSecret? access)
    {
        FollowName.Check(name);
        var keys = ServiceKeys.Moving(secret, access: access);
        lock (_lock)
        {
            if (_follows.Remove(name.ToLowerInvariant(), out var old)) old.Dispose();
            _follows[name.ToLowerInvariant()] = keys;
            return keys.Address(keys.Periods.Number(time.GetUtcNow()));
        }
    }

    /// <summary>Stops following <paramref name="name"/>; false if it was not followed.</summary>
    public bool Unfollow(string name)
    {
        lock (_lock)
        {
            if (!_follows.Remove(name.ToLowerInvariant(), out var keys)) return false;
            keys.Dispose();
            return true;
        }
    }

    /// <summary>What we follow: each name, its address now, and when that gives way to the next.</summary>
    public IReadOnlyList<(string Name, SessionAddress Address, DateTimeOffset Until)> Follows
    {
        get
        {
            var now = time.GetUtcNow();
            lock (_lock)
                return [.. _follows.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f =>
                {
                    ulong period = f.Value.Periods.Number(now);
                    return (f.Key, f.Value.Address(period), f.Value.Periods.End(period));
                })];
        }
    }

    /// <summary>
    /// Remembers the access key of the private service at <paramref name="address"/>: without it,
    /// the service cannot be found (its lookup id needs the key). The client owns the key from
    /// here on; a newer key for the same address replaces it.
    /// </summary>
    public void AddAccess(SessionAddress address, ServiceSecret access)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(access);
        lock (_lock)
        {
            if (_access.Remove(address.ToString(), out var old)) old.Dispose();
            _access[address.ToString()] = access;
        }
    }

    /// <summary>Forgets the access key of the private service at <paramref name="address"/>; false if we held none.</summary>
    public bool RemoveAccess(SessionAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        lock (_lock)
        {
            if (!_access.Remove(address.ToString(), out var key)) return false;
            key.Dispose();
            return true;
        }
    }

    /// <summary>Circuits joined to a service now, for status and tests.</summary>
    public IReadOnlyList<Circuit> Meetings
    {
        get
        {
            lock (_lock)
                return [.. _meetings.Values.Where(t => t.IsCompletedSuccessfully && t.Result.State == CircuitState.Open).Select(t => t.Result)];
        }
    }

    /// <summary>
    /// Opens a stream to a <c>.quid</c> <paramref name="target"/>. A name that is no address, or a
    /// service the network does not know, fails with <see cref="EndReason.ResolveFailed"/>, as a
    /// name that does not exist.
    /// </summary>
    public async Task<RelayStream> OpenStreamAsync(StreamTarget target, object isolation, CancellationToken cancellationToken)
    {
        var (address, access) = Resolve(target.Host);
        // The service sees the address it is reached by, never the name we follow it under.
        target = target with { Host = address.ToString() };
        StreamException? last = null;
        for (int attempt = 0; attempt < 2; attempt++)
        {
            var circuit = await MeetingFor(address, isolation, access).WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                return await circuit.OpenStreamAsync(target, options.StreamTimeout, cancellationToken).ConfigureAwait(false);
            }
            catch (StreamException e) when (e.Reason is EndReason.CircuitClosed or EndReason.Timeout)
            {
                // The rendezvous broke (R or a hop went): meet again.
                last = e;
                Forget(address, isolation, circuit);
            }
        }
        throw last!;
    }

    /// <summary>
    /// The address a <c>.quid</c> host names, with the access key we hold for it: a name we follow
    /// gives its service's address of this period; any other host must be an address.
    /// </summary>
    private (SessionAddress Address, ServiceSecret? Access) Resolve(string host)
    {
        lock (_lock)
        {
            if (host.EndsWith(SessionAddress.Suffix, StringComparison.OrdinalIgnoreCase)
                && _follows.TryGetValue(host[..^SessionAddress.Suffix.Length].ToLowerInvariant(), out var followed))
                return (followed.Address(followed.Periods.Number(time.GetUtcNow())), followed.Access);
        }
        try
        {
            var address = SessionAddress.Parse(host);
            lock (_lock) return (address, _access.GetValueOrDefault(address.ToString()));
        }
        catch (SessionAddressException e)
        {
            throw new StreamException(EndReason.ResolveFailed, $"{host} is not a session address, nor a name this node follows: {e.Message}");
        }
    }

    /// <summary>The rendezvous for this service and isolation: one that is open, the one being made, or a new one; streams that come meanwhile wait for the same.</summary>
    private Task<Circuit> MeetingFor(SessionAddress address, object isolation, ServiceSecret? access)
    {
        var key = (address.ToString(), isolation);
        lock (_lock)
        {
            if (_meetings.TryGetValue(key, out var meeting) && !(meeting.IsFaulted || meeting.IsCanceled
                || (meeting.IsCompletedSuccessfully && meeting.Result.State != CircuitState.Open)))
                return meeting;
            meeting = MeetAsync(address, access);
            _meetings[key] = meeting;
            return meeting;
        }
    }

    private void Forget(SessionAddress address, object isolation, Circuit circuit)
    {
        lock (_lock)
        {
            var key = (address.ToString(), isolation);
            if (_meetings.TryGetValue(key, out var meeting) && meeting.IsCompletedSuccessfully && meeting.Result == circuit) _meetings.Remove(key);
        }
        circuit.Destroy(DestroyReason.Finished);
    }

    private async Task<Circuit> MeetAsync(SessionAddress address, ServiceSecret? access)
    {
        // Out of the caller's lock.
        await Task.Yield();
        var periods = ServicePeriod.ForAddress(address);
        ulong period = periods.Number(time.GetUtcNow());
        // Without a private service's access key, this is the lookup of a name nobody publishes.
        var blinded = periods.BlindedKey(address.PublicKey, period, access);
        var lookupId = periods.LookupId(blinded, period);
        StreamException? last = null;
        var failed = new HashSet<NodeId>();
        for (int attempt = 0; attempt < MeetAttempts; attempt++)
        {
            List<(Circuit Circuit, RendezvousCookie Cookie)> waiting = [];
            Circuit? met = null;
            try
            {
                waiting = await WaitAtNewPointsAsync(failed).ConfigureAwait(false);
                met = await MeetAsync(waiting, address, periods, period, blinded, lookupId, access, EffortByAttempt[Math.Min(attempt, EffortByAttempt.Length - 1)]).ConfigureAwait(false);
                // Which services this node visits is the user's business: never above Debug.
                logger.LogDebug("Met {Address} at {Point}, of {Offered} offered", address.Brief, met.Hops[^2].Id.Brief, waiting.Count);
                return met;
            }
            // No path at all (the pool waited for one) is not mended by other points.
            catch (Exception e) when (e is StreamException { Reason: not (EndReason.ResolveFailed or EndReason.Unreachable) } or RendezvousException)
            {
                // Every point refused us, or the service found no way to any of them (or the meeting failed): others may do.
                last = e as StreamException ?? new StreamException(EndReason.ResourceLimit, e.Message);
                logger.LogDebug("Could not meet {Address} through {Points}: {Reason}", address.Brief, string.Join(" or ", waiting.Select(w => w.Circuit.Hops[^1].Id.Brief)), e.Message);
                foreach (var (circuit, _) in waiting) failed.Add(circuit.Hops[^1].Id);
            }
            finally
            {
                foreach (var (circuit, _) in waiting)
                    if (circuit != met) circuit.Destroy(DestroyReason.Finished);
            }
        }
        throw last!;
    }

    /// <summary>
    /// Circuits of our own (a rendezvous circuit carries nothing but one service's streams), up to
    /// <see cref="Introduction.MaxPoints"/> built at once, each waiting at its last hop under a
    /// cookie of its own: the points the introduction offers. Their last hops differ and, if a few
    /// tries find such, have not failed us yet. A point that refuses its cookie (it holds as many
    /// as it will) is dropped and counts as failed. Throws what the first build or refusal threw
    /// when no circuit is left.
    /// </summary>
    private async Task<List<(Circuit Circuit, RendezvousCookie Cookie)>> WaitAtNewPointsAsync(HashSet<NodeId> failed)
    {
        var taken = new HashSet<NodeId>();
        var builds = Enumerable.Range(0, Introduction.MaxPoints).Select(_ => BuildToNewPointAsync(failed, taken)).ToList();
        try
        {
            await Task.WhenAll(builds).ConfigureAwait(false);
        }
        catch when (builds.Any(b => b.IsCompletedSuccessfully))
        {
            // Fewer points, but some.
        }
        var circuits = new List<Circuit>();
        foreach (var circuit in builds.Where(b => b.IsCompletedSuccessfully).Select(b => b.Result))
        {
            if (circuits.Any(c => c.Hops[^1].Id == circuit.Hops[^1].Id)) circuit.Destroy(DestroyReason.Finished);
            else circuits.Add(circuit);
        }
        var waiting = circuits.Select(c => (Circuit: c, Cookie: RendezvousCookie.Random())).ToList();
        var establishing = waiting.Select(w => w.Circuit.EstablishRendezvousAsync(w.Cookie, MeetTimeout, CancellationToken.None)).ToList();
        try
        {
            await Task.WhenAll(establishing).ConfigureAwait(false);
        }
        catch when (establishing.Any(e => e.IsCompletedSuccessfully))
        {
            // Fewer points, but some.
        }
        catch
        {
            foreach (var (circuit, _) in waiting)
            {
                failed.Add(circuit.Hops[^1].Id);
                circuit.Destroy(DestroyReason.Finished);
            }
            throw;
        }
        for (int i = waiting.Count - 1; i >= 0; i--)
        {
            if (establishing[i].IsCompletedSuccessfully) continue;
            logger.LogDebug("Rendezvous point {Point} refused us: {Reason}", waiting[i].Circuit.Hops[^1].Id.Brief, establishing[i].Exception?.InnerException?.Message);
            failed.Add(waiting[i].Circuit.Hops[^1].Id);
            waiting[i].Circuit.Destroy(DestroyReason.Finished);
            waiting.RemoveAt(i);
        }
        return waiting;
    }

    /// <summary>
    /// A circuit of our own whose last hop, R, has not failed us yet and is not one that another
    /// build of this attempt has <paramref name="taken"/> (which it then takes), if a few tries find one.
    /// </summary>
    private async Task<Circuit> BuildToNewPointAsync(HashSet<NodeId> failed, HashSet<NodeId> taken)
    {
        for (int build = 1; ; build++)
        {
            var circuit = await pool.BuildDedicatedAsync(new object(), CancellationToken.None).ConfigureAwait(false);
            var point = circuit.Hops[^1].Id;
            lock (taken)
                if ((!failed.Contains(point) && taken.Add(point)) || build == BuildsPerAttempt) return circuit;
            circuit.Destroy(DestroyReason.Finished);
        }
    }

    /// <summary>
    /// Looks the service up through the first of <paramref name="waiting"/>, with an introduction
    /// that offers every one of their points, and returns the circuit the service met us on.
    /// </summary>
    private async Task<Circuit> MeetAsync(List<(Circuit Circuit, RendezvousCookie Cookie)> waiting, SessionAddress address, ServicePeriod periods, ulong period,
        byte[] blinded, byte[] lookupId, ServiceSecret? access, int effort)
    {
        var ephemeral = ServiceHandshake.NewEphemeral();
        Ntor.Client? handshake = null;
        try
        {
            var clientKey = ephemeral.PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey);
            var introduction = Introduction.Seal(blinded, new Introduction([.. waiting.Select(w => (w.Circuit.Hops[^1].Id, w.Cookie))], clientKey));
            if (effort > 0)
            {
                var sealedIntroduction = introduction;
                long epoch = IntroductionWork.Epoch(time.GetUtcNow());
                introduction = await Task.Run(() => IntroductionWork.Solve(sealedIntroduction, effort, epoch, CancellationToken.None)).ConfigureAwait(false);
            }
            var record = await waiting[0].Circuit.LookupAsync(lookupId, introduction, LookupTimeout, CancellationToken.None).ConfigureAwait(false)
                ?? throw new StreamException(EndReason.ResolveFailed, $"{address} was not found: no service publishes it now (or it is private and this is not its key).");
            var descriptor = Open(record, address, periods, period, lookupId, access)
                ?? throw new StreamException(EndReason.ResolveFailed, $"{address} has stopped: its publisher withdrew it (at {record.Published:yyyy-MM-dd HH:mm:ss} UTC).");
            handshake = ServiceHandshake.Start(descriptor.HandshakeKey, ephemeral);
            // The service comes to one point: every circuit waits with the same handshake, and the first it meets us on is ours.
            var meetings = waiting.Select(w => w.Circuit.MeetServiceAsync(handshake, MeetTimeout, CancellationToken.None)).ToList();
            var pending = new List<Task>(meetings);
            while (true)
            {
                var done = await Task.WhenAny(pending).ConfigureAwait(false);
                if (done.IsCompletedSuccessfully) return waiting[meetings.IndexOf(done)].Circuit;
                pending.Remove(done);
                // Each wait ends in time, so every point has failed once none is pending: the last one's reason stands for all.
                if (pending.Count == 0) await done.ConfigureAwait(false);
            }
        }
        finally
        {
            // The handshake owns the ephemeral key once it exists; its keys are in the virtual hop by now.
            if (handshake is null) ephemeral.Dispose();
            else handshake.Dispose();
        }
    }

    /// <summary>
    /// The record R passed us, checked as a storer checks it, and for the very lookup id we asked:
    /// R could hand us a record of its own making, sealed for the address (which it may know),
    /// but not signed under the service's blinded key. Null for the service's withdrawal.
    /// </summary>
    private ServiceDescriptor? Open(ServiceRecord record, SessionAddress address, ServicePeriod periods, ulong period, byte[] lookupId, ServiceSecret? access)
    {
        if (!record.LookupId.SequenceEqual(lookupId) || record.Period != period
            || record.Verify(time.GetUtcNow(), TimeSpan.FromMinutes(5)) is not null)
            throw new StreamException(EndReason.Protocol, $"The rendezvous node answered the lookup of {address.Brief} with a record that is not the service's.");
        if (record.IsWithdrawal) return null;
        try
        {
            return ServiceDescriptor.Open(record, address, periods, access);
        }
        catch (ServiceDescriptorException e)
        {
            throw new StreamException(EndReason.Protocol, $"{address.Brief}'s record cannot be read: {e.Message}");
        }
    }

    /// <summary>Closes old rendezvous circuits without streams; regular upkeep.</summary>
    public void Maintain()
    {
        var now = time.GetUtcNow();
        List<Circuit> idle = [];
        lock (_lock)
        {
            foreach (var (key, meeting) in _meetings.ToList())
            {
                if (!meeting.IsCompleted) continue;
                if (!meeting.IsCompletedSuccessfully || meeting.Result.State != CircuitState.Open) _meetings.Remove(key);
                else if (meeting.Result.StreamCount == 0 && now - meeting.Result.CreatedAt >= IdleLifetime)
                {
                    _meetings.Remove(key);
                    idle.Add(meeting.Result);
                }
            }
        }
        foreach (var circuit in idle) circuit.Destroy(DestroyReason.Finished);
    }
}

/// <summary>The names moving services are followed under (<see cref="ServiceClient.Follow"/>): reached as <c>NAME.quid</c>, and too short to be taken for an address.</summary>
public static class FollowName
{
    public const int MaxLength = 40;

    public static void Check(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is 0 or > MaxLength || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            throw new ArgumentException($"'{name}' is not a name to follow a service under: use 1 to {MaxLength} letters, digits and dashes (it is reached as NAME.quid).");
    }
}
