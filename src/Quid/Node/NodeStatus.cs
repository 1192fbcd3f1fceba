using System.Net;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Overlay;
using Quid.Wire;

namespace Quid.Node;

/// <summary>A snapshot of what a node is doing, for the CLI, the demo and tests.</summary>
public sealed record NodeStatus(
    NodeId Id,
    OverlayRole Role,
    IPEndPoint LinkEndPoint,
    IPEndPoint? SocksEndPoint,
    Block Offer,
    Block? Request,
    bool RequestMet,
    long ReceivedKbps,
    IReadOnlyList<Block> FreeBlocks,
    IReadOnlyList<NeighbourStatus> Neighbours,
    IReadOnlyList<AgreementStatus> Agreements,
    int Circuits,
    OverlayStatus Overlay,
    IReadOnlyList<PartnerStatus> Partners,
    ReachabilityStatus Reachability);

/// <summary>Where the address our descriptor gives comes from.</summary>
public enum AddressOrigin { None, Advertise, ListenAddress, PortMapping }

/// <summary>
/// Whether others can dial us, as far as the node knows: the address its descriptor gives and
/// where it came from, how many links other nodes dialed to our listener, and the port mapping.
/// </summary>
public sealed record ReachabilityStatus(IPEndPoint? Advertised, AddressOrigin Origin, long LinksDialedIn, PortMappingStatus PortMapping);

public sealed record NeighbourStatus(NodeId Id, bool Ultrapeer, IPEndPoint Remote, bool Outbound, DateTimeOffset Since, long BytesSent, long BytesReceived, long QueuedBytes);

/// <summary>One active agreement; <paramref name="Private"/>: unpublished, our circuits start there (PROTOCOL §6.6).</summary>
public sealed record AgreementStatus(string Id, NodeId Partner, bool WeProposed, Block? WeGrant, Block? TheyGrant, DateTimeOffset Since, bool Private);

/// <summary>A partner's standing in our ledger: what we measured of it and what we think of it.</summary>
public sealed record PartnerStatus(NodeId Id, long BytesGiven, long BytesReceived, double? DeliveredKbps, Verdict Verdict, int Failures, DateTimeOffset? ShunnedUntil);

/// <summary>
/// The sizes of the overlay's tables, each of which has a bound, and the queries and hits it
/// dropped rather than queue them on a link more than a second behind (flow control).
/// </summary>
public sealed record OverlayStatus(int KnownPeers, int QueryRoutes, int SearchResults, long QueriesDropped, long HitsDropped);
