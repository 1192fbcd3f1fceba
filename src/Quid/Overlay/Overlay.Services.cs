using Quid.Crypto;
using Quid.Wire;

namespace Quid.Overlay;

/// <summary>
/// Service records among the ultrapeers (PROTOCOL §9.9). An introduction point floods its
/// service's record a few ultrapeer hops (<see cref="OverlayOptions.RecordTtl"/>); every ultrapeer
/// it reaches stores it with the neighbour it came from, so a route leads back to the
/// introduction point. A lookup widens step by step from a TTL of 1 (<see cref="LookupPlan"/>)
/// until something answers; the first ultrapeers that hold the record answer back
/// the way the lookup came and pass its introduction along the record's route, so one trip does
/// lookup and introduction. Two floods of reach r and R among U ultrapeers miss each other with a
/// chance of about (1 − R/U)^r: publishing wide and looking up narrow keeps lookups cheap.
/// A route can lead nowhere by the time an introduction follows it (a link closed, or the
/// introduction point lost its service), so an introduction that finds no way on comes back as
/// <see cref="IntroduceFailedMessage"/>: each node it passes forgets that route, the holder tries
/// its next one, and a holder with none left sends the failure back the way the lookup came,
/// which goes on to other holders.
/// </summary>
public sealed partial class Overlay
{
    private const int MaxOwnLookups = 64;
    private const int MaxOwnPublishes = 64;
    private const int MaxIntroductionsSeen = 1024;
    private const int MaxIntroductionsCarried = 4096;
    private const int MaxIntroductionsHeld = 1024;

    /// <summary>Records we store as an ultrapeer, by lookup id.</summary>
    private readonly Dictionary<LookupKey, StoredRecord> _records = [];
    /// <summary>The same records by the publications that reached us, to pass introductions on.</summary>
    private readonly Dictionary<QueryId, StoredRecord> _recordsByPublish = [];
    /// <summary>Records we published as an introduction point, until their routes expire.</summary>
    private readonly Dictionary<QueryId, DateTimeOffset> _ownPublishes = [];
    /// <summary>Our lookups, by their id.</summary>
    private readonly Dictionary<QueryId, OwnLookup> _ownLookups = [];
    /// <summary>Lookups whose introduction we already handed over, so that copies from several holders count once.</summary>
    private readonly Dictionary<QueryId, DateTimeOffset> _introductionsSeen = [];
    /// <summary>Introductions we passed along a publication (or handed over as its introduction point), by lookup and publication: where a failure goes back.</summary>
    private readonly Dictionary<(QueryId Lookup, QueryId Publish), CarriedIntroduction> _introductionsCarried = [];
    /// <summary>Introductions we sent as a holder of the record, by lookup: what a failed route is replaced with.</summary>
    private readonly Dictionary<QueryId, HeldIntroduction> _introductionsHeld = [];

    /// <summary>A 32-byte lookup id as a dictionary key.</summary>
    private readonly record struct LookupKey(UInt128 High, UInt128 Low)
    {
        public static LookupKey Of(ReadOnlySpan<byte> id) =>
            new(System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(id), System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(id[16..]));
    }

    /// <summary>A way back to an introduction point: the publication that came, and the neighbour it came from (ourselves when we published it).</summary>
    private readonly record struct RecordRoute(QueryId Publish, NodeId Via, DateTimeOffset Refreshed);

    private sealed class StoredRecord(LookupKey key, ServiceRecord record)
    {
        public LookupKey Key { get; } = key;
        public ServiceRecord Record { get; set; } = record;
        /// <summary>Freshest first.</summary>
        public List<RecordRoute> Routes { get; } = [];
    }

    /// <summary>An introduction on its way: who passed it to us (ourselves when we hold the record), and whom we passed it to (ourselves as its introduction point).</summary>
    private readonly record struct CarriedIntroduction(NodeId Back, NodeId To, DateTimeOffset Until);

    /// <summary>A lookup's introduction we sent along the routes of a record we hold: tried publications, and how many of them have not failed yet.</summary>
    private sealed class HeldIntroduction(StoredRecord stored, byte[] introduction, DateTimeOffset until)
    {
        public StoredRecord Stored { get; } = stored;
        public byte[] Introduction { get; } = introduction;
        public DateTimeOffset Until { get; } = until;
        public HashSet<QueryId> Tried { get; } = [];
        public int Pending { get; set; }
    }

    private sealed class OwnLookup(QueryId id, LookupKey key, byte[] introduction, DateTimeOffset started, Widening widening)
    {
        public QueryId Id { get; } = id;
        public LookupKey Key { get; } = key;
        public byte[] Introduction { get; } = introduction;
        public DateTimeOffset Started { get; } = started;
        public Widening Widening { get; } = widening;
        /// <summary>When its last step went out: it fails LookupTimeout after.</summary>
        public DateTimeOffset LastStep { get; set; } = started;
        /// <summary>Whether the record (or the failure) was reported.</summary>
        public bool Answered { get; set; }
        /// <summary>Holders that answered, and those of them whose introduction then found no way to the service.</summary>
        public int Holders { get; set; }
        public int HoldersFailed { get; set; }
        /// <summary>Some holder still carries our introduction (or told us the service stopped): the lookup goes no wider.</summary>
        public bool Carried => Holders > HoldersFailed;
    }

    /// <summary>Records we hold (as an ultrapeer, or a leaf that carried them up): for status and tests.</summary>
    public int StoredRecordCount => _records.Count;

    /// <summary>Whether we hold a current record of this lookup id: for the simulator's diagnosis of lookups and tests.</summary>
    public bool Holds(ReadOnlySpan<byte> lookupId) => _records.TryGetValue(LookupKey.Of(lookupId), out var stored) && !stored.Record.IsExpired(Now);

    /// <summary>How many of our neighbours are ultrapeers.</summary>
    public int UltrapeerNeighbourCount => UltrapeerNeighbours;

    /// <summary>
    /// Publishes a service record as its introduction point: floods it among ultrapeers (through
    /// our ultrapeers when we are a leaf), each of which stores it with the way back to us. Called
    /// again, with a fresh id, well within <see cref="OverlayOptions.RecordRouteLifetime"/>.
    /// </summary>
    public (QueryId Id, IReadOnlyList<OverlayAction> Actions) PublishRecord(ServiceRecord record)
    {
        var id = QueryId.New(_options.Random);
        var now = Now;
        var actions = new List<OverlayAction>();
        if (_ownPublishes.Count >= MaxOwnPublishes) _ownPublishes.Remove(_ownPublishes.MinBy(p => p.Value).Key);
        _ownPublishes[id] = now + _options.RecordRouteLifetime;
        _routes.TryAdd(id, _identity.Id, now);
        if (Role == OverlayRole.Ultrapeer) Store(record, id, _identity.Id, now);
        // A leaf stores only what it carries up, but what it holds of this service must not
        // outlast the service's own word: its withdrawal above all.
        else if (_records.TryGetValue(LookupKey.Of(record.LookupId), out var held) && record.Replaces(held.Record)) held.Record = record;
        var publish = new RecordPublishMessage(id, Math.Min(_options.RecordTtl, QueryMessage.MaxTtl), record);
        foreach (var target in FloodTargets()) actions.Add(new SendOverlayMessage(target, publish));
        return (id, actions);
    }

    /// <summary>
    /// Looks up a service by its lookup id, carrying <paramref name="introduction"/> to it. The
    /// answer comes as <see cref="ServiceRecordFound"/> or, LookupTimeout after the widest step,
    /// <see cref="ServiceLookupFailed"/>, under the id returned.
    /// </summary>
    public (QueryId Id, IReadOnlyList<OverlayAction> Actions) Lookup(ReadOnlySpan<byte> lookupId, byte[] introduction)
    {
        if (lookupId.Length != ServiceRecord.LookupIdSize) throw new ArgumentException($"A lookup id is {ServiceRecord.LookupIdSize} bytes.", nameof(lookupId));
        if (introduction.Length > LookupMessage.MaxIntroductionSize) throw new ArgumentException($"An introduction is at most {LookupMessage.MaxIntroductionSize} bytes.", nameof(introduction));
        var id = QueryId.New(_options.Random);
        var now = Now;
        var actions = new List<OverlayAction>();
        if (_ownLookups.Count >= MaxOwnLookups) _ownLookups.Remove(_ownLookups.Values.MinBy(o => o.Started)!.Id);
        var lookup = new OwnLookup(id, LookupKey.Of(lookupId), introduction, now, Widen(LookupPlan, now, _ => true));
        _ownLookups[id] = lookup;
        _routes.TryAdd(id, _identity.Id, now);
        // Held here already (we are an ultrapeer on its publication's way): no message at all.
        if (Held(lookup.Key, now) is { } stored)
        {
            lookup.Answered = true;
            lookup.Holders = 1;
            actions.Add(new ServiceRecordFound(id, stored.Record));
            if (!stored.Record.IsWithdrawal) Introduce(stored, id, introduction, actions);
            return (id, actions);
        }
        StepLookup(lookup, now, actions);
        return (id, actions);
    }

    /// <summary>
    /// How a lookup widens, one step per <see cref="OverlayOptions.LookupStepInterval"/> until
    /// answered: a TTL of 1 through all our ultrapeers (records are spread wide, so the nearest
    /// often hold one), then 2 through all of them, then LookupTtl through one after the other.
    /// </summary>
    private WideningStep[] LookupPlan => [new(1, Spread.All), new(2, Spread.All), new(_options.LookupTtl, Spread.Each)];

    private void StepLookup(OwnLookup lookup, DateTimeOffset now, List<OverlayAction> actions)
    {
        while (!lookup.Carried && lookup.Widening.Next(now, _neighbourIds, _options.LookupStepInterval) is { } step)
        {
            lookup.LastStep = now;
            foreach (var (to, ttl) in step)
            {
                if (Behind(to)) QueriesDropped++;
                else actions.Add(new SendOverlayMessage(to, new LookupMessage(lookup.Id, ttl, ToBytes(lookup.Key), lookup.Introduction)));
            }
        }
    }

    /// <summary>Our ultrapeers, or, in a network too young to have any, every neighbour; in friends-only mode, friends only.</summary>
    private List<NodeId> FloodTargets()
    {
        var ultrapeers = _neighbourIds.Where(IsUltrapeer).ToList();
        return ultrapeers.Count > 0 && !FriendsOnly ? ultrapeers : [.. _neighbourIds];
    }

    private static byte[] ToBytes(LookupKey key)
    {
        var bytes = new byte[ServiceRecord.LookupIdSize];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(bytes, key.High);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(bytes.AsSpan(16), key.Low);
        return bytes;
    }

    /// <summary>
    /// Whether we, a leaf, carry a flood from <paramref name="from"/> toward the ultrapeers: a
    /// leaf with no ultrapeer of its own floods to every neighbour, and a publication or lookup
    /// that stopped at the first leaf would never reach the ultrapeers. We pass it to our
    /// ultrapeers, or, having none either, to our other neighbours, as its sender did. A leaf
    /// that carries a publication stores it too, as the way back for its introductions passes
    /// through it.
    /// </summary>
    private bool CarriesUp(Neighbour from) => Role == OverlayRole.Leaf && !from.Peer.IsUltrapeer;

    private bool HasUltrapeerNeighbour
    {
        get
        {
            foreach (var n in _neighbours.Values)
                if (n.Peer.IsUltrapeer) return true;
            return false;
        }
    }

    private void OnRecordPublish(Neighbour from, RecordPublishMessage publish, List<OverlayAction> actions)
    {
        var now = Now;
        if (!_routes.TryAdd(publish.Id, from.Id, now)) return; // a copy that came another way
        if (publish.Record.Verify(now, _options.MaxClockSkew) is { } error)
        {
            Reject(from, OverlayError.BadRecord, $"service record: {error}", actions);
            return;
        }
        if ((Role != OverlayRole.Ultrapeer && !CarriesUp(from)) || FriendsOnly) return;
        Store(publish.Record, publish.Id, from.Id, now);
        if (publish.Ttl <= 1) return;
        var forward = publish with { Ttl = (byte)Math.Min(publish.Ttl - 1, _options.RecordTtl) };
        bool anyUltrapeer = Role == OverlayRole.Ultrapeer || HasUltrapeerNeighbour;
        foreach (var n in _neighbours.Values)
        {
            if (n.Id == from.Id || (anyUltrapeer && !n.Peer.IsUltrapeer)) continue;
            if (Behind(n.Id)) QueriesDropped++;
            else if (n.RecordsOut.TryTake()) actions.Add(new SendOverlayMessage(n.Id, forward));
        }
    }

    /// <summary>Keeps a record with a way back to its introduction point; the newest revision of a record wins (a withdrawal too), every introduction point adds a route.</summary>
    private void Store(ServiceRecord record, QueryId publish, NodeId via, DateTimeOffset now)
    {
        var key = LookupKey.Of(record.LookupId);
        if (!_records.TryGetValue(key, out var stored))
        {
            if (_records.Count >= _options.MaxRecords) Forget(_records.Values.MinBy(r => r.Routes[0].Refreshed)!);
            stored = new StoredRecord(key, record);
            _records[key] = stored;
        }
        else if (record.Replaces(stored.Record))
        {
            stored.Record = record;
        }
        // One route per publication, even several by the same neighbour: they may lead to different
        // introduction points, and an introduction on its way back along an older publication must
        // still find it at every hop. The oldest go first.
        stored.Routes.Insert(0, new RecordRoute(publish, via, now));
        _recordsByPublish[publish] = stored;
        while (stored.Routes.Count > _options.MaxRoutesPerRecord)
        {
            _recordsByPublish.Remove(stored.Routes[^1].Publish);
            stored.Routes.RemoveAt(stored.Routes.Count - 1);
        }
    }

    private void Forget(StoredRecord stored)
    {
        _records.Remove(stored.Key);
        foreach (var route in stored.Routes) _recordsByPublish.Remove(route.Publish);
    }

    private void OnLookup(Neighbour from, LookupMessage lookup, List<OverlayAction> actions)
    {
        var now = Now;
        var seen = _routes.See(lookup.Id, from.Id, lookup.Ttl, now);
        if (seen == QuerySeen.Copy) return;
        if (Held(LookupKey.Of(lookup.LookupId), now) is { } stored)
        {
            // A wider copy of a lookup we answered: it stopped here the first time.
            if (seen == QuerySeen.Deeper) return;
            // Held: answer and introduce (a withdrawn service has nobody to introduce to); the
            // lookup goes no further from here.
            if (Behind(from.Id)) HitsDropped++;
            else actions.Add(new SendOverlayMessage(from.Id, new LookupHitMessage(lookup.Id, stored.Record)));
            if (!stored.Record.IsWithdrawal) Introduce(stored, lookup.Id, lookup.Introduction, actions);
            return;
        }
        if ((Role != OverlayRole.Ultrapeer && !CarriesUp(from)) || FriendsOnly || lookup.Ttl <= 1) return;
        var forward = lookup with { Ttl = (byte)Math.Min(lookup.Ttl - 1, _options.LookupTtl) };
        bool anyUltrapeer = Role == OverlayRole.Ultrapeer || HasUltrapeerNeighbour;
        foreach (var n in _neighbours.Values)
        {
            if (n.Id == from.Id || (anyUltrapeer && !n.Peer.IsUltrapeer)) continue;
            if (Behind(n.Id)) QueriesDropped++;
            else if (n.LookupsOut.TryTake()) actions.Add(new SendOverlayMessage(n.Id, forward));
        }
    }

    /// <summary>
    /// A current record we hold that we can answer for: a withdrawal, or a record with a route
    /// that still leads somewhere from here. One whose every route has broken is as good as not
    /// held: the lookup goes on to holders that can introduce.
    /// </summary>
    private StoredRecord? Held(LookupKey key, DateTimeOffset now)
    {
        if (!_records.TryGetValue(key, out var stored) || stored.Record.IsExpired(now)) return null;
        if (stored.Record.IsWithdrawal) return stored;
        foreach (var route in stored.Routes)
            if (route.Via == _identity.Id || _neighbourIds.Contains(route.Via)) return stored;
        return null;
    }

    /// <summary>
    /// Passes an introduction along the freshest routes of a record we hold, up to
    /// <see cref="OverlayOptions.IntroductionRoutes"/> of them at a time: a route can break further
    /// on (a link closes, an introduction point loses its service before the record expires), and
    /// then its failure comes back and the next route is tried.
    /// </summary>
    private void Introduce(StoredRecord stored, QueryId lookup, byte[] introduction, List<OverlayAction> actions)
    {
        var now = Now;
        if (_introductionsHeld.Count >= MaxIntroductionsHeld) _introductionsHeld.Remove(_introductionsHeld.MinBy(h => h.Value.Until).Key);
        var held = new HeldIntroduction(stored, introduction, now + _options.QueryRouteLifetime);
        _introductionsHeld[lookup] = held;
        IntroduceOnward(lookup, held, actions);
        if (held.Pending == 0) GiveUpIntroduction(lookup, actions);
    }

    /// <summary>Sends the introduction along routes not tried yet, until IntroductionRoutes of them are pending.</summary>
    private void IntroduceOnward(QueryId lookup, HeldIntroduction held, List<OverlayAction> actions)
    {
        foreach (var route in held.Stored.Routes)
        {
            if (held.Pending >= _options.IntroductionRoutes) return;
            if (held.Tried.Contains(route.Publish)) continue;
            if (route.Via == _identity.Id)
            {
                held.Tried.Add(route.Publish);
                if (Arrived(route.Publish, lookup, held.Introduction, _identity.Id, actions)) held.Pending++;
                continue;
            }
            if (!_neighbourIds.Contains(route.Via)) continue;
            held.Tried.Add(route.Publish);
            if (Behind(route.Via))
            {
                HitsDropped++;
                continue;
            }
            Carry(lookup, route.Publish, _identity.Id, route.Via);
            actions.Add(new SendOverlayMessage(route.Via, new IntroduceMessage(route.Publish, lookup, held.Introduction)));
            held.Pending++;
        }
    }

    /// <summary>
    /// No route from here reaches the service: the failure goes back the way the lookup came, so
    /// that it goes on to other holders. It names the lookup in place of a publication: which
    /// routes we hold is nobody's business on the lookup's side.
    /// </summary>
    private void GiveUpIntroduction(QueryId lookup, List<OverlayAction> actions)
    {
        _introductionsHeld.Remove(lookup);
        if (!_routes.TryGet(lookup, Now, out var back)) return;
        if (back == _identity.Id) HolderFailed(lookup, actions);
        else if (Behind(back)) HitsDropped++;
        else actions.Add(new SendOverlayMessage(back, new IntroduceFailedMessage(lookup, lookup)));
    }

    private void Carry(QueryId lookup, QueryId publish, NodeId back, NodeId to)
    {
        if (_introductionsCarried.Count >= MaxIntroductionsCarried) _introductionsCarried.Remove(_introductionsCarried.MinBy(c => c.Value.Until).Key);
        _introductionsCarried[(lookup, publish)] = new CarriedIntroduction(back, to, Now + _options.QueryRouteLifetime);
    }

    /// <summary>An introduction reaches us as its introduction point: handed over once per lookup, however many holders sent it. False for a copy.</summary>
    private bool Arrived(QueryId publish, QueryId lookup, byte[] introduction, NodeId back, List<OverlayAction> actions)
    {
        var now = Now;
        if (_introductionsSeen.ContainsKey(lookup)) return false;
        if (_introductionsSeen.Count >= MaxIntroductionsSeen) _introductionsSeen.Remove(_introductionsSeen.MinBy(s => s.Value).Key);
        _introductionsSeen[lookup] = now + _options.RecordRouteLifetime;
        Carry(lookup, publish, back, _identity.Id);
        actions.Add(new IntroductionArrived(publish, lookup, introduction));
        return true;
    }

    /// <summary>
    /// As an introduction point, refuses an introduction we were handed (<see cref="IntroductionArrived"/>)
    /// because the publication no longer leads to its service: the circuit that asked for it has
    /// closed. The publication is closed too, and the failure goes back to whoever sent it.
    /// </summary>
    public IReadOnlyList<OverlayAction> RefuseIntroduction(QueryId publish, QueryId lookup)
    {
        var actions = new List<OverlayAction>();
        ClosePublication(publish);
        // Another of our publications may yet lead to the service.
        _introductionsSeen.Remove(lookup);
        if (_introductionsCarried.Remove((lookup, publish), out var carried) && carried.To == _identity.Id) Fail(publish, lookup, carried.Back, actions);
        return actions;
    }

    /// <summary>As an introduction point, stops answering for a publication whose service is gone: introductions along it fail from now on.</summary>
    public void ClosePublication(QueryId publish)
    {
        _ownPublishes.Remove(publish);
        DropRoute(publish, _identity.Id);
    }

    /// <summary>
    /// Forgets a route that leads nowhere, but only as told by the neighbour it leads through. A
    /// withdrawal keeps its routes: it needs no way back, and it must outlive the service's circuits.
    /// </summary>
    private void DropRoute(QueryId publish, NodeId via)
    {
        if (!_recordsByPublish.TryGetValue(publish, out var stored) || stored.Record.IsWithdrawal) return;
        int i = stored.Routes.FindIndex(r => r.Publish == publish);
        if (i < 0 || stored.Routes[i].Via != via) return;
        stored.Routes.RemoveAt(i);
        _recordsByPublish.Remove(publish);
        if (stored.Routes.Count == 0) Forget(stored);
    }

    /// <summary>An introduction we carried along <paramref name="publish"/> failed: back to whoever passed it to us, or, if we hold the record, on along our next route.</summary>
    private void Fail(QueryId publish, QueryId lookup, NodeId back, List<OverlayAction> actions)
    {
        if (back != _identity.Id)
        {
            if (!_neighbourIds.Contains(back)) return;
            if (Behind(back)) HitsDropped++;
            else actions.Add(new SendOverlayMessage(back, new IntroduceFailedMessage(publish, lookup)));
            return;
        }
        if (!_introductionsHeld.TryGetValue(lookup, out var held)) return;
        held.Pending--;
        IntroduceOnward(lookup, held, actions);
        if (held.Pending <= 0) GiveUpIntroduction(lookup, actions);
    }

    /// <summary>One of the holders that answered our lookup could not introduce us: unless another still carries it, the lookup widens again.</summary>
    private void HolderFailed(QueryId lookup, List<OverlayAction> actions)
    {
        if (!_ownLookups.TryGetValue(lookup, out var own)) return;
        own.HoldersFailed++;
        StepLookup(own, Now, actions);
    }

    private void OnIntroduceFailed(Neighbour from, IntroduceFailedMessage failed, List<OverlayAction> actions)
    {
        // Whatever we hold of that publication through the sender leads nowhere now.
        DropRoute(failed.Publish, from.Id);
        if (_introductionsCarried.TryGetValue((failed.Lookup, failed.Publish), out var carried) && carried.To == from.Id)
        {
            _introductionsCarried.Remove((failed.Lookup, failed.Publish));
            Fail(failed.Publish, failed.Lookup, carried.Back, actions);
            return;
        }
        // From a holder with no route left: back the way the lookup came.
        if (!_routes.TryGet(failed.Lookup, Now, out var back) || back == from.Id) return;
        if (back == _identity.Id) HolderFailed(failed.Lookup, actions);
        else if (Behind(back)) HitsDropped++;
        else actions.Add(new SendOverlayMessage(back, failed));
    }

    private void OnLookupHit(Neighbour from, LookupHitMessage hit, List<OverlayAction> actions)
    {
        var now = Now;
        if (!_routes.TryGet(hit.Lookup, now, out var back) || back == from.Id)
        {
            Reject(from, OverlayError.UnknownQuery, $"lookup hit for {hit.Lookup} that we never sent that way", actions);
            return;
        }
        if (hit.Record.Verify(now, _options.MaxClockSkew) is { } error)
        {
            Reject(from, OverlayError.BadRecord, $"service record: {error}", actions);
            return;
        }
        if (back != _identity.Id)
        {
            if (Behind(back)) HitsDropped++;
            else actions.Add(new SendOverlayMessage(back, hit));
            return;
        }
        // Ours: the first record of the lookup id we asked for answers it; a record of another
        // id is a holder's lie. Copies from other holders only count: each carries our
        // introduction too, and the lookup widens again only when all of them have failed.
        if (!_ownLookups.TryGetValue(hit.Lookup, out var lookup)) return;
        if (LookupKey.Of(hit.Record.LookupId) != lookup.Key)
        {
            Reject(from, OverlayError.BadRecord, "a lookup hit for another lookup id", actions);
            return;
        }
        lookup.Holders++;
        if (lookup.Answered) return;
        lookup.Answered = true;
        actions.Add(new ServiceRecordFound(lookup.Id, hit.Record));
    }

    private void OnIntroduce(Neighbour from, IntroduceMessage introduce, List<OverlayAction> actions)
    {
        if (_ownPublishes.ContainsKey(introduce.Publish))
        {
            // A copy that came by another holder is dropped: the first is on its way.
            Arrived(introduce.Publish, introduce.Lookup, introduce.Introduction, from.Id, actions);
            return;
        }
        // On along the route of that very publication. One we no longer hold (it expired, or its
        // link closed) goes back as failed: routes go stale in an honest network too.
        var route = _recordsByPublish.TryGetValue(introduce.Publish, out var stored) ? stored.Routes.Find(r => r.Publish == introduce.Publish) : default;
        if (route.Via == from.Id) return;
        bool onward = stored is not null && _neighbourIds.Contains(route.Via);
        if (onward && Behind(route.Via))
        {
            HitsDropped++;
            onward = false;
        }
        if (!onward)
        {
            Fail(introduce.Publish, introduce.Lookup, from.Id, actions);
            return;
        }
        Carry(introduce.Lookup, introduce.Publish, from.Id, route.Via);
        actions.Add(new SendOverlayMessage(route.Via, introduce));
    }

    /// <summary>Upkeep: widens or gives up our unanswered lookups, and drops records with no fresh way back.</summary>
    private void TickServices(DateTimeOffset now, List<OverlayAction> actions)
    {
        foreach (var lookup in _ownLookups.Values)
        {
            StepLookup(lookup, now, actions);
            // Done LookupTimeout after its last step: an answered lookup stays that long, so that
            // the copies of its answer and the failures of its introduction still find their way.
            if ((lookup.Carried || lookup.Widening.Done) && now - lookup.LastStep >= _options.LookupTimeout)
            {
                if (!lookup.Answered) actions.Add(new ServiceLookupFailed(lookup.Id));
                _ownLookups.Remove(lookup.Id);
            }
        }

        foreach (var stored in _records.Values)
        {
            stored.Routes.RemoveAll(r =>
            {
                bool stale = now - r.Refreshed >= _options.RecordRouteLifetime;
                if (stale) _recordsByPublish.Remove(r.Publish);
                return stale;
            });
            if (stored.Routes.Count == 0 || stored.Record.IsExpired(now)) Forget(stored);
        }
        foreach (var (id, until) in _ownPublishes)
            if (until <= now) _ownPublishes.Remove(id);
        foreach (var (id, until) in _introductionsSeen)
            if (until <= now) _introductionsSeen.Remove(id);
        foreach (var (key, carried) in _introductionsCarried)
            if (carried.Until <= now) _introductionsCarried.Remove(key);
        foreach (var (id, held) in _introductionsHeld)
            if (held.Until <= now) _introductionsHeld.Remove(id);
    }
}
