using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Quid.Cache;
using Quid.Circuits;
using Quid.Core;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Links;
using Quid.Overlay;
using Quid.Proxy;
using Quid.Proxy.Socks;
using Quid.Wire;

namespace Quid.Node;

/// <summary>
/// One Quid node on real sockets: the node core (the overlay and the market) on one event loop,
/// the circuits, the proxies, the ledger's database. Links hand their control messages to the
/// loop through a channel and their circuit cells straight to the circuit table; a timer feeds
/// the loop its ticks; everything the core decides comes back as effects that the loop carries
/// out. No lock guards the core: only the loop touches it.
/// </summary>
public sealed partial class QuidNode : IControlMessages, IAsyncDisposable
{
    private static readonly TimeSpan PeerCacheInterval = TimeSpan.FromMinutes(1);
    /// <summary>After a new link, the peer cache is written this soon, so that even a node killed young rejoins.</summary>
    private static readonly TimeSpan PeerCacheAfterLink = TimeSpan.FromSeconds(1);
    /// <summary>
    /// Control bytes one link may have waiting for the loop. A neighbour that sends faster than the
    /// node decodes is flooding, and its link is closed rather than let it fill our memory.
    /// </summary>
    private const long MaxControlBacklog = 1 << 20;

    private readonly NodeOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ILogger _linkLogger;
    private readonly Channel<NodeEvent> _events = Channel.CreateUnbounded<NodeEvent>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CircuitTable _circuits;
    private readonly Prober _prober;
    private readonly CircuitPool _pool;
    private readonly NodeDatabase _database;
    private readonly Ledger _ledger;
    private readonly Shaper _down;
    private readonly Shaper _up;
    private readonly ConcurrentDictionary<Link, ControlBacklog> _backlogs = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly IPAddress? _bindAddress;
    private NodeCore<Link> _core = null!;
    private LinkListener? _listener;
    private SocksListener? _socks;
    private HttpProxyListener? _httpProxy;
    private Task _loop = Task.CompletedTask;
    private Task _ticker = Task.CompletedTask;
    /// <summary>What the circuits may ask from their own threads: a copy the loop replaces after each batch of events that changed it.</summary>
    private volatile PartnerView _partners = PartnerView.Empty;
    private bool _partnersChanged;
    private DateTimeOffset _lastPeerSave;
    /// <summary>The vanguards as last saved: they are saved again when the pool's differ.</summary>
    private IReadOnlyList<Vanguard> _savedVanguards;
    private DateTimeOffset _lastLedgerSave;
    private bool _newLinks;
    private int _tickQueued;
    private long _refusedLinks;
    private long _linksDialedIn;
    /// <summary>What the descriptor gives when no port is mapped: the advertise setting, or the listen address if specific.</summary>
    private IPEndPoint? _baseAddress;
    private PortMappingHost? _portMapping;
    private readonly OwnAddresses _ownAddresses;
    private readonly ExitCache? _cache;
    private string _portMappingNotTried = "";

    /// <summary>What the loop is fed.</summary>
    private abstract record NodeEvent;
    private sealed record TickDue : NodeEvent;
    private sealed record LinkEstablished(Link Link, EndPoint? Dialed) : NodeEvent;
    private sealed record ControlArrived(Link Link, byte[] Payload) : NodeEvent;
    private sealed record LinkClosed(Link Link) : NodeEvent;
    private sealed record DialFailed(EndPoint Address, NodeId? Expected) : NodeEvent;
    private sealed record ProbeMeasured(NodeId Partner, double DeliveredKbps, long PromisedKbps) : NodeEvent;
    /// <summary>Work that must see the core as it is: status, a search, path choice, stopping.</summary>
    private sealed record OnLoop(Action Run) : NodeEvent;

    private sealed class ControlBacklog
    {
        public long Bytes;
    }

    /// <summary>
    /// Partners with their links and what we grant each other, for the circuits' admission and
    /// extension; <paramref name="Private"/>: those whose agreements are all private, never extended to.
    /// </summary>
    private sealed record PartnerView(IReadOnlyDictionary<NodeId, Link> Links, IReadOnlyDictionary<NodeId, long> GrantedTo, IReadOnlyDictionary<NodeId, long> GrantedBy,
        IReadOnlySet<NodeId> Private)
    {
        public static readonly PartnerView Empty = new(new Dictionary<NodeId, Link>(), new Dictionary<NodeId, long>(), new Dictionary<NodeId, long>(), new HashSet<NodeId>());
    }

    private QuidNode(NodeOptions options, NodeIdentity identity, NodeDatabase database, TimeProvider time, ILoggerFactory loggers)
    {
        if (options.Hops is < 1 or > Cell.MaxRelayEarly)
            throw new ArgumentException($"Hops must be between 1 and {Cell.MaxRelayEarly}; {options.Hops} was given.");
        _options = options;
        _time = time;
        _database = database;
        Identity = identity;
        _logger = loggers.CreateLogger("Quid.Node");
        _linkLogger = loggers.CreateLogger("Quid.Links");
        _bindAddress = options.OutboundBindAddress ?? options.SpecificListenAddress;
        _ledger = new Ledger(time);
        foreach (var account in database.LoadAccounts()) _ledger.Add(account);
        _down = new Shaper(options.Offer.BytesPerSecond, time);
        _up = new Shaper(options.Offer.BytesPerSecond, time);
        var circuitLogger = loggers.CreateLogger("Quid.Circuits");
        long? descriptorLimit = Descriptors.Limit();
        var exitSockets = new ExitSockets(options.Circuits.ExitSocketBudget ?? ExitSockets.BudgetFor(descriptorLimit ?? ExitSockets.AssumedDescriptorLimit));
        // An operator sizing LimitNOFILE or exit-sockets sees what the node made of them.
        _logger.LogInformation("Streams exiting here may hold up to {Budget} sockets ({Source}; open-files limit {Limit})", exitSockets.Budget,
            options.Circuits.ExitSocketBudget is null ? "exit-sockets auto" : "exit-sockets", descriptorLimit?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown");
        _ownAddresses = new OwnAddresses(new[] { options.SpecificListenAddress, options.Advertise?.Address, _bindAddress }.OfType<IPAddress>(), time);
        _cache = OpenCache(options, time, loggers.CreateLogger("Quid.Cache"));
        var exit = new StreamExit(new ExitConnector(options.ExitPolicy, _bindAddress, options.Circuits.ExitConnectTimeout, time, options.ExitResolver, _ownAddresses),
            exitSockets, time, circuitLogger, _cache, options.Cache?.Ports);
        _circuits = new CircuitTable(identity, options.Circuits, exit, new CircuitPolicy(AdmitsCircuitsFrom, ExtendTo, _ledger.Account, GrantKbps), time, circuitLogger);
        OpenCredits();
        OpenStorage();
        OpenPrograms();
        var builder = new CircuitBuilder(_circuits, options.Circuits, time, circuitLogger);
        _prober = new Prober(builder, time, circuitLogger);
        _pool = new CircuitPool(builder, options.Paths with { Hops = options.Hops },
            new PathSource(identity.Id, PathGraphAsync, SocksAuth.None), time, circuitLogger);
        // A restart must not draw services new vanguards: each new one is another set for an adversary to intersect.
        _pool.RestoreVanguards(_savedVanguards = _database.LoadVanguards());
        StartServices(circuitLogger);
    }

    public NodeIdentity Identity { get; }
    public NodeId Id => Identity.Id;
    /// <summary>What the node was started with: the control API reports the request as the user asked for it, before it is split among partners.</summary>
    public NodeOptions Options => _options;
    public IPEndPoint LinkEndPoint => _listener!.LocalEndPoint;
    public IPEndPoint? SocksEndPoint => _socks?.LocalEndPoint;
    public IPEndPoint? HttpProxyEndPoint => _httpProxy?.LocalEndPoint;
    public CircuitTable Circuits => _circuits;
    /// <summary>The exit cache, when the node keeps one.</summary>
    public ExitCache? Cache => _cache;
    public CircuitPool Pool => _pool;
    /// <summary>Links refused after the handshake: not a friend, shunned, or no room.</summary>
    public long RefusedLinks => Interlocked.Read(ref _refusedLinks);

    /// <summary>Creates or loads the identity in the data directory, opens the listeners and joins the network.</summary>
    /// <remarks>
    /// If a listener cannot open (its port is taken, say), those already open are closed again before the error is thrown.
    /// A data directory whose key or ledger is damaged, missing or foreign is a <see cref="NodeStateException"/>.
    /// </remarks>
    public static async Task<QuidNode> StartAsync(NodeOptions options, ILoggerFactory loggers, TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        var logger = loggers.CreateLogger("Quid.Node");
        if (DataDirectory.Prepare(options.DataDirectory) is { } warning) logger.LogWarning("{Warning}", warning);
        if (options.NewIdentity && DataDirectory.Archive(options.DataDirectory, time.GetUtcNow()) is { } archive)
            logger.LogWarning("Moved the old identity.key and quid.db to {Archive}: starting as a new node", archive);
        var identity = DataDirectory.OpenIdentity(options.DataDirectory, out bool created);
        NodeDatabase? database = null;
        QuidNode? node = null;
        try
        {
            database = NodeDatabase.Open(options.DataDirectory, identity.Id);
            node = new QuidNode(options, identity, database, time, loggers);
            node.Open(created);
            return node;
        }
        catch
        {
            if (node is not null) await node.CloseListenersAsync().ConfigureAwait(false);
            database?.Dispose();
            identity.Dispose();
            throw;
        }
    }

    /// <summary>The exit cache in the data directory's <c>cache</c> folder; its first start says what it will hold.</summary>
    private static ExitCache? OpenCache(NodeOptions options, TimeProvider time, ILogger logger)
    {
        if (options.Cache is not { } settings) return null;
        string directory = Path.Combine(options.DataDirectory, "cache");
        if (!CacheStore.Exists(directory))
            logger.LogWarning("The exit cache is on, for the first time here: it keeps copies of plaintext HTTP responses that partners' streams fetch " +
                "through this node, up to {Quota} in {Directory}. Other people's traffic passes through it; 'quid cache' shows what it holds, 'quid cache wipe' empties it",
                CacheSize.Format(settings.Quota), directory);
        var store = CacheStore.Open(directory, settings.Quota, time, logger);
        logger.LogInformation("Exit cache: {Entries} responses, {Used} of {Quota}", store.Count, CacheSize.Format(store.Used), CacheSize.Format(settings.Quota));
        return new ExitCache(store, time, logger);
    }

    /// <summary>
    /// The core's settings from the node's: the same function of the same options every time, so a
    /// test can check that the simulator configures its nodes' cores as a real node would.
    /// </summary>
    internal static CoreOptions CoreOptionsFor(NodeOptions options, IPEndPoint? address)
    {
        var friends = options.Friends.Select(ParseFriend).ToList();
        return new CoreOptions
        {
            Offer = options.Offer,
            Request = options.Request,
            Hops = options.Hops,
            Address = address,
            ExitPolicy = options.ExitPolicy,
            Bootstrap = [.. options.Peers.Select(p => (ParseEndPoint(p), (NodeId?)null)),
                .. friends.Where(f => f.Address is not null).Select(f => (f.Address!, (NodeId?)f.Id))],
            SearchInterval = options.SearchInterval,
            DescriptorLifetime = options.DescriptorLifetime,
            Overlay = friends.Count == 0 ? options.Overlay : options.Overlay with { Friends = friends.Select(f => f.Id).ToHashSet() },
            Market = options.Market,
            OfferDiskMiB = options.OfferDisk / DiskBlock.BaseBytes,
            DiskRequest = options.RequestDisk,
            OfferCpuGfuel = options.OfferCpuGfuel,
            CpuRequest = options.RequestCpu,
        };
    }

    private static (NodeId Id, EndPoint? Address) ParseFriend(string entry)
    {
        var parts = entry.Split('@', 2);
        if (!NodeId.TryParse(parts[0], out var id))
            throw new ArgumentException($"Friend '{entry}' is not a node id (32 base32 characters, as 'quid id' prints), optionally followed by @host:port.");
        return (id, parts.Length == 2 ? ParseEndPoint(parts[1]) : null);
    }

    /// <summary>A peer's host:port; a name stays a name, resolved when it is dialed.</summary>
    private static EndPoint ParseEndPoint(string text)
    {
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.CultureInfo.InvariantCulture, out int port) || port is <= 0 or > 65535
            || text[..colon].Trim('[', ']') is not { Length: > 0 } host)
            throw new ArgumentException($"Peer '{text}' is not host:port.");
        return IPAddress.TryParse(host, out var literal) ? new IPEndPoint(literal, port) : new DnsEndPoint(host, port);
    }

    private void Open(bool identityCreated)
    {
        _logger.LogInformation("Node {Id} ({Origin})", Id, identityCreated ? "new identity" : "identity loaded");
        // The proxies open first: a proxy address that is not loopback stops the node before it touches the network.
        if (_options.Socks is { } socks)
        {
            _socks = new SocksListener(socks, OpenStreamAsync, (host, isolation, ct) => _pool.ResolveAsync(host, isolation, ct), _time, _logger, _options.Proxies);
            _socks.Start();
            _logger.LogInformation("SOCKS proxy on {EndPoint}", _socks.LocalEndPoint);
        }
        if (_options.HttpProxy is { } httpProxy)
        {
            _httpProxy = new HttpProxyListener(httpProxy, OpenStreamAsync, _time, _logger, _options.Proxies);
            _httpProxy.Start();
            _logger.LogInformation("HTTP proxy on {EndPoint}", _httpProxy.LocalEndPoint);
        }
        // Links accepted from here on wait in the channel until the loop runs.
        _listener = new LinkListener(_options.Listen, Identity, _options.Links, _time, _linkLogger, link => Post(new LinkEstablished(link, null), link));
        _listener.Start();
        var address = _baseAddress = _options.Advertise ?? (_options.SpecificListenAddress is not null ? _listener.LocalEndPoint : null);
        _core = new NodeCore<Link>(Identity, CoreOptionsFor(_options, address) with { LinkBacklog = LinkBacklog, CreditIssuer = _issuer }, _time, _ledger);
        var cached = _database.LoadPeers();
        _core.Overlay.AddCachedPeers(cached);
        _logger.LogInformation("Accepting links on {EndPoint}; offering {Offer}, requesting {Request}{Cache}{Friends}",
            _listener.LocalEndPoint, _options.Offer, _options.Request?.ToString() ?? "nothing (donor)",
            cached.Count > 0 ? $"; {cached.Count} peers remembered" : "",
            _core.Overlay.FriendsOnly ? $"; friends only ({_options.Friends.Count})" : "");
        _lastPeerSave = _lastLedgerSave = _time.GetUtcNow();
        _loop = Task.Run(LoopAsync);
        Post(new OnLoop(() => Execute(_core.Start())));
        _ticker = Task.Run(TickerAsync);
        StartPortMapping();
        RepublishServices();
        StartPrograms();
    }

    /// <summary>
    /// How far behind our link to a neighbour is for a control message (they go before the relay
    /// cells), for the overlay's flow control; asked on the loop.
    /// </summary>
    private TimeSpan LinkBacklog(NodeId peer) => _core.LinkTo(peer)?.UrgentBacklog ?? TimeSpan.Zero;

    /// <summary>Asks the gateway for a port where it can matter; each mapping obtained or lost changes the descriptor's address on the loop.</summary>
    private void StartPortMapping()
    {
        if (PortMappingHost.WhyNot(_options) is { } why)
        {
            _portMappingNotTried = why;
            return;
        }
        if (PortMappingHost.FindGateway(_options) is not { } gateway)
        {
            _portMappingNotTried = "no default gateway in /proc/net/route";
            _logger.LogInformation("No port mapping: {Reason}; the node dials out only", _portMappingNotTried);
            return;
        }
        try
        {
            _portMapping = PortMappingHost.Start(gateway, _options.SpecificListenAddress, (ushort)_listener!.LocalEndPoint.Port, _time, _logger, mapping =>
            {
                // Our gateway's outside address is ours: an exit here refuses streams to it.
                if (mapping is not null) _ownAddresses.Learned(mapping.External.Address);
                Post(new OnLoop(() => Execute(_core.Readvertise(mapping?.External ?? _baseAddress))));
            });
        }
        catch (SocketException e)
        {
            _portMappingNotTried = $"cannot reach gateway {gateway.Address}: {e.Message}";
            _logger.LogInformation("No port mapping: {Reason}; the node dials out only", _portMappingNotTried);
        }
    }

    // ---- The loop ----

    /// <summary>Queues an event for the loop; false once the node has stopped (a link it carried is then closed).</summary>
    private bool Post(NodeEvent e, Link? link = null)
    {
        if (_events.Writer.TryWrite(e)) return true;
        link?.Close(null);
        return false;
    }

    private async Task LoopAsync()
    {
        var reader = _events.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out var e)) Handle(e);
            if (_partnersChanged) RefreshPartners();
        }
    }

    private void Handle(NodeEvent e)
    {
        try
        {
            switch (e)
            {
                case TickDue:
                    Volatile.Write(ref _tickQueued, 0);
                    Tick();
                    break;
                case LinkEstablished established:
                    OnLinkEstablished(established.Link, established.Dialed);
                    break;
                case ControlArrived control:
                    if (_backlogs.TryGetValue(control.Link, out var backlog)) Interlocked.Add(ref backlog.Bytes, -control.Payload.Length);
                    Execute(_core.Receive(control.Link, control.Link.PeerId, control.Payload));
                    break;
                case LinkClosed closed:
                    _backlogs.TryRemove(closed.Link, out _);
                    _partnersChanged = true;
                    Execute(_core.LinkDown(closed.Link, closed.Link.PeerId));
                    break;
                case DialFailed failed:
                    Execute(_core.DialFailed(failed.Address, failed.Expected));
                    break;
                case ProbeMeasured probe:
                    Execute(_core.ProbeMeasured(probe.Partner, probe.DeliveredKbps, probe.PromisedKbps));
                    break;
                case OnLoop work:
                    work.Run();
                    break;
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _logger.LogError(ex, "Handling {Event} failed; the node carries on", e.GetType().Name);
        }
    }

    /// <summary>Runs <paramref name="work"/> on the loop, where the core may be read, and returns what it returns.</summary>
    private Task<T> OnLoopAsync<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var posted = Post(new OnLoop(() =>
        {
            try
            {
                done.SetResult(work());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        }));
        return posted ? done.Task : Task.FromException<T>(new ObjectDisposedException(nameof(QuidNode), "The node has stopped."));
    }

    private async Task TickerAsync()
    {
        using var timer = new PeriodicTimer(_options.TickInterval, _time);
        try
        {
            do
            {
                // A loop that is behind gets one tick, not a backlog of them.
                if (Interlocked.Exchange(ref _tickQueued, 1) == 0) Post(new TickDue());
            }
            while (await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>One round of upkeep: the core's, the circuits built ahead, and the peer cache and ledger written now and then.</summary>
    private void Tick()
    {
        Execute(_core.Tick());
        _pool.Maintain();
        _serviceClient.Maintain();
        ForgetClosedCircuits();
        ReleaseWaitingIntroductions();
        AskForCredits();
        LookAfterStorage();
        LookAfterPrograms();
        MemoryReturn.Tick(_logger);
        var now = _time.GetUtcNow();
        if (now - _lastPeerSave >= PeerCacheInterval || (_newLinks && now - _lastPeerSave >= PeerCacheAfterLink))
        {
            _lastPeerSave = now;
            _newLinks = false;
            _database.SavePeers(_core.Overlay.ExportPeers());
        }
        if (now - _lastLedgerSave >= _options.LedgerFlushInterval)
        {
            _lastLedgerSave = now;
            SaveLedger();
        }
        SaveVanguards();
    }

    private void SaveVanguards()
    {
        var vanguards = _pool.Vanguards;
        if (vanguards.SequenceEqual(_savedVanguards)) return;
        _database.SaveVanguards(vanguards);
        _savedVanguards = vanguards;
    }

    private void SaveLedger()
    {
        foreach (var agreement in _core.Market.Active) _database.SaveAgreement(agreement);
        _database.SaveAccounts(_ledger.Accounts);
    }

    // ---- Links ----

    private async Task DialAsync(EndPoint address, NodeId? expected)
    {
        try
        {
            var target = address as IPEndPoint ?? await ResolveAsync((DnsEndPoint)address).ConfigureAwait(false);
            var link = await Link.ConnectAsync(target, _bindAddress, Identity, expected, _options.Links, _time, _linkLogger, _stopping.Token).ConfigureAwait(false);
            Post(new LinkEstablished(link, address), link);
        }
        catch (Exception e) when (e is LinkException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            _logger.LogDebug("Could not link to {Peer}: {Reason}", address, e.Message);
            Post(new DialFailed(address, expected));
        }
    }

    /// <summary>A bootstrap peer's name is resolved here: this is the node's own overlay traffic, never a user's destination.</summary>
    private async Task<IPEndPoint> ResolveAsync(DnsEndPoint peer)
    {
        var addresses = await Dns.GetHostAddressesAsync(peer.Host, _stopping.Token).ConfigureAwait(false);
        var address = addresses.FirstOrDefault(a => _bindAddress is null || a.AddressFamily == _bindAddress.AddressFamily) ?? addresses.FirstOrDefault()
            ?? throw new SocketException((int)SocketError.HostNotFound);
        return new IPEndPoint(address, peer.Port);
    }

    private void OnLinkEstablished(Link link, EndPoint? dialed)
    {
        // Any handshake that reached our listener shows that others can dial us, even one we then refuse.
        if (!link.Outbound) _linksDialedIn++;
        var decision = _core.LinkUp(link, link.PeerId, link.Outbound, link.RemoteEndPoint, link.PeerSigningKey, dialed);
        switch (decision.Verdict)
        {
            case LinkVerdict.Refuse:
                Interlocked.Increment(ref _refusedLinks);
                _logger.LogDebug("Refusing link with {Peer}: {Reason}", link.PeerId.Brief, decision.Reason);
                // Started only so that the goodbye is written; what the peer sends meanwhile is not its own link's.
                link.Start(_circuits, this);
                SayGoodbye(link, decision.Reason);
                return;
            case LinkVerdict.Duplicate:
                link.Close(null);
                return;
        }
        decision.Replaced?.Close(null);
        if (decision.Evicted is { } evicted)
        {
            _logger.LogDebug("Dropping {Peer}, which trades nothing with us, to make room for {New}", evicted.PeerId.Brief, link.PeerId.Brief);
            SayGoodbye(evicted, GoodbyeReason.Full);
        }
        _backlogs[link] = new ControlBacklog();
        _newLinks = true;
        _partnersChanged = true;
        // A neighbour's address may be the origin of the circuits it sends us: only Debug names it.
        _logger.LogInformation("Linked with {Peer} ({Direction})", link.PeerId.Brief, link.Outbound ? "outbound" : "inbound");
        _logger.LogDebug("Link with {Peer} is {Direction} {Remote}", link.PeerId.Brief, link.Outbound ? "to" : "from", link.RemoteEndPoint);
        link.Start(_circuits, this);
        Execute(decision.Effects);
    }

    /// <summary>Tells the peer why we close the link, and closes it once that is written (or after a second).</summary>
    private static void SayGoodbye(Link link, GoodbyeReason reason)
    {
        link.SendControl(new GoodbyeMessage(reason));
        _ = link.DrainAndCloseAsync(TimeSpan.FromSeconds(1));
    }

    /// <summary>On the link's read loop: a whole control message goes to the loop, unless the link already has too much waiting there.</summary>
    void IControlMessages.OnControl(Link link, byte[] payload)
    {
        if (!_backlogs.TryGetValue(link, out var backlog)) return;
        if (Interlocked.Add(ref backlog.Bytes, payload.Length) > MaxControlBacklog)
        {
            link.Close(new LinkException(LinkError.Overloaded, $"{link.PeerId.Brief} sent control messages faster than the node could take them."));
            return;
        }
        Post(new ControlArrived(link, payload));
    }

    void IControlMessages.OnClosed(Link link, Exception? reason) => Post(new LinkClosed(link));

    // ---- Effects ----

    private void Execute(IReadOnlyList<NodeEffect> effects)
    {
        foreach (var effect in effects)
        {
            switch (effect)
            {
                case NodeEffect.Send send:
                    _core.LinkTo(send.To)?.SendControl(send.Message);
                    break;
                case NodeEffect.Dial dial:
                    _ = DialAsync(dial.Address, dial.Expected);
                    break;
                case NodeEffect.Disconnect disconnect when _core.LinkTo(disconnect.Peer) is { } link:
                    _logger.LogInformation("Dropping {Peer}: {Reason}", disconnect.Peer.Brief, disconnect.Reason);
                    SayGoodbye(link, disconnect.Reason);
                    break;
                case NodeEffect.CloseLink close when _core.LinkTo(close.Peer) is { } link:
                    if (close.Problem is null) _logger.LogDebug("{Peer} closes the link", close.Peer.Brief);
                    link.Close(close.Problem is null ? null : new LinkException(LinkError.BadCell, close.Problem));
                    break;
                case NodeEffect.StartProbe probe when _core.LinkTo(probe.Partner) is { } link && _core.Overlay.Find(probe.Partner) is { } descriptor:
                    _ = ProbeAsync(link, descriptor, _ledger.Account(probe.Partner), probe.PromisedKbps,
                        _options.Market.ProbeEchoKbpsFor(probe.PromisedKbps, _core.Market.GrantedTo(probe.Partner)));
                    break;
                case NodeEffect.GrantChanged grant:
                    _partnersChanged = true;
                    Reshape(grant.Partner, grant.GrantedKbps);
                    break;
                case NodeEffect.AgreementFormed formed:
                    _partnersChanged = true;
                    _database.SaveAgreement(formed.Agreement);
                    // A disk grant pays a day ahead: ask for it now, not at the next round.
                    if (formed.Agreement.TheyGrantCreditsPerDay > 0) AskForCredits(formed.Agreement.Partner);
                    _logger.LogInformation("{Kind} agreement with {Peer}: we grant {WeGrant}, it grants {TheyGrant}",
                        formed.Agreement.Private ? "Private" : "Public", formed.Agreement.Partner.Brief, formed.Agreement.WeGrant?.ToString() ?? "nothing", formed.Agreement.TheyGrant?.ToString() ?? "nothing");
                    break;
                case NodeEffect.AgreementEnded ended:
                    _partnersChanged = true;
                    _database.SaveAgreement(ended.Agreement, ended.Reason);
                    _logger.LogInformation("Agreement with {Peer} ended ({Reason})", ended.Agreement.Partner.Brief, ended.Reason);
                    break;
                case NodeEffect.VerdictReached verdict when verdict.Verdict != Verdict.Good:
                    _logger.LogWarning("Partner {Peer} delivered {Delivered:0} kbps of the {Promised} promised: {Verdict}",
                        verdict.Partner.Brief, verdict.DeliveredKbps, verdict.PromisedKbps, verdict.Verdict);
                    break;
                case NodeEffect.RoleChanged changed:
                    _logger.LogInformation("This node is now {Role}", changed.Roles.HasFlag(NodeRoles.Ultrapeer) ? "an ultrapeer" : "a leaf");
                    break;
                case NodeEffect.IntroductionArrived or NodeEffect.ServiceRecordFound or NodeEffect.ServiceLookupFailed:
                    OnServiceEffect(effect);
                    break;
                case NodeEffect.CreditsAnswered answered:
                    OnCreditsAnswered(answered.Partner, answered.Answer);
                    break;
                case NodeEffect.MessageRejected rejected when rejected.Error != OverlayError.RateLimited:
                    _logger.LogDebug("Refused a message from {Peer} ({Error}): {Reason}", rejected.From.Brief, rejected.Error, rejected.Reason);
                    break;
            }
        }
    }

    /// <summary>An unannounced probe of a partner that grants us bandwidth, on its own circuit; the loop hears what it measured.</summary>
    private async Task ProbeAsync(Link link, Descriptor partner, PartnerAccount account, long promisedKbps, double echoKbps)
    {
        double delivered;
        try
        {
            delivered = await _prober.ProbeAsync(link, partner, account, promisedKbps, echoKbps, _options.Market.ProbeDurationFor(promisedKbps),
                _options.Market.ProbeFirstEchoWithin, _stopping.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            return;
        }
        Post(new ProbeMeasured(link.PeerId, delivered, promisedKbps));
    }

    /// <summary>Reshapes what we carry for a partner to what we now grant it; nothing granted, nothing carried.</summary>
    private void Reshape(NodeId partner, long kbps)
    {
        var account = _ledger.Account(partner);
        double bytesPerSecond = kbps * 1000 / 8.0;
        if (bytesPerSecond <= 0)
        {
            account.Down = account.Up = null;
            _circuits.EndBilledTo(partner);
            return;
        }
        if (account.Down is { } down && account.Up is { } up)
        {
            down.GuaranteedBytesPerSecond = up.GuaranteedBytesPerSecond = bytesPerSecond;
            return;
        }
        account.Down = _down.NewShare(bytesPerSecond);
        account.Up = _up.NewShare(bytesPerSecond);
    }

    // ---- What the circuits and the proxies ask, from their own threads ----

    private void RefreshPartners()
    {
        _partnersChanged = false;
        var links = new Dictionary<NodeId, Link>();
        foreach (var (peer, link) in _core.Links) links[peer] = link;
        var grantedTo = new Dictionary<NodeId, long>();
        var grantedBy = new Dictionary<NodeId, long>();
        foreach (var a in _core.Market.Active)
        {
            grantedTo[a.Partner] = grantedTo.GetValueOrDefault(a.Partner) + (a.WeGrant?.Kbps ?? 0);
            grantedBy[a.Partner] = grantedBy.GetValueOrDefault(a.Partner) + (a.TheyGrant?.Kbps ?? 0);
        }
        var hidden = grantedBy.Keys.Where(_core.Market.IsPrivatePartner).ToHashSet();
        _partners = new PartnerView(links, grantedTo, grantedBy, hidden);
    }

    /// <summary>A neighbour may build circuits through us only if we grant it bandwidth.</summary>
    private bool AdmitsCircuitsFrom(NodeId peer) => _partners.GrantedTo.GetValueOrDefault(peer) > 0;

    private (long WeGrant, long TheyGrant) GrantKbps(NodeId peer)
    {
        var partners = _partners;
        return (partners.GrantedTo.GetValueOrDefault(peer), partners.GrantedBy.GetValueOrDefault(peer));
    }

    /// <summary>
    /// A circuit through us may go on only to a partner that grants us bandwidth: paths follow
    /// agreements. Never to a private partner: extending there would tell whoever asked that the
    /// agreement exists.
    /// </summary>
    private Link? ExtendTo(NodeId next)
    {
        var partners = _partners;
        return partners.GrantedBy.GetValueOrDefault(next) > 0 && !partners.Private.Contains(next) && partners.Links.TryGetValue(next, out var link) && link.IsOpen
            ? link : null;
    }

    /// <summary>
    /// What paths may be chosen from, copied on the loop so the pool never reads live state: the
    /// partners that grant us bandwidth (where our circuits start, with their links and
    /// descriptors), and the descriptors of their partners, theirs, and so on, as far as a path of
    /// <paramref name="hops"/> hops reaches.
    /// </summary>
    private ValueTask<PathGraph> PathGraphAsync(int hops, CancellationToken cancellationToken) => new(OnLoopAsync(() =>
    {
        var firstHops = new List<FirstHop>();
        foreach (var (partner, kbps) in _partners.GrantedBy)
            if (kbps > 0 && _core.LinkTo(partner) is { } link && _core.Overlay.Find(partner) is { } descriptor) firstHops.Add(new FirstHop(link, descriptor, kbps, _partners.Private.Contains(partner)));
        var descriptors = firstHops.ToDictionary(h => h.Descriptor.Id, h => h.Descriptor);
        List<Descriptor> reached = [.. descriptors.Values];
        for (int depth = 1; depth < hops; depth++)
        {
            List<Descriptor> next = [];
            foreach (var id in reached.SelectMany(d => d.Partners))
            {
                if (descriptors.ContainsKey(id) || _core.Overlay.Find(id) is not { } found) continue;
                descriptors[id] = found;
                next.Add(found);
            }
            reached = next;
        }
        return new PathGraph(firstHops, descriptors);
    }).WaitAsync(cancellationToken));

    /// <summary>
    /// A proxy's stream goes over a circuit for its credentials; the exit resolves the name. A
    /// <c>.quid</c> name goes to its service through a rendezvous instead, never to an exit.
    /// </summary>
    private Task<RelayStream> OpenStreamAsync(StreamTarget target, SocksAuth isolation, CancellationToken cancellationToken) =>
        StreamTarget.IsSessionName(target.Host)
            ? _serviceClient.OpenStreamAsync(target, isolation, cancellationToken)
            : _pool.OpenStreamAsync(target, isolation, cancellationToken);

    // ---- Asked from outside ----

    /// <summary>Floods a search for offers now and returns what came back within <paramref name="window"/>.</summary>
    public async Task<IReadOnlyList<Descriptor>> SearchAsync(Block wanted, Block? canGrant, TimeSpan window, CancellationToken cancellationToken = default)
    {
        var query = await OnLoopAsync(() =>
        {
            var (query, effects) = _core.Search(wanted, canGrant);
            Execute(effects);
            return query;
        }).ConfigureAwait(false);
        await Task.Delay(window, _time, cancellationToken).ConfigureAwait(false);
        return await OnLoopAsync(() => _core.Overlay.Results(query)).ConfigureAwait(false);
    }

    /// <summary>What the node is doing now: its role, offer and request, links, agreements and ledger.</summary>
    public Task<NodeStatus> StatusAsync() => OnLoopAsync(() =>
    {
        var market = _core.Market;
        return new NodeStatus(
            Id,
            _core.Overlay.Role,
            LinkEndPoint,
            SocksEndPoint,
            market.Offer,
            market.Request,
            market.RequestMet,
            market.ReceivedKbps,
            market.Capacity.FreeBlocks,
            [.. _core.Links.Select(l => new NeighbourStatus(l.Peer, _core.Overlay.IsUltrapeer(l.Peer), l.Link.RemoteEndPoint, l.Link.Outbound, l.Link.Established,
                l.Link.BytesSent, l.Link.BytesReceived, l.Link.QueuedBytes))],
            [.. market.Active.Select(a => new AgreementStatus(a.Id.ToString(), a.Partner, a.WeProposed, a.WeGrant, a.TheyGrant, a.Created, a.Private))],
            _pool.Circuits.Count,
            new OverlayStatus(_core.Overlay.KnownPeerCount, _core.Overlay.QueryRouteCount, _core.Overlay.SearchResultCount,
                _core.Overlay.QueriesDropped, _core.Overlay.HitsDropped),
            [.. _ledger.Accounts.Select(a => new PartnerStatus(a.Partner, a.BytesGiven, a.BytesReceived, a.DeliveredKbps, a.Verdict, a.Failures, a.ShunnedUntil))],
            Reachability());
    });

    private ReachabilityStatus Reachability()
    {
        var advertised = _core.Address;
        var mapping = _portMapping?.Status ?? PortMappingStatus.NotTried(_portMappingNotTried);
        var origin = advertised is null ? AddressOrigin.None
            : mapping.External is { } external && external.Equals(advertised) ? AddressOrigin.PortMapping
            : _options.Advertise is not null ? AddressOrigin.Advertise
            : AddressOrigin.ListenAddress;
        return new ReachabilityStatus(advertised, origin, _linksDialedIn, mapping);
    }

    /// <summary>Bytes given and received over the whole ledger, read off its counters: what the control API samples for live rates.</summary>
    public (long Given, long Received) LedgerTotals()
    {
        long given = 0, received = 0;
        foreach (var account in _ledger.Accounts)
        {
            given += account.BytesGiven;
            received += account.BytesReceived;
        }
        return (given, received);
    }

    /// <summary>Where each grant sits in our offer, for drawing the offer's buddy blocks.</summary>
    public Task<IReadOnlyList<(NodeId Partner, Allocation Block)>> GrantedBlocksAsync() =>
        OnLoopAsync<IReadOnlyList<(NodeId Partner, Allocation Block)>>(() =>
            [.. _core.Market.Active.Where(a => a.OurAllocation is not null).Select(a => (a.Partner, a.OurAllocation!.Value))]);

    // ---- Stopping ----

    /// <summary>Stops listening, lets open streams finish for a while, ends agreements politely, remembers peers, closes links.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        await CloseListenersAsync().ConfigureAwait(false);
        await StopServicesAsync().ConfigureAwait(false);
        await StopProgramsAsync().ConfigureAwait(false);
        // The mapping is deleted first and within a bound: the gateway forwards to nothing once we stop.
        if (_portMapping is not null) await _portMapping.DisposeAsync().ConfigureAwait(false);
        await _ticker.ConfigureAwait(false);
        await DrainStreamsAsync().ConfigureAwait(false);
        var links = await OnLoopAsync(() =>
        {
            Execute(_core.Stop());
            _database.SavePeers(_core.Overlay.ExportPeers());
            SaveLedger();
            SaveVanguards();
            return _core.Links.Select(l => l.Link).ToList();
        }).ConfigureAwait(false);
        _events.Writer.Complete();
        await _loop.ConfigureAwait(false);
        // Give the goodbyes a moment to reach the socket before the links close.
        await Task.WhenAll(links.Select(l => l.DrainAndCloseAsync(TimeSpan.FromSeconds(1)))).ConfigureAwait(false);
        await Task.WhenAll(links.Select(l => l.DisposeAsync().AsTask())).ConfigureAwait(false);
        _database.Dispose();
        _cache?.Dispose();
        _storage?.Dispose();
        _storeBusy.Dispose();
        _creditKeys.Dispose();
        _creditsBusy.Dispose();
        _stopping.Dispose();
        Identity.Dispose();
        _logger.LogInformation("Node {Id} stopped", Id.Brief);
    }

    private async Task CloseListenersAsync()
    {
        if (_socks is not null) await _socks.DisposeAsync().ConfigureAwait(false);
        if (_httpProxy is not null) await _httpProxy.DisposeAsync().ConfigureAwait(false);
        if (_listener is not null) await _listener.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Waits, up to <see cref="NodeOptions.DrainTimeout"/>, for the streams still open on any
    /// circuit (ours, or partners' exiting here) to finish, so a restart does not cut a download
    /// that was about to end. No new stream starts here meanwhile: the SOCKS listener is closed.
    /// </summary>
    private async Task DrainStreamsAsync()
    {
        int open = _circuits.Circuits.Sum(c => c.StreamCount);
        if (open == 0 || _options.DrainTimeout <= TimeSpan.Zero) return;
        _logger.LogInformation("Waiting up to {Seconds:0} s for {Streams} open streams to finish", _options.DrainTimeout.TotalSeconds, open);
        long started = _time.GetTimestamp();
        while (_circuits.Circuits.Sum(c => c.StreamCount) > 0 && _time.GetElapsedTime(started) < _options.DrainTimeout)
            await Task.Delay(TimeSpan.FromMilliseconds(100), _time).ConfigureAwait(false);
    }
}
