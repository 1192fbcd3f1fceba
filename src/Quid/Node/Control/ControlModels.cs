using System.Text.Json;
using System.Text.Json.Serialization;
using Quid.Services;

namespace Quid.Node.Control;

// What the control API answers, as JSON (camelCase, enums by name). The CLI reads the same records
// back, so the two cannot drift apart. Node ids are given in full; tables show their first 8 characters.

/// <summary>
/// The control API's JSON, with the (de)serialization code generated at build time: the native
/// (AOT) build of quid cannot make it at run time by reflection.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UseStringEnumConverter = true)]
[JsonSerializable(typeof(IdReport))]
[JsonSerializable(typeof(StatusReport))]
[JsonSerializable(typeof(IReadOnlyList<PeerReport>))]
[JsonSerializable(typeof(CircuitsReport))]
[JsonSerializable(typeof(IReadOnlyList<LedgerRow>))]
[JsonSerializable(typeof(IReadOnlyList<ThroughputSample>))]
[JsonSerializable(typeof(IReadOnlyList<ServiceReport>))]
[JsonSerializable(typeof(ServiceReport))]
[JsonSerializable(typeof(ServiceRequest))]
[JsonSerializable(typeof(ShareRequest))]
[JsonSerializable(typeof(AccessRequest))]
[JsonSerializable(typeof(AccessReport))]
[JsonSerializable(typeof(FollowRequest))]
[JsonSerializable(typeof(FollowReport))]
[JsonSerializable(typeof(IReadOnlyList<FollowReport>))]
[JsonSerializable(typeof(CacheReport))]
[JsonSerializable(typeof(CacheEntryReport))]
[JsonSerializable(typeof(CachePurgeReport))]
[JsonSerializable(typeof(CreditReport))]
[JsonSerializable(typeof(CreditGiveRequest))]
[JsonSerializable(typeof(CreditCardReport))]
[JsonSerializable(typeof(CreditTakeRequest))]
[JsonSerializable(typeof(CreditTakeReport))]
[JsonSerializable(typeof(StoreRequest))]
[JsonSerializable(typeof(RenewRequest))]
[JsonSerializable(typeof(StoredReport))]
[JsonSerializable(typeof(IReadOnlyList<StoredReport>))]
[JsonSerializable(typeof(HostedReport))]
[JsonSerializable(typeof(DeployRequest))]
[JsonSerializable(typeof(TopUpRequest))]
[JsonSerializable(typeof(DeployedReport))]
[JsonSerializable(typeof(IReadOnlyList<DeployedReport>))]
[JsonSerializable(typeof(MailboxRequest))]
[JsonSerializable(typeof(MailboxReport))]
[JsonSerializable(typeof(IReadOnlyList<MailboxReport>))]
[JsonSerializable(typeof(MailSendRequest))]
[JsonSerializable(typeof(MailFetchReport))]
[JsonSerializable(typeof(MailSentReport))]
[JsonSerializable(typeof(ErrorReport))]
public sealed partial class ControlJson : JsonSerializerContext;

/// <summary>How far a node is from being useful: linked, partnered, with a circuit ready.</summary>
public enum NodePhase
{
    /// <summary>No neighbour yet: dialing the configured or remembered peers.</summary>
    Joining,
    /// <summary>Linked, but the request is not met: searching the overlay for partners.</summary>
    Searching,
    /// <summary>Partners grant us bandwidth, but no circuit is built yet.</summary>
    Building,
    /// <summary>Ready: a circuit is waiting for streams (or, for a donor, the node is linked).</summary>
    Ready,
}

public sealed record IdReport(string Id, string Brief);

/// <param name="RequestKbps">The request as configured, before it is split among partners; null for a donor.</param>
/// <param name="ReceivedGrantKbps">What our partners grant us, in all.</param>
/// <param name="GrantedKbps">What we grant our partners, in all.</param>
/// <param name="Circuits">Our own open circuits.</param>
/// <param name="RelayedCircuits">Circuits we carry for others, as a middle hop or the exit.</param>
public sealed record StatusReport(
    string Id,
    string Role,
    NodePhase Phase,
    string PhaseText,
    DateTimeOffset Started,
    double UptimeSeconds,
    string Listen,
    string? Socks,
    int Hops,
    long OfferKbps,
    long? RequestKbps,
    bool RequestMet,
    long ReceivedGrantKbps,
    long GrantedKbps,
    long FreeKbps,
    IReadOnlyList<OfferBlockReport> OfferBlocks,
    RatesReport Rates,
    int Neighbours,
    int Agreements,
    int Circuits,
    int RelayedCircuits,
    int Streams,
    int KnownPeers,
    ReachabilityReport Reachability);

/// <summary>Whether others can dial this node, said no more strongly than is known.</summary>
public enum Reachability
{
    /// <summary>Our descriptor gives an address, and links from other nodes have arrived at our listener.</summary>
    Reachable,
    /// <summary>Our descriptor gives an address, but no other node has dialed us yet.</summary>
    Advertised,
    /// <summary>No address in our descriptor: the node dials out only.</summary>
    NotReachable,
}

/// <param name="Address">The address our descriptor gives, if any.</param>
/// <param name="Origin">Where it comes from: Advertise, ListenAddress, PortMapping, or None.</param>
/// <param name="LinksDialedIn">Links other nodes dialed to our listener since the node started.</param>
/// <param name="PortMapping">off, asking, mapped or failed.</param>
/// <param name="PortMappingText">What the port mapping did, in words: the gateway and protocol, or why there is none.</param>
/// <param name="Text">The whole of it in a line, as <c>quid status</c> shows it.</param>
public sealed record ReachabilityReport(
    Reachability State,
    string? Address,
    string Origin,
    long LinksDialedIn,
    string PortMapping,
    string? Gateway,
    string? PortMappingProtocol,
    string PortMappingText,
    string Text);

/// <summary>One block of the offer as the buddy allocator holds it: where it sits, how large, and who has it.</summary>
public sealed record OfferBlockReport(long OffsetKbps, long Kbps, OfferBlockState State, string? Partner);

public enum OfferBlockState
{
    Free,
    Granted,
    /// <summary>Set aside for a proposal still waiting for its answer.</summary>
    Reserved,
}

/// <summary>Live rates from the ledger's counters, and the counters themselves.</summary>
public sealed record RatesReport(double GivenBytesPerSecond, double ReceivedBytesPerSecond, long GivenBytes, long ReceivedBytes);

public sealed record ThroughputSample(DateTimeOffset Time, double GivenBytesPerSecond, double ReceivedBytesPerSecond);

public sealed record PeerReport(
    string Id,
    bool Ultrapeer,
    string Remote,
    bool Outbound,
    DateTimeOffset Since,
    long BytesSent,
    long BytesReceived,
    long QueuedBytes,
    long WeGrantKbps,
    long TheyGrantKbps,
    string? Verdict,
    bool PrivateAgreement);

/// <summary>A circuit we built: its hops, first to last. Streams' destinations are not reported.</summary>
public sealed record CircuitReport(IReadOnlyList<string> Path, DateTimeOffset Created, int Streams);

/// <summary>
/// Our circuits with their paths; of the circuits we carry for others only the numbers, since
/// who built them is what a relay must not tell.
/// </summary>
public sealed record CircuitsReport(int Hops, IReadOnlyList<CircuitReport> Circuits, int Relayed, int Exiting, int CarriedStreams);

/// <summary>A row of the ledger, live from the node or read from its database.</summary>
public sealed record LedgerRow(
    string Partner,
    string Verdict,
    long WeGrantKbps,
    long PromisedKbps,
    double? DeliveredKbps,
    long BytesGiven,
    long BytesReceived,
    int ActiveAgreements,
    int PastAgreements,
    DateTimeOffset? ShunnedUntil,
    DateTimeOffset? LastProbe)
{
    public static LedgerRow From(LedgerEntry e) => new(e.Partner.ToString(), e.Verdict.ToString(), e.WeGrantKbps, e.TheyGrantKbps, e.DeliveredKbps,
        e.BytesGiven, e.BytesReceived, e.ActiveAgreements, e.PastAgreements, e.ShunnedUntil, e.LastProbe);
}

/// <summary>A service this node publishes under a session address (<c>quid serve</c>, <c>quid share</c>).</summary>
/// <param name="Address">The address clients reach it by now, <c>&lt;56 characters&gt;.quid</c>: for a moving service, this period's.</param>
/// <param name="Published">Whether an introduction point has published its record yet; until then no lookup finds it.</param>
/// <param name="IntroductionPointsUp">Introduction points publishing its record now (it keeps two).</param>
/// <param name="OpenMeetings">Clients met and still connected.</param>
/// <param name="Introduced">Introductions that opened and were new.</param>
/// <param name="Met">Clients met since it was published.</param>
/// <param name="Dropped">Introductions dropped: under load, unreadable or replayed.</param>
/// <param name="Secret">A moving service's secret (<c>quid-secret-…</c>), from which those who hold it derive each period's address; null for the other kinds.</param>
/// <param name="AddressUntil">When a moving service's address gives way to the next period's; null for the other kinds.</param>
/// <param name="AccessKey">A private service's access key (<c>quid-secret-…</c>), without which nobody finds it; null for a public one.</param>
public sealed record ServiceReport(
    string Name,
    AddressKind Kind,
    string Address,
    bool Published,
    DateTimeOffset Started,
    int IntroductionPointsUp,
    int OpenMeetings,
    long Introduced,
    long Met,
    long Dropped,
    string? Secret,
    DateTimeOffset? AddressUntil,
    string? AccessKey = null);

/// <summary>What <c>POST /api/services</c> takes: publish the local TCP service at <paramref name="Target"/>.</summary>
/// <param name="Name">1 to 64 letters, digits and dashes; a stable or moving service's key is kept under it.</param>
/// <param name="Target"><c>host:port</c>, the host an IP address (<c>[…]</c> for IPv6) or <c>localhost</c>.</param>
/// <param name="Kind"><c>stable</c>, <c>ephemeral</c> (the default) or <c>moving</c>.</param>
/// <param name="Private">Only holders of its access key find it (a private share).</param>
public sealed record ServiceRequest(string? Name, string? Target, string? Kind, bool Private = false);

/// <summary>What <c>POST /api/shares</c> takes: files and folders to download, or a folder to receive uploads in.</summary>
/// <param name="Paths">Absolute paths of files and folders, as the node sees them.</param>
/// <param name="Receive">An absolute path of a folder to store uploads in (made if missing), instead of <paramref name="Paths"/>.</param>
public sealed record ShareRequest(string? Name, IReadOnlyList<string>? Paths, string? Receive, string? Kind, bool Private = false);

/// <summary>What <c>POST /api/access</c> takes: the access key of a private service, so that this node's proxies reach it.</summary>
public sealed record AccessRequest(string? Address, string? Key);

/// <summary>What <c>POST /api/access</c> answers: the private service this node's proxies may now reach.</summary>
public sealed record AccessReport(string Address);

/// <summary>What <c>POST /api/follows</c> takes: follow a moving service from its secret under a name this node's proxies reach it by.</summary>
/// <param name="Name">1 to 40 letters, digits and dashes: the service is reached as <c>NAME.quid</c>.</param>
/// <param name="Secret">The service's secret, <c>quid-secret-…</c>, as its publisher printed it.</param>
/// <param name="Key">Its access key, if it is private.</param>
public sealed record FollowRequest(string? Name, string? Secret, string? Key);

/// <summary>A moving service followed: reached as <paramref name="Host"/>, at <paramref name="Address"/> until <paramref name="Until"/>.</summary>
public sealed record FollowReport(string Name, string Host, string Address, DateTimeOffset Until);

public sealed record ErrorReport(string Error);

/// <summary>The exit cache: its figures since the node started and the entries a filter picked (the most recently stored first).</summary>
/// <param name="Enabled">False when the node keeps no cache (<c>--cache</c> off); the rest is then zero.</param>
/// <param name="Requests">Requests the cache could have answered: GET or HEAD without credentials or conditions, on a port it reads.</param>
/// <param name="BytesSaved">Body bytes sent from the store: what the origins did not send again.</param>
/// <param name="Matching">Entries the filter picked; at most a thousand are listed in <paramref name="Items"/>.</param>
public sealed record CacheReport(
    bool Enabled, long Quota, long Used, int Entries, long Requests, long Hits, double HitRatio, double ByteHitRatio, long BytesServed, long BytesSaved,
    long Stored, int Matching, IReadOnlyList<CacheEntryReport> Items);

/// <summary>One stored response. <paramref name="Key"/> names it to <c>quid cache show|save</c>; <paramref name="Head"/> (its field lines) only when one entry is asked for.</summary>
public sealed record CacheEntryReport(
    string Key, string Url, string Host, string Path, string Type, long Size, long Hits, double AgeSeconds, DateTimeOffset StoredAt, int Status, bool Fresh,
    IReadOnlyList<string>? Head);

public sealed record CachePurgeReport(int Removed);

/// <summary>Credits held, by issuer (<paramref name="MiBDays"/>: what they buy at it, in MiB kept for a day).</summary>
public sealed record CreditBalanceReport(string Issuer, long MiBDays, int Credits, DateTimeOffset SoonestExpiry);

/// <summary>
/// Credits (PROTOCOL §10): those held, by issuer; as an issuer, what was issued to partners and
/// exchanged at our desk since start, the spent set's size, and the disk and CPU we offer and ask.
/// </summary>
public sealed record CreditReport(
    IReadOnlyList<CreditBalanceReport> Balances, long IssuedMiBDays, long ExchangedMiBDays, long SpentCredits,
    long OfferDiskMiB, long FreeDiskMiB, long? RequestDiskMiB, ulong Epoch, DateTimeOffset EpochEnds,
    long OfferCpuGfuel = 0, long FreeCpuGfuel = 0, long? RequestCpuGfuel = null);

public sealed record CreditGiveRequest(string Issuer, long Amount);

/// <summary>A card of <paramref name="Amount"/> MiB·days, as <c>quid credits take</c> reads it.</summary>
public sealed record CreditCardReport(string Card, long Amount);

public sealed record CreditTakeRequest(string Card);

public sealed record CreditTakeReport(long Taken);

/// <summary>Store the file at <paramref name="Path"/> (read by the node) for <paramref name="Days"/> days in <paramref name="Copies"/> copies.</summary>
public sealed record StoreRequest(string Path, int Days = 7, int Copies = 3);

public sealed record RenewRequest(int Days = 7);

/// <summary>One copy of a stored file: its host, until when it is paid, the audits it can still answer, and how the last went (Held, Expiring, Unreachable, Lost).</summary>
public sealed record StoredCopyReport(string Host, DateTimeOffset PaidUntil, string State, int AuditsLeft);

/// <summary>A file this node stored on others' nodes; <paramref name="Id"/> names it to <c>quid store get|renew|rm</c>.</summary>
public sealed record StoredReport(string Id, string Name, long Size, int Days, int CopiesWanted, DateTimeOffset Created, IReadOnlyList<StoredCopyReport> Copies);

/// <summary>An object this node holds for someone: never a name or an owner, which it does not know.</summary>
public sealed record HostedObjectReport(string Id, long Size, DateTimeOffset PaidUntil, DateTimeOffset StoredAt, DateTimeOffset? WarnedAt);

/// <summary>What this node holds for others, within its disk offer (<paramref name="Quota"/> 0: it offers none).</summary>
public sealed record HostedReport(long Quota, long Used, IReadOnlyList<HostedObjectReport> Objects, long OfferCpuGfuel = 0, IReadOnlyList<HostedProgramReport>? Programs = null);

/// <summary>A program this node runs for someone it does not know: never who.</summary>
public sealed record HostedProgramReport(string Id, string State, long Fuel, long MemoryBytes, long StoredBytes, long Postage, DateTimeOffset Deployed,
    DateTimeOffset? DeleteAt, DateTimeOffset? WarnedAt, bool Low, string Address);

/// <summary>Deploy the module at <paramref name="Path"/> on node <paramref name="On"/>, paying <paramref name="Credits"/> of its credits; each message to it pays <paramref name="Postage"/>.</summary>
public sealed record DeployRequest(string Path, string On, long Credits, uint Postage = 0, string? Name = null);

/// <summary>Top a program up with <paramref name="Credits"/> of its host's: <paramref name="On"/> names the host of a program that is not ours.</summary>
public sealed record TopUpRequest(long Credits, string? On = null);

/// <summary>A program we deployed, as its host said at the last status.</summary>
public sealed record DeployedReport(string Id, string Name, string Host, string Address, DateTimeOffset Deployed, string State, long Fuel, bool Low,
    DateTimeOffset? DeleteAt, DateTimeOffset CheckedAt);

/// <summary>Make a mailbox (the remailer module) on node <paramref name="On"/>: forwards wait up to <paramref name="MaxDelayMs"/>.</summary>
public sealed record MailboxRequest(string On, long Credits, uint Postage = 0, uint MaxDelayMs = 30_000);

/// <summary>A mailbox of ours: what others send mail to (<paramref name="MailAddress"/>: key@address), and the program it runs in.</summary>
public sealed record MailboxReport(string MailAddress, string Address, string Program, string Host);

/// <summary>
/// Send <paramref name="Message"/> (base64) to mail address <paramref name="To"/>, through the
/// remailer at <paramref name="Via"/> when given, paying it <paramref name="Postage"/> credits of
/// node <paramref name="Issuer"/>, its host.
/// </summary>
public sealed record MailSendRequest(string To, string Message, string? Via = null, long Postage = 0, string? Issuer = null);

/// <summary>Mail sent: its size, and whether it went through a remailer.</summary>
public sealed record MailSentReport(int Bytes, bool ThroughRemailer);

/// <summary>Mail fetched from our mailboxes, opened, each base64.</summary>
public sealed record MailFetchReport(IReadOnlyList<string> Messages);
