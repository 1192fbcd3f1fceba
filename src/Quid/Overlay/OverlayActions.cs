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
}

/// <summary>A peer as remembered across restarts: enough to dial it again.</summary>
public sealed record CachedPeer(NodeId Id, IPEndPoint Address, DateTimeOffset LastSeen, int Failures, bool Ultrapeer);
