using Quid.Crypto;
using Quid.Wire;

namespace Quid.Overlay;

/// <summary>A rate and a burst, per neighbour, for one kind of message.</summary>
public readonly record struct MessageRate(double PerSecond, double Burst);

public sealed record OverlayOptions
{
    /// <summary>How many ultrapeers a leaf keeps links to.</summary>
    public int LeafUltrapeers { get; init; } = 3;
    /// <summary>How many other ultrapeers an ultrapeer keeps links to.</summary>
    public int UltrapeerLinks { get; init; } = 6;
    /// <summary>
    /// An ultrapeer with the ultrapeer links it wants, but fewer than twice as many, keeps one more,
    /// a shortcut to a known ultrapeer drawn at random, and draws another at most this often when
    /// the last did not link or its link went. Ultrapeers that only ever linked among themselves
    /// are otherwise content as an island that floods never leave: the simulator saw 7 of 34 do so
    /// at 1,000 nodes.
    /// </summary>
    public TimeSpan ShortcutInterval { get; init; } = TimeSpan.FromMinutes(2);
    /// <summary>Every node keeps at least this many links, whatever their roles, so gossip reaches it.</summary>
    public int MinNeighbours { get; init; } = 4;
    public int MaxLeafNeighbours { get; init; } = 32;
    /// <summary>An ultrapeer's links of every kind, at most; how many of them may be leaves also depends on its upload (<see cref="Overlay.MaxLeaves"/>).</summary>
    public int MaxUltrapeerNeighbours { get; init; } = 160;

    public int MaxKnownPeers { get; init; } = 2000;
    public int MaxQueryRoutes { get; init; } = 10_000;
    public TimeSpan QueryRouteLifetime { get; init; } = TimeSpan.FromSeconds(30);
    public byte QueryTtl { get; init; } = 3;
    public byte MaxResults { get; init; } = 8;
    /// <summary>How long a search waits for hits before it widens by one step, while it has found fewer than MaxResults (dynamic querying).</summary>
    public TimeSpan SearchStepInterval { get; init; } = TimeSpan.FromSeconds(1);
    public int MaxSearchResults { get; init; } = 256;
    public TimeSpan SearchResultLifetime { get; init; } = TimeSpan.FromSeconds(60);
    public TimeSpan PeerExchangeInterval { get; init; } = TimeSpan.FromSeconds(30);
    public int PeerExchangeSize { get; init; } = 16;

    public TimeSpan MaxClockSkew { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>A descriptor may claim to be valid for at most this long.</summary>
    public TimeSpan MaxDescriptorLifetime { get; init; } = TimeSpan.FromHours(3);
    public TimeSpan RedialAfter { get; init; } = TimeSpan.FromSeconds(30);
    public int DialsPerTick { get; init; } = 2;
    /// <summary>A peer that failed this many dials in a row is forgotten.</summary>
    public int MaxDialFailures { get; init; } = 5;
    /// <summary>A peer nobody has heard of for this long is forgotten.</summary>
    public TimeSpan MaxPeerAge { get; init; } = TimeSpan.FromDays(14);

    /// <summary>Whether this node may serve as an ultrapeer at all.</summary>
    public bool UltrapeerCapable { get; init; } = true;
    public TimeSpan UltrapeerMinUptime { get; init; } = TimeSpan.FromMinutes(10);
    public Block UltrapeerMinOffer { get; init; } = Block.FromKbps(256);
    /// <summary>
    /// A capable leaf that finds too few ultrapeers for this long may become one; across the
    /// network, about one leaf promotes per this interval until there are enough.
    /// </summary>
    public TimeSpan PromotionDelay { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// The pace of promotion, in place of PromotionDelay's, for a leaf that has heard of no
    /// ultrapeer at all for PromotionDelay: in a network that has just started, searches reach
    /// nobody until one appears.
    /// </summary>
    public TimeSpan FirstPromotionDelay { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>An ultrapeer that has served no leaf for this long, with enough other ultrapeers around, becomes a leaf again.</summary>
    public TimeSpan DemotionDelay { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Gnutella's flow control: a query or a hit is dropped, never queued, when the link it would go
    /// out on is further behind than this (what is queued on it would take longer to go out). A
    /// search is worth nothing minutes late, and queued floods would hold up everything behind
    /// them, a link's close included.
    /// </summary>
    public TimeSpan MaxQueryBacklog { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The queries a second an ultrapeer expects from each leaf, on average, when it works out how
    /// many leaves its upload can serve: a leaf whose request is unmet searches once per search
    /// interval (5 s by default).
    /// </summary>
    public double LeafQueriesPerSecond { get; init; } = 0.2;
    /// <summary>The share of its offer an ultrapeer plans to spend on its leaves' queries; the rest stays for the flood among ultrapeers and its own traffic.</summary>
    public double UltrapeerQueryShare { get; init; } = 0.5;

    public MessageRate LeafQueryRate { get; init; } = new(2, 10);
    public MessageRate UltrapeerQueryRate { get; init; } = new(200, 1000);
    public MessageRate DescriptorRate { get; init; } = new(1, 10);
    public MessageRate PeersRate { get; init; } = new(0.5, 5);
    public MessageRate HitRate { get; init; } = new(200, 1000);
    /// <summary>Service records a neighbour may flood to us: an introduction point republishes every few minutes.</summary>
    public MessageRate RecordRate { get; init; } = new(5, 50);
    public MessageRate LeafLookupRate { get; init; } = new(2, 10);
    public MessageRate UltrapeerLookupRate { get; init; } = new(100, 500);
    /// <summary>
    /// Credit requests a partner may send (PROTOCOL §10.3): a holder asks once a minute, and each
    /// request makes the issuer evaluate up to 64 elements, so a partner must not ask as fast as its link allows.
    /// </summary>
    public MessageRate CreditRate { get; init; } = new(1, 10);
    /// <summary>
    /// Agreement proposals a neighbour may send (PROTOCOL §7.1): each costs a signature check, and
    /// an honest node proposes to a node at most once a search, waiting out a cooldown if refused.
    /// </summary>
    public MessageRate ProposalRate { get; init; } = new(1, 10);
    /// <summary>Offer summaries an ultrapeer neighbour may send (PROTOCOL §5.7): twice what one sends, at most one per <see cref="SummaryInterval"/>.</summary>
    public MessageRate SummaryRate { get; init; } = new(2, 4);
    /// <summary>How often an ultrapeer tells its ultrapeer neighbours its offer summary at most, when it changed.</summary>
    public TimeSpan SummaryInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How far a service record floods among ultrapeers: with 6 ultrapeer links, 3 reaches up to 186 of them.</summary>
    public byte RecordTtl { get; init; } = 3;
    /// <summary>How far a lookup goes at its widest (<see cref="Overlay.LookupPlan"/>).</summary>
    public byte LookupTtl { get; init; } = 3;
    /// <summary>How long an unanswered lookup waits before it widens by one step.</summary>
    public TimeSpan LookupStepInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>After its widest step, how long a lookup waits before it is given up as a name that does not exist.</summary>
    public TimeSpan LookupTimeout { get; init; } = TimeSpan.FromSeconds(4);
    /// <summary>
    /// How long a stored record's way back to its introduction point is trusted: links change, so
    /// an introduction point republishes well within it, and a record with no fresh way back goes.
    /// </summary>
    public TimeSpan RecordRouteLifetime { get; init; } = TimeSpan.FromMinutes(10);
    public int MaxRecords { get; init; } = 4096;
    /// <summary>Ways back kept per record, one per publication that reached us, the freshest first: with an introduction point republishing every few minutes, several of each.</summary>
    public int MaxRoutesPerRecord { get; init; } = 8;
    /// <summary>How many of them a holder sends a lookup's introduction along.</summary>
    public int IntroductionRoutes { get; init; } = 2;
    /// <summary>Refused messages add strikes, which decay by one a second; at this many the neighbour is dropped and shunned.</summary>
    public double StrikeLimit { get; init; } = 30;
    public TimeSpan ShunFor { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Friends-only mode when set: links, queries and partners only among these nodes.</summary>
    public IReadOnlySet<NodeId>? Friends { get; init; }

    /// <summary>Where the overlay's choices and query ids come from: unpredictable in a real node, seeded in tests and the simulator.</summary>
    public Random Random { get; init; } = SecureRandom.Instance;
}
