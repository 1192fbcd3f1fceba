using System.Net;
using System.Security.Cryptography;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Overlay;
using Quid.Wire;

namespace Quid.Sim;

/// <summary>Everything a run depends on. The protocol options are the real ones; a run may tune them to show what a default should become.</summary>
public sealed record SimOptions
{
    public int Nodes { get; init; } = 1000;
    public TimeSpan Duration { get; init; } = TimeSpan.FromHours(1);
    public int Seed { get; init; } = 1;
    /// <summary>The first nodes join over this long, each through a few that are already up.</summary>
    public TimeSpan JoinSpread { get; init; } = TimeSpan.FromMinutes(2);
    /// <summary>Measurements (rates, episodes, searches) count from here; before it the network forms.</summary>
    public TimeSpan? MeasureFrom { get; init; }
    public TimeSpan SampleInterval { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan SeriesInterval { get; init; } = TimeSpan.FromMinutes(1);
    /// <summary>Mean online session; a node that leaves is replaced by a newcomer. Zero: no churn.</summary>
    public TimeSpan MeanSession { get; init; } = TimeSpan.FromHours(3);
    /// <summary>Of the nodes that leave, the share that crash instead of saying goodbye.</summary>
    public double CrashShare { get; init; } = 0.3;
    /// <summary>How soon, on average, a newcomer replaces a node that left.</summary>
    public TimeSpan MeanReplacement { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>How long a caught whitewasher waits before it comes back under a new identity.</summary>
    public TimeSpan RekeyDelay { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>How long, on average, a rotating free-rider keeps an identity (exponential).</summary>
    public TimeSpan MeanIdentityLifetime { get; init; } = TimeSpan.FromMinutes(5);
    public int BootstrapPeers { get; init; } = 3;
    /// <summary>The share of hosts behind a NAT: they dial out, nobody can dial them, and they cannot be ultrapeers.</summary>
    public double NatShare { get; init; } = 0.2;
    /// <summary>The chance that a probe of a node that serves honestly lands on a transient shortfall.</summary>
    public double HiccupChance { get; init; } = 0.02;
    public AgentMix Mix { get; init; } = new();
    public NetworkOptions Network { get; init; } = new();
    public OverlayOptions Overlay { get; init; } = new();
    public MarketOptions Market { get; init; } = new();
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan SearchInterval { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan DescriptorLifetime { get; init; } = TimeSpan.FromHours(1);
    /// <summary>Hops of the nodes' circuits: a multi-hop node asks four partners for a quarter of its request each.</summary>
    public int Hops { get; init; } = 3;
    /// <summary>Overrides the number of partners a node wants (the real node's is fixed by its hops): to show what a default should become.</summary>
    public int? PartnersWanted { get; init; }
    /// <summary>One control message in this many is encoded, decoded and compared, so the simulator cannot drift from the wire.</summary>
    public int WireCheckEvery { get; init; } = 1000;
    public int AnonymityCircuits { get; init; } = 20_000;
    /// <summary>Session-addressed services whose records are published (none: no lookups are measured).</summary>
    public int Services { get; init; }
    public double LookupsPerMinute { get; init; } = 60;

    /// <summary>Days of the credit economy played on the agreements the run ends with; 0 for none, and then nodes trade no disk.</summary>
    public int EconomyDays { get; init; }
    /// <summary>How often a holder asks each issuer for the credits it owes: the real node's pace.</summary>
    public TimeSpan CreditAskInterval { get; init; } = TimeSpan.FromMinutes(1);
    public TimeSpan MeasurementStart => MeasureFrom ?? Duration / 3;
}

/// <summary>Deterministic seeds for each part of a run, so that no part's draws disturb another's.</summary>
public static class Seeds
{
    public static int Derive(int seed, int a, int b = 0)
    {
        // SplitMix64's finaliser: neighbouring inputs give unrelated outputs.
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)(uint)a * 0xBF58476D1CE4E5B9UL + (ulong)(uint)b * 0x94D049BB133111EBUL + 0x2545F4914F6CDD1DUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & int.MaxValue);
    }
}

/// <summary>
/// A whole network in one process: N nodes of real protocol code on a virtual clock and a
/// virtual network, with churn, adversaries and measurements. A run is a pure function of its options.
/// </summary>
public sealed class Simulation
{
    private readonly List<SimNode> _all = [];
    private readonly List<SimNode> _online = [];
    private readonly Dictionary<NodeId, SimNode> _byId = [];
    private readonly List<Host> _hosts = [];
    private readonly Random _placement;
    private readonly Random _churn;
    private readonly Population _population;
    private int _identities;

    public Simulation(SimOptions options)
    {
        Options = options;
        Clock = new VirtualClock(VirtualClock.DefaultEpoch);
        Scheduler = new Scheduler(Clock);
        Network = new VirtualNetwork(options.Network, Scheduler, new Random(Seeds.Derive(options.Seed, 1)));
        Metrics = new Metrics(this);
        WireCheck = new WireCheck(options.WireCheckEvery);
        _placement = new Random(Seeds.Derive(options.Seed, 2));
        _churn = new Random(Seeds.Derive(options.Seed, 3));
        _population = new Population(options.Mix, new Random(Seeds.Derive(options.Seed, 4)));
        WindowStart = options.MeasurementStart.Ticks;
        if (options.Services > 0) Lookups = new Lookups(this);
    }

    public SimOptions Options { get; }
    public VirtualClock Clock { get; }
    public Scheduler Scheduler { get; }
    public VirtualNetwork Network { get; }
    public Metrics Metrics { get; }
    public WireCheck WireCheck { get; }
    public Lookups? Lookups { get; }
    public long WindowStart { get; }
    public IReadOnlyList<SimNode> All => _all;
    public IReadOnlyList<SimNode> Online => _online;

    public SimNode? Find(NodeId id) => _byId.GetValueOrDefault(id);

    /// <summary>Runs the whole duration; <paramref name="progress"/> hears every simulated minute.</summary>
    public void Run(Action<Simulation>? progress = null)
    {
        var agents = _population.Initial(Options.Nodes);
        var joins = agents.Select(_ => (long)(_placement.NextDouble() * Options.JoinSpread.Ticks)).Order().ToArray();
        for (int i = 0; i < agents.Count; i++)
        {
            var agent = agents[i];
            Scheduler.At(joins[i], () => Join(agent, NewHost(agent)));
        }
        Every(Options.SampleInterval, () => Metrics.SampleTraffic(_online, Options.SampleInterval.TotalSeconds));
        Every(Options.SeriesInterval, () =>
        {
            Metrics.SampleSeries(_online);
            progress?.Invoke(this);
        });
        if (Options.EconomyDays > 0) Every(Options.CreditAskInterval, () => Economy.AskDuringRun(this));
        // Services start publishing five minutes before the window opens, once the network has formed.
        Lookups?.Start(Options.Services, Options.LookupsPerMinute, TimeSpan.FromTicks(Math.Max(Options.JoinSpread.Ticks, WindowStart - TimeSpan.FromMinutes(5).Ticks)));
        Scheduler.RunUntil(Options.Duration.Ticks);
        Metrics.CloseEpisodes(_online);
    }

    private void Every(TimeSpan interval, Action action)
    {
        void Repeat()
        {
            action();
            Scheduler.After(interval, Repeat);
        }
        Scheduler.After(interval, Repeat);
    }

    private Host NewHost(Agent agent)
    {
        int index = _hosts.Count;
        bool nat = _placement.NextDouble() < Options.NatShare;
        var address = nat ? null : new IPEndPoint(new IPAddress([10, (byte)(index >> 16), (byte)(index >> 8), (byte)index]), 7843);
        var host = new Host(index, address, _placement.NextDouble(), _placement.NextDouble(), agent.CapacityKbps);
        _hosts.Add(host);
        return host;
    }

    /// <summary>An identity from the run's seed and a counter: the same run makes the same node ids.</summary>
    private NodeIdentity NewIdentity()
    {
        Span<byte> input = stackalloc byte[12];
        BitConverter.TryWriteBytes(input, Options.Seed);
        BitConverter.TryWriteBytes(input[4..], (long)_identities++);
        return NodeIdentity.FromSeed(SHA256.HashData(input));
    }

    private void Join(Agent agent, Host host)
    {
        var identity = NewIdentity();
        var node = new SimNode(this, _all.Count, agent, host, identity, Bootstrap(), Seeds.Derive(Options.Seed, 100, _all.Count));
        _all.Add(node);
        _online.Add(node);
        _byId[node.Id] = node;
        agent.Node = node;
        agent.Ring?.Members.Add(node);
        node.Start(TimeSpan.FromTicks((long)(_placement.NextDouble() * Options.TickInterval.Ticks)));
        if (agent.Class == AgentClass.RotatingFreeRider)
            Scheduler.After(TimeSpan.FromTicks((long)(-Options.MeanIdentityLifetime.Ticks * Math.Log(1 - _churn.NextDouble()))), () => Rekey(node));
        if (Options.MeanSession > TimeSpan.Zero)
        {
            var session = TimeSpan.FromTicks((long)(-Options.MeanSession.Ticks * Math.Log(1 - _churn.NextDouble())));
            if (session < Options.Duration) Scheduler.After(session, () => Depart(node));
        }
    }

    /// <summary>A few nodes that are up and reachable, as a new user's --peer list.</summary>
    private IPEndPoint[] Bootstrap()
    {
        var peers = new List<IPEndPoint>();
        for (int attempt = 0; attempt < 50 && peers.Count < Options.BootstrapPeers && _online.Count > 0; attempt++)
        {
            var candidate = _online[_placement.Next(_online.Count)];
            if (candidate.Host.Address is { } address && !peers.Contains(address)) peers.Add(address);
        }
        return [.. peers];
    }

    /// <summary>A session ends: the node leaves or crashes, and a newcomer takes its place a little later.</summary>
    private void Depart(SimNode node)
    {
        if (!node.Online) return;
        if (_churn.NextDouble() < Options.CrashShare) node.Crash();
        else node.Leave();
        _online.Remove(node);
        var newcomer = _population.Newcomer();
        var delay = TimeSpan.FromTicks((long)(-Options.MeanReplacement.Ticks * Math.Log(1 - _churn.NextDouble())));
        Scheduler.After(delay, () => Join(newcomer, NewHost(newcomer)));
    }

    /// <summary>A caught whitewasher sheds its identity: it leaves, and soon the same machine joins under a new key.</summary>
    internal void Rekey(SimNode node)
    {
        Scheduler.After(TimeSpan.Zero, () =>
        {
            if (!node.Online) return;
            node.Leave();
            _online.Remove(node);
            Scheduler.After(Options.RekeyDelay, () => Join(node.Agent, node.Host));
        });
    }

    /// <summary>Satisfiers are counted up to this many: enough to tell a request only a few nodes can meet from one many can.</summary>
    internal const int SatisfiersCounted = 10;

    /// <summary>
    /// How many other nodes could match a request now (0 when none: the request is not
    /// satisfiable), counted up to <see cref="SatisfiersCounted"/>, by the ground truth rather than
    /// anyone's view: online, not yet a partner, a free block at least the request, and asking
    /// for no more than our largest free block.
    /// </summary>
    internal int Satisfiers(SimNode node)
    {
        if (node.Market.Request is not { } request) return 0;
        int count = 0;
        var partners = node.Market.Active.Select(a => a.Partner).ToHashSet();
        // Cheapest test first: this runs at every episode's start over every node online (it was
        // a quarter of a 10,000-node run's time).
        foreach (var other in _online)
        {
            if (other.Market.Capacity.LargestFree is not { } free || free < request) continue;
            if (other == node || partners.Contains(other.Id) || !other.Market.CanGrant(node.Id, request)) continue;
            // The node must be able to reach the other (a link, or an address to dial), and
            // neither may be refusing the other after a verdict.
            if (other.Host.Address is null && node.Core.LinkTo(other.Id) is null) continue;
            if (node.Market.Shuns(other.Id) || other.Market.Shuns(node.Id)) continue;
            if ((other.Market.Request is not { } wants || node.Market.CanGrant(other.Id, wants)) && ++count == SatisfiersCounted) break;
        }
        return count;
    }
}

/// <summary>Encodes, decodes and re-encodes one message in every so many, so the objects the simulator passes stay exactly what the wire carries.</summary>
public sealed class WireCheck(int every)
{
    private long _seen;

    public long Checked { get; private set; }

    internal void Sample(ControlMessage message)
    {
        if (every <= 0 || ++_seen % every != 0) return;
        var bytes = ControlCodec.Encode(message);
        // Decoding checks every descriptor's signature too.
        var decoded = ControlCodec.Decode(bytes);
        if (ControlCodec.PeekType(bytes) != message.Type || decoded.GetType() != message.GetType() || !ControlCodec.Encode(decoded).AsSpan().SequenceEqual(bytes)
            || bytes.Length != ControlCodec.EncodedLength(message))
            throw new InvalidOperationException($"A {message.GetType().Name} does not survive the wire unchanged: the simulator has drifted from the codec.");
        Checked++;
    }
}
