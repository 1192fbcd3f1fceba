using System.Net;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Overlay;
using Quid.Wire;

namespace Quid.Core;

/// <summary>Everything the node core is told about itself: what it offers and asks, where it can be reached, and its pace.</summary>
public sealed record CoreOptions
{
    public required Block Offer { get; init; }
    /// <summary>The whole request, before a multi-hop node splits it among partners; null for a donor.</summary>
    public Block? Request { get; init; }
    /// <summary>The disk we grant partners over all agreements, in MiB (PROTOCOL §10.1); 0 for none.</summary>
    public long OfferDiskMiB { get; init; }
    /// <summary>The disk we ask each partner that has it free; null for none.</summary>
    public DiskBlock? DiskRequest { get; init; }
    /// <summary>The CPU we grant partners over all agreements, in Gfuel a day; 0 for none.</summary>
    public long OfferCpuGfuel { get; init; }
    /// <summary>The CPU we ask each partner that has it free; null for none.</summary>
    public CpuBlock? CpuRequest { get; init; }
    /// <summary>Issues the credits partners are owed for the disk and CPU we grant them; null: we issue none.</summary>
    public Credits.CreditIssuer? CreditIssuer { get; init; }
    /// <summary>Hops of our circuits: a multi-hop node asks four partners for a quarter of its request each.</summary>
    public int Hops { get; init; } = 3;
    /// <summary>Overrides how many partners the hops imply: the simulator tries other defaults with it.</summary>
    public int? PartnersWanted { get; init; }
    /// <summary>Where other nodes dial us, as our descriptor says; null behind a NAT or for a node that cannot be dialed.</summary>
    public IPEndPoint? Address { get; init; }
    public ExitPolicy ExitPolicy { get; init; } = ExitPolicy.Default;
    /// <summary>Dialed while we are linked to nobody: the bootstrap peers, and friends whose address we know.</summary>
    public IReadOnlyList<(EndPoint Address, NodeId? Id)> Bootstrap { get; init; } = [];
    /// <summary>How often a node whose request is unmet floods a search for offers (the seed's "regular time intervals").</summary>
    public TimeSpan SearchInterval { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>
    /// A node that stays short searches less often: the interval doubles after each search, up to
    /// this (hits stay candidates for a minute). At 10,000 nodes the searches of nodes short for
    /// minutes, every 5 s, were most of all control traffic.
    /// </summary>
    public TimeSpan MaxSearchInterval { get; init; } = TimeSpan.FromSeconds(40);
    public TimeSpan DescriptorLifetime { get; init; } = TimeSpan.FromHours(1);
    public OverlayOptions Overlay { get; init; } = new();
    public MarketOptions Market { get; init; } = new();
    /// <summary>
    /// Which of the matching offers the market may propose to; all of them when null, as in every
    /// real node. The simulator's colluders use it to put their accomplice first.
    /// </summary>
    public Func<List<(NodeId Id, Descriptor Descriptor)>, IEnumerable<(NodeId Id, Descriptor Descriptor)>>? ChooseCandidates { get; init; }
    /// <summary>
    /// How far behind the link to a neighbour is for a control message: how long what is queued
    /// ahead of one would take to go out. Only the host knows (a real link measures its urgent
    /// lane and drain rate; the simulator's host has its upload queue); the overlay drops queries
    /// and hits for a link more than <see cref="OverlayOptions.MaxQueryBacklog"/> behind. Null:
    /// links are never behind.
    /// </summary>
    public Func<NodeId, TimeSpan>? LinkBacklog { get; init; }
}
