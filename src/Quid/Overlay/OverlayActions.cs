using System.Net;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Overlay;

/// <summary>What the overlay asks its host to do; it never touches a socket itself.</summary>
public abstract record OverlayAction;
public sealed record SendOverlayMessage(NodeId To, ControlMessage Message) : OverlayAction;
/// <summary>Dial this address; <see cref="Id"/> pins the node id when known.</summary>
public sealed record DialPeer(NodeId? Id, IPEndPoint Address) : OverlayAction;
/// <summary>Say goodbye with the reason and close the link.</summary>
public sealed record DisconnectPeer(NodeId Id, GoodbyeReason Reason) : OverlayAction;
public sealed record RoleChanged(NodeRoles Roles) : OverlayAction;
/// <summary>Hits for one of our own searches arrived: offers to match now rather than at the next round.</summary>
public sealed record OffersFound(QueryId Query) : OverlayAction;
/// <summary>A lookup of ours found its service's record (checked against the lookup id and the blinded key's signature).</summary>
public sealed record ServiceRecordFound(QueryId Lookup, ServiceRecord Record) : OverlayAction;
/// <summary>Nothing answered a lookup of ours, in either ring: as far as the network can tell, no such service.</summary>
public sealed record ServiceLookupFailed(QueryId Lookup) : OverlayAction;
/// <summary>A client's introduction reached a record we published as an introduction point; once per lookup.</summary>
public sealed record IntroductionArrived(QueryId Publish, QueryId Lookup, byte[] Introduction) : OverlayAction;
/// <summary>A message was refused; for the log and the counters.</summary>
public sealed record MessageRejected(NodeId From, OverlayError Error, string Reason) : OverlayAction;

public enum OverlayError
{
    WrongSender,
    Expired,
    FromTheFuture,
    TooLongLived,
    Stale,
    RateLimited,
    UnknownQuery,
    NotAFriend,
    /// <summary>A service record that is expired, mis-dated, filed under a lookup id its key does not give, or not signed by its key.</summary>
    BadRecord,
}

/// <summary>A peer as remembered across restarts: enough to dial it again.</summary>
public sealed record CachedPeer(NodeId Id, IPEndPoint Address, DateTimeOffset LastSeen, int Failures, bool Ultrapeer);
