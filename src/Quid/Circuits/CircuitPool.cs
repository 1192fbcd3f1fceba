using Microsoft.Extensions.Logging;
using Quid.Crypto;
using Quid.Links;
using Quid.Wire;

namespace Quid.Circuits;

public sealed record PathOptions
{
    /// <summary>Hops per circuit: 1 is the seed's base design (a partner is the exit); more trade speed for anonymity.</summary>
    public int Hops { get; init; } = 3;
    /// <summary>New streams stop using a circuit this old; it closes once its last stream ends.</summary>
    public TimeSpan MaxCircuitAge { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>Circuits kept built ahead for applications without credentials, so the first request does not wait.</summary>
    public int Prebuilt { get; init; } = 1;
    /// <summary>A prebuilt circuit's exit must allow these ports.</summary>
    public IReadOnlyList<ushort> PrebuildPorts { get; init; } = [443, 80];
    /// <summary>A hop that failed a circuit (or, when none is to blame, every hop after the first of it) is avoided in new paths for this long.</summary>
    public TimeSpan AvoidFailedHopFor { get; init; } = TimeSpan.FromMinutes(1);
    /// <summary>
    /// How long a build for streams or for a client's rendezvous waits for a path when there is
    /// none yet: for a few seconds after a node starts, or after a partner leaves, its graph is
    /// still growing, and a request then should wait, as Tor holds one while it bootstraps,
    /// rather than fail at once.
    /// </summary>
    public TimeSpan PathPatience { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Picks first hops and next hops: unpredictable, so nobody can foretell a node's paths. Tests inject a seeded one.</summary>
    public Random Random { get; init; } = SecureRandom.Instance;
}

/// <summary>
/// A neighbour that grants us bandwidth, so a first hop: its link, its descriptor, what it grants
/// (kbps), and whether our agreement is private (neither of us publishes it; PROTOCOL §6.6).
/// </summary>
public sealed record FirstHop(ICellPort Link, Descriptor Descriptor, long Kbps, bool Private = false);

/// <summary>
/// What a path may be chosen from, as the node knew it at one moment: its first hops, and the
/// descriptors of their partners, of those partners' partners, and so on as far as a path reaches.
/// </summary>
public sealed record PathGraph(IReadOnlyList<FirstHop> FirstHops, IReadOnlyDictionary<NodeId, Descriptor> Descriptors);

/// <summary>
/// Where the pool learns what paths it may choose: <paramref name="Graph"/> gives a fresh
/// snapshot, asked for once per path choice, so the pool never reads the node's live state from
/// its own threads. Its first argument is how many hops the path may have: the snapshot must
/// hold the descriptors of the nodes that many hops out (first hops are one).
/// </summary>
public sealed record PathSource(NodeId Self, Func<int, CancellationToken, ValueTask<PathGraph>> Graph, object DefaultIsolation);

/// <summary>
/// The circuits our applications use, along paths drawn by <see cref="PathRule"/>: a walk over
/// the graph of agreements whose last hop's exit policy allows the port.
/// Streams with different isolation keys (SOCKS credentials) never share a circuit; a circuit
/// is kept built ahead, rebuilt when it fails, and retired when it grows old. It also builds
/// dedicated circuits, for a rendezvous or an introduction point, which no stream of the pool
/// ever uses: the caller owns them.
/// </summary>
public sealed class CircuitPool(CircuitBuilder builder, PathOptions options, PathSource source, TimeProvider time, ILogger logger)
{
    private const int BuildAttempts = 3;
    /// <summary>Refusals as full one build takes before it insists: each costs a build, not a failure.</summary>
    private const int MaxPassedOver = 4;
    /// <summary>Refusals as full from one first hop, in one build, after which that build draws from our other partners while any leads anywhere.</summary>
    private const int RefusalsToPassOverFirstHop = 2;

    /// <summary>
    /// What one build passes over: next hops refused as full, never drawn again by it; and first
    /// hops that refused several extensions as full, or timed out, drawn again only when no other
    /// leads anywhere.
    /// </summary>
    private sealed class PassedOver
    {
        public HashSet<NodeId> Hops { get; } = [];
        public HashSet<NodeId> FirstHops { get; } = [];
        public bool Any => Hops.Count > 0 || FirstHops.Count > 0;
    }

    private readonly Lock _lock = new();
    private readonly List<Circuit> _circuits = [];
    private readonly Dictionary<NodeId, DateTimeOffset> _avoid = [];
    /// <summary>The service's second hop after each first hop, and until when it is kept (PROTOCOL §9.13.4).</summary>
    private readonly Dictionary<NodeId, Vanguard> _vanguards = [];
    /// <summary>How often a build with no path looks again while it waits for one.</summary>
    private static readonly TimeSpan PathPoll = TimeSpan.FromMilliseconds(250);

    /// <summary>A vanguard's lifetime is the larger of two uniform draws between these, as Tor's layer-two guards'.</summary>
    private static readonly TimeSpan VanguardLifetimeMin = TimeSpan.FromDays(1), VanguardLifetimeMax = TimeSpan.FromDays(12);
    /// <summary>Circuits being built for streams, by isolation and port: streams that arrive meanwhile wait for the same one.</summary>
    private readonly Dictionary<(object Isolation, ushort Port), Task<Circuit>> _building = [];
    private int _prebuilding;

    public int Hops => options.Hops;

    /// <summary>The vanguards kept now, whose lifetimes have not ended: what the node saves, so that a restart draws no new ones.</summary>
    public IReadOnlyList<Vanguard> Vanguards
    {
        get
        {
            var now = time.GetUtcNow();
            lock (_lock) return [.. _vanguards.Values.Where(v => v.Until > now).OrderBy(v => v.First)];
        }
    }

    /// <summary>Takes back the vanguards an earlier run kept (<see cref="Vanguards"/>), before any service circuit is built.</summary>
    public void RestoreVanguards(IEnumerable<Vanguard> kept)
    {
        var now = time.GetUtcNow();
        lock (_lock)
            foreach (var vanguard in kept)
                if (vanguard.Until > now) _vanguards[vanguard.First] = vanguard;
    }

    /// <summary>Open circuits we built for applications, with their paths, for status and tests.</summary>
    public IReadOnlyList<Circuit> Circuits
    {
        get { lock (_lock) return [.. _circuits.Where(c => c.State == CircuitState.Open)]; }
    }

    /// <summary>
    /// Opens a stream to <paramref name="target"/> on a circuit for <paramref name="isolation"/>.
    /// A circuit that fails under it is replaced and the stream tried once more on a new one, and
    /// so is one whose exit has not connected it within <see cref="CircuitOptions.FirstStreamTimeout"/>
    /// (the new one goes around every hop of the slow one but the first, and waits the whole
    /// <see cref="CircuitOptions.StreamTimeout"/>); a circuit whose stream the caller cancels after
    /// waiting as long takes no new streams either; one with all the streams it may have, or whose
    /// exit has no room for more of its streams, goes to another circuit of the isolation, built if
    /// need be; an answer from the destination (refused, unknown name, policy) is final.
    /// </summary>
    public async Task<RelayStream> OpenStreamAsync(StreamTarget target, object isolation, CancellationToken cancellationToken)
    {
        RefuseSessionAddress(target.Host);
        StreamException? last = null;
        HashSet<Circuit>? full = null;
        bool timedOut = false;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            var circuit = await GetCircuitAsync(isolation, target.Port, full, cancellationToken).ConfigureAwait(false);
            var timeout = timedOut ? builder.Options.StreamTimeout : builder.Options.FirstStreamTimeout;
            long started = time.GetTimestamp();
            try
            {
                return await circuit.OpenStreamAsync(target, timeout, cancellationToken).ConfigureAwait(false);
            }
            catch (StreamException e) when (e.Reason is EndReason.CircuitClosed or EndReason.Timeout)
            {
                last = e;
                if (e.Reason is EndReason.Timeout)
                {
                    timedOut = true;
                    SetAsideSlow(circuit, timeout);
                }
                else Retire(circuit);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && time.GetElapsedTime(started) >= builder.Options.FirstStreamTimeout)
            {
                // The application gave up after as long as we give an exit before moving on
                // ourselves (curl's --max-time, a browser's): the next stream must not wait there too.
                SetAsideSlow(circuit, time.GetElapsedTime(started));
                throw;
            }
            catch (StreamException e) when (e.Reason is EndReason.ResourceLimit)
            {
                // Others filled it between our choice and our stream, or the exit still counts
                // streams we have closed, or it has no more room for this circuit's: try another.
                last = e;
                (full ??= []).Add(circuit);
            }
        }
        throw last!;
    }

    /// <summary>Resolves <paramref name="host"/> at the exit of a circuit for <paramref name="isolation"/> (Tor's SOCKS RESOLVE).</summary>
    public async Task<System.Net.IPAddress[]> ResolveAsync(string host, object isolation, CancellationToken cancellationToken)
    {
        RefuseSessionAddress(host);
        var circuit = await GetCircuitAsync(isolation, 443, null, cancellationToken).ConfigureAwait(false);
        return await circuit.ResolveAsync(host, builder.Options.StreamTimeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A <c>.quid</c> name never goes to an exit, whose resolver would send it to DNS: a lookup
    /// there would tell the exit and every resolver on the way which service the user wants.
    /// The node sends streams to <c>.quid</c> names through a rendezvous instead; a resolve of
    /// one (which no service could answer) ends here.
    /// </summary>
    private static void RefuseSessionAddress(string host)
    {
        if (StreamTarget.IsSessionName(host))
            throw new StreamException(EndReason.ResolveFailed, $"{host} is a session address: it has no IP address to resolve, and was sent nowhere.");
    }

    /// <summary>
    /// A circuit for the isolation that allows the port and has room for a stream: one we have,
    /// else the one being built for them, else a new one. A burst of streams thus builds one
    /// circuit, not one each, and the streams one circuit cannot hold wait for the next.
    /// </summary>
    private async Task<Circuit> GetCircuitAsync(object isolation, ushort port, HashSet<Circuit>? full, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task<Circuit> building;
            var now = time.GetUtcNow();
            lock (_lock)
            {
                var ready = _circuits.FirstOrDefault(c => c.State == CircuitState.Open && Equals(c.Isolation, isolation) && !c.IsFull && full?.Contains(c) != true
                    && now - c.CreatedAt < options.MaxCircuitAge && (c.ExitDescriptor?.ExitPolicy.MayAllowPort(port) ?? false));
                if (ready is not null) return ready;
                if (!_building.TryGetValue((isolation, port), out building!))
                {
                    building = BuildForStreamsAsync(isolation, port);
                    _building[(isolation, port)] = building;
                }
            }
            var circuit = await building.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (circuit.State == CircuitState.Open && !circuit.IsFull && full?.Contains(circuit) != true) return circuit;
        }
    }

    /// <summary>Builds a circuit that several streams may be waiting for: no one stream's cancellation stops it.</summary>
    private async Task<Circuit> BuildForStreamsAsync(object isolation, ushort port)
    {
        try
        {
            // Out of the caller's lock, so the build is registered before it can end.
            await Task.Yield();
            return await BuildAsync(isolation, [port], graph: null, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            lock (_lock) _building.Remove((isolation, port));
        }
    }

    /// <summary>
    /// Builds a circuit for the pool's streams along a fresh path whose exit allows the ports. Each
    /// path is chosen from a fresh snapshot of the graph; <paramref name="graph"/>, when given,
    /// serves the first.
    /// </summary>
    private async Task<Circuit> BuildAsync(object isolation, IReadOnlyList<ushort> ports, PathGraph? graph, CancellationToken cancellationToken)
    {
        var circuit = await BuildAlongAsync(isolation, options.Hops, graph, patient: true, (g, passedOver) => ChoosePath(g, ports, targets: null, passedOver),
            g => options.Hops == 1 || g.FirstHops.Count == 0
                ? "No partner grants us bandwidth yet (or none lets traffic exit to this port): still searching for one."
                : $"No {options.Hops}-hop path through our partners and theirs reaches an exit for port {string.Join('/', ports)} yet.",
            cancellationToken).ConfigureAwait(false);
        lock (_lock) _circuits.Add(circuit);
        return circuit;
    }

    /// <summary>
    /// Builds a circuit of <see cref="PathOptions.Hops"/> hops along the path rule, ending at any
    /// node a walk reaches, whatever its exit policy, as nothing leaves it: a client's circuit to a
    /// rendezvous point of its choosing, a service's to an introduction point. It serves only that
    /// purpose, so it is not the pool's: no stream of the pool ever uses it, upkeep never closes
    /// it, and the caller destroys it when done.
    /// </summary>
    /// <param name="vanguard">
    /// A service's circuit: its second hop is the vanguard of its first (PROTOCOL §9.13.4), when it
    /// has three hops or more (with two, the second is the last, and every circuit would end there).
    /// </param>
    public Task<Circuit> BuildDedicatedAsync(object isolation, CancellationToken cancellationToken, bool vanguard = false) =>
        BuildAlongAsync(isolation, options.Hops, graph: null, patient: true, (g, passedOver) => ChoosePath(g, ports: [], targets: null, passedOver, vanguard && options.Hops >= 3),
            g => g.FirstHops.Count == 0
                ? "No partner grants us bandwidth yet: still searching for one."
                : $"No {options.Hops}-hop path through our partners and theirs yet.",
            cancellationToken);

    /// <summary>
    /// Builds a circuit whose last hop is one of <paramref name="targets"/> (a service's circuit to
    /// one of the rendezvous points its client offered, so through the vanguard of its first hop),
    /// along <see cref="PathRule.DrawToAny"/>: of <see cref="PathOptions.Hops"/> hops if such a path
    /// to some target exists, else longer, up to <see cref="Circuit.MaxHopsToRendezvous"/>. Like
    /// <see cref="BuildDedicatedAsync"/>, it is the caller's. Throws <see cref="StreamException"/>
    /// (<see cref="EndReason.Unreachable"/>) when no path through our partners and theirs reaches any.
    /// </summary>
    public Task<Circuit> BuildToAsync(IReadOnlyList<NodeId> targets, object isolation, CancellationToken cancellationToken) =>
        BuildAlongAsync(isolation, Circuit.MaxHopsToRendezvous, graph: null, patient: false, (g, passedOver) => ChoosePath(g, ports: [], targets, passedOver, vanguard: true),
            g => g.FirstHops.Count == 0
                ? $"No partner grants us bandwidth yet, so no path reaches {Briefs(targets)}: still searching for one."
                : $"No path of at most {Circuit.MaxHopsToRendezvous} hops through our partners and theirs reaches {Briefs(targets)}.",
            cancellationToken);

    private static string Briefs(IReadOnlyList<NodeId> nodes) => string.Join(" or ", nodes.Select(n => n.Brief));

    /// <summary>
    /// Builds a circuit along a path <paramref name="choose"/> draws from a fresh snapshot of the
    /// graph (<paramref name="depth"/> hops deep), trying other paths when a hop fails, up to
    /// <see cref="BuildAttempts"/> times; <paramref name="graph"/>, when given, serves the first.
    /// A hop refused only because the hop before it was full (<see cref="ExtendFailure.Full"/>) is
    /// passed over by this build's later draws, not avoided by others: it is busy, not broken, and
    /// the refusal costs no try. A first hop that refuses <see cref="RefusalsToPassOverFirstHop"/>
    /// extensions as full, that refused the circuit itself, or that timed out (or its next hop
    /// did), is passed over too, while another first hop leads anywhere; one that timed out, by
    /// later builds too for a while. After <see cref="MaxPassedOver"/> such refusals, on the last
    /// try, or when no path is left but through such hops, the build insists on a full hop: a slow
    /// circuit beats none. When no path is left (when <paramref name="patient"/>, after
    /// <see cref="PathOptions.PathPatience"/> of looking again every <see cref="PathPoll"/>), throws
    /// <see cref="EndReason.Unreachable"/> with what <paramref name="unreachable"/> says.
    /// </summary>
    private async Task<Circuit> BuildAlongAsync(object isolation, int depth, PathGraph? graph, bool patient,
        Func<PathGraph, PassedOver, (FirstHop First, IReadOnlyList<Descriptor> Hops)?> choose,
        Func<PathGraph, string> unreachable, CancellationToken cancellationToken)
    {
        var busy = new PassedOver();
        var refusalsBy = new Dictionary<NodeId, int>();
        int tries = 0, refusals = 0;
        var waitUntil = patient ? time.GetUtcNow() + options.PathPatience : DateTimeOffset.MinValue;
        while (true)
        {
            graph ??= await source.Graph(depth, cancellationToken).ConfigureAwait(false);
            // Counted by refusals, not by hops: a chosen last hop is never passed over, and may be refused again.
            bool insist = tries == BuildAttempts - 1 || refusals >= MaxPassedOver;
            var path = choose(graph, busy);
            if (path is null && busy.Any)
            {
                path = choose(graph, new PassedOver());
                insist = true;
            }
            if (path is null)
            {
                if (time.GetUtcNow() >= waitUntil) throw new StreamException(EndReason.Unreachable, unreachable(graph));
                graph = null;
                await Task.Delay(PathPoll, time, cancellationToken).ConfigureAwait(false);
                continue;
            }
            graph = null;
            try
            {
                return await builder.BuildAsync(path.Value.First.Link, path.Value.Hops, isolation, cancellationToken, evenIfFull: insist).ConfigureAwait(false);
            }
            catch (StreamException e) when (e.Reason is not EndReason.Unreachable)
            {
                logger.LogDebug("Circuit through {Path} failed: {Reason}", string.Join(" → ", path.Value.Hops.Select(h => h.Id.Brief)), e.Message);
                var firstHop = path.Value.Hops[0].Id;
                var secondHop = path.Value.Hops.Count > 1 ? path.Value.Hops[1].Id : (NodeId?)null;
                if (e.HopFull && e.FailedHop is { } full)
                {
                    busy.Hops.Add(full);
                    refusals++;
                    // Refused by our own partner, the first hop: once it has refused more than one
                    // next hop, what it forwards already fills most of its grants, and paths through
                    // another partner are likelier to have room. On the testbed a survivor's private
                    // first hop refused four next hops in a row after the kills, then carried its new
                    // circuit slowly, and the page waited 18.7 s.
                    if (full == secondHop && (refusalsBy[firstHop] = refusalsBy.GetValueOrDefault(firstHop) + 1) >= RefusalsToPassOverFirstHop)
                        busy.FirstHops.Add(firstHop);
                    continue;
                }
                // Our own partner refused the circuit: it does not admit us now (its grant to us has
                // ended, or has not begun on its side). Another partner is tried first: a desk build
                // asked the one partner three times within 400 ms and failed (seen in the suite).
                if (e.FailedHop == firstHop && e.Reason == EndReason.CircuitClosed) busy.FirstHops.Add(firstHop);
                // The hop to blame, or, when none is named, every hop after the first (which is our
                // own partner: if it is gone, its link is too, and it is no longer a first hop).
                var avoid = e.FailedHop is { } failed ? path.Value.Hops.Skip(1).Where(h => h.Id == failed) : path.Value.Hops.Skip(1);
                Avoid(avoid.Select(h => h.Id));
                // A partner that did not answer, or whose next hop did not, is as likely slow itself:
                // its link full (on the testbed, the over-claimer's, as a client's private first hop,
                // timed out build after build). It is passed over, softly, for a while.
                if (e.Reason == EndReason.Timeout && (e.FailedHop == firstHop || e.FailedHop == secondHop))
                {
                    busy.FirstHops.Add(firstHop);
                    Avoid([firstHop]);
                }
                if (++tries == BuildAttempts) throw;
            }
        }
    }

    /// <summary>Keeps <paramref name="hops"/> out of new paths for <see cref="PathOptions.AvoidFailedHopFor"/>.</summary>
    private void Avoid(IEnumerable<NodeId> hops)
    {
        var until = time.GetUtcNow() + options.AvoidFailedHopFor;
        lock (_lock)
            foreach (var hop in hops) _avoid[hop] = until;
    }

    /// <summary>
    /// A path by <see cref="PathRule"/>, over the snapshot: the node's own first hops and the
    /// descriptors it knows. With <paramref name="targets"/>, one that ends at one of them
    /// (<see cref="PathRule.DrawToAny"/>); else one whose last hop allows <paramref name="ports"/>
    /// (any, when there are none). Never through the next hops <paramref name="passedOver"/> holds;
    /// through the first hops it holds, or that timed out lately, only when no other leads anywhere.
    /// With <paramref name="vanguard"/>, the second hop is the vanguard of the first.
    /// </summary>
    private (FirstHop First, IReadOnlyList<Descriptor> Hops)? ChoosePath(PathGraph graph, IReadOnlyList<ushort> ports, IReadOnlyList<NodeId>? targets, PassedOver passedOver, bool vanguard = false)
    {
        var now = time.GetUtcNow();
        var known = new Dictionary<NodeId, Descriptor>(graph.Descriptors);
        foreach (var hop in graph.FirstHops) known[hop.Descriptor.Id] = hop.Descriptor;
        Dictionary<NodeId, DateTimeOffset> avoid;
        lock (_lock) avoid = new(_avoid);
        // Partners passed over by this build, or that timed out lately: drawn only if no other leads anywhere.
        bool SetAside(FirstHop hop) =>
            passedOver.FirstHops.Contains(hop.Descriptor.Id) || (avoid.TryGetValue(hop.Descriptor.Id, out var until) && until > now);
        var preferred = graph.FirstHops.Where(h => !SetAside(h)).ToList();
        foreach (var hop in passedOver.Hops) avoid[hop] = DateTimeOffset.MaxValue;
        // A target is not avoided for having failed a try: another way to it may serve, and the
        // tries are few. The paths that avoid it are those to other nodes.
        foreach (var end in targets ?? []) avoid.Remove(end);
        var mayFollow = vanguard ? PinVanguards(graph, known, now) : null;
        PathWalk<NodeId> Walk(IEnumerable<FirstHop> firstHops) => new(
            source.Self,
            [.. firstHops.Select(h => (h.Descriptor.Id, h.Kbps, h.Private))],
            id => known.TryGetValue(id, out var d) ? d.Partners : [],
            id => known.TryGetValue(id, out var d) && !d.IsExpired(now) && !(avoid.TryGetValue(id, out var until) && until > now),
            id => known.TryGetValue(id, out var d) && ports.All(p => d.ExitPolicy.MayAllowPort(p)),
            mayFollow);
        IReadOnlyList<NodeId>? Draw(PathWalk<NodeId> walk) => targets is not null
            ? PathRule.DrawToAny(walk, targets, Math.Min(options.Hops, Circuit.MaxHopsToRendezvous), Circuit.MaxHopsToRendezvous, options.Random)
            : PathRule.Draw(walk, options.Hops, options.Random);
        var walk = Walk(preferred);
        var path = Draw(walk);
        // A partner passed over is still better than no path: its other next hops may have room.
        if (path is null && preferred.Count < graph.FirstHops.Count) path = Draw(walk = Walk(graph.FirstHops));
        if (path is null) return null;
        // What the draw chose among, to trace circuits that crowd onto one partner's grant.
        if (logger.IsEnabled(LogLevel.Debug))
            logger.LogDebug("Path {Path} drawn from first hops {FirstHops}; the first hop's descriptor lists {Partners} as partners",
                string.Join(" → ", path.Select(id => id.Brief)),
                string.Join(", ", graph.FirstHops.Select(h => $"{h.Descriptor.Id.Brief} {h.Kbps} kbps{(h.Private ? " private" : "")}")),
                string.Join(", ", known[path[0]].Partners.Select(id => walk.MayRelay(id) ? id.Brief : id.Brief + " (not a hop)")));
        return (graph.FirstHops.First(h => h.Descriptor.Id == path[0]), [.. path.Select(id => known[id])]);
    }

    /// <summary>
    /// Which second hop each first hop may go on to in a service's circuit: its vanguard. A
    /// vanguard is kept while the first hop's descriptor still lists it, until its lifetime ends;
    /// one that failed lately, or whose own descriptor we do not hold now (just after a restart,
    /// or expired), is kept, not replaced, and no path goes through it meanwhile: an adversary who
    /// makes it fail gains no new draw. A first hop with none gets one drawn from its partners.
    /// </summary>
    private Func<NodeId, NodeId, bool> PinVanguards(PathGraph graph, Dictionary<NodeId, Descriptor> known, DateTimeOffset now)
    {
        var drawFrom = new PathWalk<NodeId>(source.Self, [],
            id => known.TryGetValue(id, out var d) ? d.Partners : [],
            id => known.TryGetValue(id, out var d) && !d.IsExpired(now),
            _ => true);
        var pinned = new Dictionary<NodeId, NodeId>();
        lock (_lock)
        {
            foreach (var first in graph.FirstHops.Select(h => h.Descriptor.Id))
            {
                if (_vanguards.TryGetValue(first, out var kept) && kept.Until > now && known[first].Partners.Contains(kept.Hop))
                {
                    pinned[first] = kept.Hop;
                    continue;
                }
                _vanguards.Remove(first);
                if (!PathRule.TryDrawVanguard(drawFrom, first, options.Random, out var hop)) continue;
                var lifetime = VanguardLifetimeMin + (VanguardLifetimeMax - VanguardLifetimeMin) * Math.Max(options.Random.NextDouble(), options.Random.NextDouble());
                _vanguards[first] = new Vanguard(first, hop, now + lifetime);
                pinned[first] = hop;
                logger.LogDebug("Vanguard after {First}: {Hop}, kept until {Until:u}", first.Brief, hop.Brief, now + lifetime);
            }
        }
        return (first, second) => pinned.TryGetValue(first, out var hop) && hop == second;
    }

    /// <summary>
    /// A circuit whose exit has not connected a stream in <paramref name="waited"/> takes no new
    /// streams. Which hop held it up is not known: as after a build that failed with no hop to
    /// blame, every one after the first (our own partner) is avoided for a while.
    /// </summary>
    private void SetAsideSlow(Circuit circuit, TimeSpan waited)
    {
        Retire(circuit);
        Avoid(circuit.Hops.Skip(1).Select(h => h.Id));
        logger.LogDebug("No answer from the exit of {Circuit} within {Seconds:F1} s: its next streams go on another circuit", circuit, waited.TotalSeconds);
    }

    private void Retire(Circuit circuit)
    {
        lock (_lock) _circuits.Remove(circuit);
        if (circuit.StreamCount == 0) circuit.Destroy(DestroyReason.Finished);
    }

    /// <summary>
    /// Regular upkeep: forget closed circuits, close old idle ones, and keep one circuit built
    /// ahead for applications without credentials, so their first request does not wait.
    /// </summary>
    public void Maintain()
    {
        var now = time.GetUtcNow();
        int fresh;
        lock (_lock)
        {
            _circuits.RemoveAll(c => c.State == CircuitState.Closed);
            foreach (var old in _circuits.Where(c => now - c.CreatedAt >= options.MaxCircuitAge && c.StreamCount == 0).ToList())
            {
                _circuits.Remove(old);
                old.Destroy(DestroyReason.Finished);
            }
            foreach (var expired in _avoid.Where(a => a.Value <= now).Select(a => a.Key).ToList()) _avoid.Remove(expired);
            fresh = _circuits.Count(c => Equals(c.Isolation, source.DefaultIsolation) && now - c.CreatedAt < options.MaxCircuitAge / 2
                && options.PrebuildPorts.All(p => c.ExitDescriptor?.ExitPolicy.MayAllowPort(p) ?? false));
        }
        if (fresh >= options.Prebuilt || Interlocked.CompareExchange(ref _prebuilding, 1, 0) != 0) return;
        _ = PrebuildAsync();
    }

    private async Task PrebuildAsync()
    {
        try
        {
            // Off the caller's thread: upkeep must not wait for the graph, which may come from the caller's own loop.
            await Task.Yield();
            var graph = await source.Graph(options.Hops, CancellationToken.None).ConfigureAwait(false);
            if (graph.FirstHops.Count == 0) return;
            var circuit = await BuildAsync(source.DefaultIsolation, options.PrebuildPorts, graph, CancellationToken.None).ConfigureAwait(false);
            logger.LogInformation("Circuit ready: {Path}", string.Join(" → ", circuit.Hops.Select(h => h.Id.Brief)));
        }
        catch (StreamException e)
        {
            logger.LogDebug("No circuit built ahead yet: {Reason}", e.Message);
        }
        finally
        {
            Volatile.Write(ref _prebuilding, 0);
        }
    }
}

/// <summary>A service's vanguard (PROTOCOL §9.13.4): the second hop its circuits take after <paramref name="First"/>, kept until <paramref name="Until"/>.</summary>
public readonly record struct Vanguard(NodeId First, NodeId Hop, DateTimeOffset Until);
