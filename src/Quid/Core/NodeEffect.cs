using System.Net;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Overlay;
using Quid.Wire;

namespace Quid.Core;

/// <summary>
/// What the node core asks its host to do, or tells it happened. The core never touches a socket,
/// a timer or a file: the real node turns these into link writes, dials, probes and database rows,
/// the simulator into virtual messages and measurements.
/// </summary>
public abstract record NodeEffect
{
    private NodeEffect()
    {
    }

    /// <summary>Send a control message on the current link to <see cref="To"/>; nothing if there is none any more.</summary>
    public sealed record Send(NodeId To, ControlMessage Message) : NodeEffect;

    /// <summary>Dial <see cref="Address"/>; <see cref="Expected"/> pins the node id when known. The outcome comes back as a link up or a dial failed.</summary>
    public sealed record Dial(EndPoint Address, NodeId? Expected) : NodeEffect;

    /// <summary>Say goodbye with the reason, then close the link; it is forgotten when the host reports it down.</summary>
    public sealed record Disconnect(NodeId Peer, GoodbyeReason Reason) : NodeEffect;

    /// <summary>Close the link at once, without a goodbye: the peer said goodbye itself, or broke the protocol (<see cref="Problem"/> says how).</summary>
    public sealed record CloseLink(NodeId Peer, string? Problem) : NodeEffect;

    /// <summary>Measure what a partner delivers; the result comes back as a probe measured.</summary>
    public sealed record StartProbe(NodeId Partner, long PromisedKbps) : NodeEffect;

    /// <summary>What we grant a partner is now <see cref="GrantedKbps"/> in all: shape its traffic to it; at 0, carry none.</summary>
    public sealed record GrantChanged(NodeId Partner, long GrantedKbps) : NodeEffect;

    public sealed record AgreementFormed(Agreement Agreement) : NodeEffect;

    public sealed record AgreementEnded(Agreement Agreement, AgreementEndReason Reason) : NodeEffect;

    /// <summary>A probe's verdict on a partner (Good included).</summary>
    public sealed record VerdictReached(NodeId Partner, Verdict Verdict, double DeliveredKbps, long PromisedKbps) : NodeEffect;

    /// <summary>Whether our request is met changed: enough partners grant us, or no longer.</summary>
    public sealed record RequestMetChanged(bool Met) : NodeEffect;

    public sealed record RoleChanged(NodeRoles Roles) : NodeEffect;

    /// <summary>A message was refused (or, with <see cref="OverlayError.RateLimited"/>, dropped before decoding).</summary>
    public sealed record MessageRejected(NodeId From, OverlayError Error, string Reason) : NodeEffect;

    /// <summary>A new signed descriptor of ours went to the neighbours.</summary>
    public sealed record DescriptorPublished(Descriptor Descriptor) : NodeEffect;

    /// <summary>A search of ours was flooded.</summary>
    public sealed record SearchStarted(QueryId Query) : NodeEffect;

    /// <summary>A partner answered our <see cref="CreditRequest"/>: a <see cref="CreditIssue"/> or a <see cref="CreditRefused"/>.</summary>
    public sealed record CreditsAnswered(NodeId Partner, ControlMessage Answer) : NodeEffect;

    /// <summary>A lookup of ours found its service's record.</summary>
    public sealed record ServiceRecordFound(QueryId Lookup, ServiceRecord Record) : NodeEffect;

    /// <summary>Nothing answered a lookup of ours: as far as the network can tell, no such service.</summary>
    public sealed record ServiceLookupFailed(QueryId Lookup) : NodeEffect;

    /// <summary>A client's introduction reached a record we publish as an introduction point.</summary>
    public sealed record IntroductionArrived(QueryId Publish, QueryId Lookup, byte[] Introduction) : NodeEffect;
}

/// <summary>What becomes of a link whose handshake just finished.</summary>
public enum LinkVerdict
{
    /// <summary>The peer's link from now on; any older link to it is to be closed quietly.</summary>
    Keep,
    /// <summary>A second link to a peer we keep another link with: close this one quietly.</summary>
    Duplicate,
    /// <summary>Not wanted (not a friend, shunned, no room, stopping): say goodbye with the reason and close.</summary>
    Refuse,
}

/// <summary>
/// The core's answer to a link up: the verdict, the older link it replaces (for <see cref="LinkVerdict.Keep"/>), the goodbye
/// reason (for <see cref="LinkVerdict.Refuse"/>), and what follows. <paramref name="Evicted"/> is a link to another peer that
/// the core dropped to make room for this one (for <see cref="LinkVerdict.Keep"/>): the core has already forgotten it, and the
/// host says goodbye on it with <see cref="GoodbyeReason.Full"/> and closes it.
/// </summary>
public readonly record struct LinkDecision<TLink>(LinkVerdict Verdict, TLink? Replaced, GoodbyeReason Reason, IReadOnlyList<NodeEffect> Effects,
    TLink? Evicted = null)
    where TLink : class;
