using Quid.Wire;

namespace Quid.Sim;

/// <summary>What kind of user runs a node: how it chooses its offer and request, and what it really delivers.</summary>
public enum AgentClass
{
    /// <summary>Offers part of its upload, asks for about as much, delivers every grant.</summary>
    Honest,
    /// <summary>Honest, and asks for nothing in return.</summary>
    Donor,
    /// <summary>Offers four times the upload it has, and shares what it has among its grants.</summary>
    OverClaimer,
    /// <summary>Offers honestly, delivers only a fraction (20–60%) of every grant.</summary>
    UnderDeliverer,
    /// <summary>Offers the minimum block, asks like anyone, never serves.</summary>
    FreeRider,
    /// <summary>Claims an honest offer, never serves, and re-keys (a new identity) whenever a partner catches it.</summary>
    Whitewasher,
    /// <summary>One operator's many identities: each claims an honest-sized offer, all share half that capacity.</summary>
    Sybil,
    /// <summary>Serves honestly, but shares what it sees with its pair and the other colluders; prefers its pair as partner.</summary>
    Colluder,
    /// <summary>An over-claimer that answers every probe in full from a second link it keeps hidden, so probes never see it share.</summary>
    HiddenLinkOverClaimer,
    /// <summary>A free-rider that sheds its identity every few minutes, caught or not, to come back as a newcomer.</summary>
    RotatingFreeRider,
}

/// <summary>The shares of each adversary in a population; the rest is honest, and a share of the honest donate.</summary>
public sealed record AgentMix
{
    public double OverClaimer { get; init; } = 0.03;
    public double UnderDeliverer { get; init; } = 0.03;
    public double FreeRider { get; init; } = 0.03;
    public double Whitewasher { get; init; } = 0.02;
    public double Sybil { get; init; } = 0.03;
    public double Colluder { get; init; } = 0.05;
    public double HiddenLinkOverClaimer { get; init; } = 0.02;
    public double RotatingFreeRider { get; init; } = 0.02;
    /// <summary>Of the honest, the share that asks for nothing.</summary>
    public double DonorShare { get; init; } = 0.1;

    public static AgentMix HonestOnly { get; } = new() { OverClaimer = 0, UnderDeliverer = 0, FreeRider = 0, Whitewasher = 0, Sybil = 0, Colluder = 0, HiddenLinkOverClaimer = 0, RotatingFreeRider = 0 };

    internal IEnumerable<(AgentClass Class, double Share)> Adversaries =>
    [
        (AgentClass.OverClaimer, OverClaimer), (AgentClass.UnderDeliverer, UnderDeliverer), (AgentClass.FreeRider, FreeRider),
        (AgentClass.Whitewasher, Whitewasher), (AgentClass.Sybil, Sybil), (AgentClass.Colluder, Colluder),
        (AgentClass.HiddenLinkOverClaimer, HiddenLinkOverClaimer), (AgentClass.RotatingFreeRider, RotatingFreeRider),
    ];
}

/// <summary>The identities of one Sybil operator and the one real capacity they share.</summary>
public sealed class SybilRing
{
    private long _grantedAt = -1;
    private long _granted;

    public long CapacityKbps { get; set; }
    internal List<SimNode> Members { get; } = [];

    /// <summary>What all its online identities grant together; computed once per instant.</summary>
    internal long GrantedKbps(long now)
    {
        if (now != _grantedAt)
        {
            _grantedAt = now;
            // An identity that left never comes back (a re-keyed one joins as a new node), so it
            // is dropped here rather than summed past for the rest of the run.
            Members.RemoveAll(m => !m.Online);
            _granted = Members.Sum(m => m.Market.Capacity.GrantedKbps);
        }
        return _granted;
    }
}

/// <summary>One user's machine and intentions; it outlives identities (a whitewasher re-keys, the agent stays).</summary>
public sealed class Agent
{
    public required AgentClass Class { get; init; }
    /// <summary>The upload the machine really has.</summary>
    public required long CapacityKbps { get; init; }
    public required Block Offer { get; init; }
    /// <summary>The whole request, before a multi-hop node splits it among partners; null for a donor.</summary>
    public Block? Request { get; init; }
    /// <summary>For an under-deliverer, the share of each grant it serves.</summary>
    public double DeliveryFactor { get; init; } = 1;
    public SybilRing? Ring { get; init; }
    /// <summary>A colluder's pair: the node it prefers as partner.</summary>
    public Agent? Pair { get; set; }
    /// <summary>The node this agent runs now.</summary>
    internal SimNode? Node { get; set; }

    public bool IsCheater => Class is AgentClass.OverClaimer or AgentClass.UnderDeliverer or AgentClass.FreeRider or AgentClass.Whitewasher or AgentClass.Sybil
        or AgentClass.HiddenLinkOverClaimer or AgentClass.RotatingFreeRider;

    /// <summary>Serves what it is granted (honest, donor, colluder): the baseline for false positives.</summary>
    public bool Serves => Class is AgentClass.Honest or AgentClass.Donor or AgentClass.Colluder;
}

/// <summary>Draws agents: log-normal broadband uploads, offers and requests rounded to blocks, and the adversaries' twists.</summary>
public sealed class Population(AgentMix mix, Random random)
{
    /// <summary>Median upload of a broadband line, and the spread of its logarithm.</summary>
    private const double MedianUploadKbps = 8000;
    private const double UploadSigma = 1.0;

    private SybilRing? _ring;

    /// <summary>Exactly the mix's share of each class (rounded), in a seeded random order.</summary>
    public List<Agent> Initial(int count)
    {
        var classes = new List<AgentClass>(count);
        foreach (var (cls, share) in mix.Adversaries)
            for (int i = 0; i < (int)Math.Round(count * share); i++) classes.Add(cls);
        int honest = Math.Max(0, count - classes.Count);
        int donors = (int)Math.Round(honest * mix.DonorShare);
        for (int i = 0; i < honest; i++) classes.Add(i < donors ? AgentClass.Donor : AgentClass.Honest);
        classes = classes.Take(count).ToList();
        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(classes));
        var agents = classes.Select(Make).ToList();
        PairColluders(agents);
        return agents;
    }

    /// <summary>A newcomer replacing a node that left: its class drawn with the mix's shares.</summary>
    public Agent Newcomer()
    {
        double pick = random.NextDouble();
        foreach (var (cls, share) in mix.Adversaries)
        {
            // Colluders come in pairs and the Sybil ring is one operator's: newcomers are neither.
            if (cls is AgentClass.Colluder or AgentClass.Sybil) continue;
            if ((pick -= share) < 0) return Make(cls);
        }
        return Make(random.NextDouble() < mix.DonorShare ? AgentClass.Donor : AgentClass.Honest);
    }

    private Agent Make(AgentClass cls)
    {
        long capacity = (long)Math.Clamp(MedianUploadKbps * Math.Exp(UploadSigma * Gaussian()), 128, 1_000_000);
        // Most people give a good part of their upload and ask for about as much ("usually the same amount").
        var offer = Block.Floor(capacity * (0.5 + 0.5 * random.NextDouble()));
        Block? request = random.NextDouble() switch
        {
            < 0.7 => offer,
            < 0.85 => Smaller(offer, 1),
            _ => Smaller(offer, 2),
        };
        switch (cls)
        {
            case AgentClass.Donor:
                return new Agent { Class = cls, CapacityKbps = capacity, Offer = offer, Request = null };
            case AgentClass.OverClaimer or AgentClass.HiddenLinkOverClaimer:
                var claimed = new Block((byte)Math.Min(Block.MaxOrder, offer.Order + 2));
                return new Agent { Class = cls, CapacityKbps = capacity, Offer = claimed, Request = claimed };
            case AgentClass.UnderDeliverer:
                return new Agent { Class = cls, CapacityKbps = capacity, Offer = offer, Request = request, DeliveryFactor = 0.2 + 0.4 * random.NextDouble() };
            case AgentClass.FreeRider or AgentClass.RotatingFreeRider:
                return new Agent { Class = cls, CapacityKbps = capacity, Offer = new Block(0), Request = request, DeliveryFactor = 0 };
            case AgentClass.Whitewasher:
                return new Agent { Class = cls, CapacityKbps = capacity, Offer = offer, Request = offer, DeliveryFactor = 0 };
            case AgentClass.Sybil:
                _ring ??= new SybilRing();
                // The operator claims, across its identities, twice the capacity it has.
                _ring.CapacityKbps += offer.Kbps / 2;
                return new Agent { Class = cls, CapacityKbps = capacity, Offer = offer, Request = offer, Ring = _ring };
            default:
                return new Agent { Class = cls, CapacityKbps = capacity, Offer = offer, Request = request };
        }
    }

    private static void PairColluders(List<Agent> agents)
    {
        var colluders = agents.Where(a => a.Class == AgentClass.Colluder).ToList();
        for (int i = 0; i + 1 < colluders.Count; i += 2)
        {
            colluders[i].Pair = colluders[i + 1];
            colluders[i + 1].Pair = colluders[i];
        }
    }

    private static Block Smaller(Block block, int orders) => new((byte)Math.Max(0, block.Order - orders));

    private double Gaussian()
    {
        // Box–Muller: two uniforms from the seeded source give one standard normal.
        double u1 = 1 - random.NextDouble();
        double u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
