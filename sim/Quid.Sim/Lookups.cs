using System.Buffers.Binary;
using System.Security.Cryptography;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Sim;

/// <summary>
/// Session-addressed services in a run (PROTOCOL §9.9): each service keeps a few introduction
/// points among the online nodes, which publish its record and republish it; random nodes (the
/// last hops of clients' circuits) look services up from the measurement window on. A lookup
/// succeeds when its node gets the record and an introduction point gets its introduction; it
/// costs every lookup, hit and introduction message sent for it.
/// </summary>
public sealed class Lookups
{
    private const int IntroductionPoints = 3;
    private const ulong Period = 20_000;
    private const ulong PeriodMinutes = 1440;

    private readonly Simulation _sim;
    private readonly Random _random;
    private readonly List<Service> _services = [];
    private readonly Dictionary<QueryId, LookupRun> _byHandle = [];
    /// <summary>Each introduction carries a serial number in its first 8 bytes: how its arrival at an introduction point is told apart.</summary>
    private readonly Dictionary<long, LookupRun> _bySerial = [];
    private long _serial;

    public Lookups(Simulation sim)
    {
        _sim = sim;
        _random = new Random(Seeds.Derive(sim.Options.Seed, 6));
    }

    public List<LookupRun> Runs { get; } = [];

    private sealed class Service(ServiceRecord record)
    {
        public ServiceRecord Record { get; } = record;
        public List<SimNode> IntroductionPoints { get; } = [];
    }

    public sealed class LookupRun(long started, bool inWindow)
    {
        public long Started { get; } = started;
        public bool InWindow { get; } = inWindow;
        public long? Found { get; set; }
        public long? Introduced { get; set; }
        public bool Failed { get; set; }
        public int Messages { get; set; }
        /// <summary>Whether the node it started at had an ultrapeer neighbour (or was one).</summary>
        public bool FromUltrapeer { get; init; }
        /// <summary>The share of online ultrapeers that held the record when it started.</summary>
        public double HeldBy { get; init; }
    }

    /// <summary>
    /// Services start publishing from <paramref name="publishAt"/>, each at its own moment within
    /// one republication interval, as services started by different people would; lookups run
    /// once every service has published, <paramref name="perMinute"/> a minute.
    /// </summary>
    public void Start(int services, double perMinute, TimeSpan publishAt)
    {
        var every = Republication;
        for (int i = 0; i < services; i++)
        {
            long at = publishAt.Ticks + (long)(_random.NextDouble() * every.Ticks);
            _sim.Scheduler.At(at, () =>
            {
                using var keys = KeyBlinding.KeyPair.FromSeed(RandomBytes(32), Period, PeriodMinutes);
                var now = _sim.Clock.GetUtcNow();
                var service = new Service(ServiceRecord.Create(keys, Period, PeriodMinutes, now, now + ServiceRecord.MaxLifetime, RandomBytes(600)));
                _services.Add(service);
                Republish(service);
            });
        }
        var interval = TimeSpan.FromMinutes(1 / perMinute);
        _sim.Scheduler.At(Math.Max(_sim.WindowStart, publishAt.Ticks + every.Ticks), () => LookUp(interval));
    }

    /// <summary>How often an introduction point publishes again: well within a record route's lifetime.</summary>
    private TimeSpan Republication => _sim.Options.Overlay.RecordRouteLifetime / 3;

    /// <summary>Replaces introduction points that left, and has each publish the record again, well within a record route's lifetime.</summary>
    private void Republish(Service service)
    {
        service.IntroductionPoints.RemoveAll(n => !n.Online);
        while (service.IntroductionPoints.Count < IntroductionPoints && _sim.Online.Count > IntroductionPoints)
        {
            var candidate = _sim.Online[_random.Next(_sim.Online.Count)];
            if (!service.IntroductionPoints.Contains(candidate)) service.IntroductionPoints.Add(candidate);
        }
        foreach (var point in service.IntroductionPoints) point.PublishRecord(service.Record);
        _sim.Scheduler.After(Republication, () => Republish(service));
    }

    private void LookUp(TimeSpan interval)
    {
        if (_services.Count > 0 && _sim.Online.Count > 0)
        {
            var service = _services[_random.Next(_services.Count)];
            // The last hop of someone's circuit: a node with a partner, so that a walk can reach it.
            var node = _sim.Online[_random.Next(_sim.Online.Count)];
            for (int tries = 0; tries < 20 && !node.Market.Active.Any(); tries++) node = _sim.Online[_random.Next(_sim.Online.Count)];
            var ultrapeers = _sim.Online.Where(n => n.Overlay.Role == Overlay.OverlayRole.Ultrapeer).ToList();
            var run = new LookupRun(_sim.Clock.Now, _sim.Clock.Now >= _sim.WindowStart)
            {
                FromUltrapeer = node.Overlay.Role == Overlay.OverlayRole.Ultrapeer || node.Overlay.UltrapeerNeighbourCount > 0,
                HeldBy = ultrapeers.Count == 0 ? 0 : (double)ultrapeers.Count(u => u.Overlay.Holds(service.Record.LookupId)) / ultrapeers.Count,
            };
            // A realistic introduction's size, numbered so that its arrival can be told apart.
            var introduction = RandomBytes(300);
            long serial = ++_serial;
            BinaryPrimitives.WriteInt64BigEndian(introduction, serial);
            _bySerial[serial] = run;
            Runs.Add(run);
            node.Lookup(service.Record.LookupId, introduction, handle => Started(handle, run));
        }
        _sim.Scheduler.After(interval, () => LookUp(interval));
    }

    private byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        _random.NextBytes(bytes);
        return bytes;
    }

    private void Started(QueryId handle, LookupRun run) => _byHandle[handle] = run;

    /// <summary>Counts a message toward the lookup it belongs to.</summary>
    internal void Sent(ControlMessage message)
    {
        LookupRun? run = message switch
        {
            LookupMessage m => _byHandle.GetValueOrDefault(m.Id),
            LookupHitMessage m => _byHandle.GetValueOrDefault(m.Lookup),
            IntroduceMessage m => _byHandle.GetValueOrDefault(m.Lookup),
            IntroduceFailedMessage m => _byHandle.GetValueOrDefault(m.Lookup),
            _ => null,
        };
        if (run is not null) run.Messages++;
    }

    internal void Found(QueryId handle)
    {
        if (_byHandle.TryGetValue(handle, out var run)) run.Found ??= _sim.Clock.Now;
    }

    internal void Failed(QueryId handle)
    {
        if (_byHandle.TryGetValue(handle, out var run)) run.Failed = true;
    }

    internal void Introduced(byte[] introduction)
    {
        if (introduction.Length >= 8 && _bySerial.TryGetValue(BinaryPrimitives.ReadInt64BigEndian(introduction), out var run)) run.Introduced ??= _sim.Clock.Now;
    }
}
