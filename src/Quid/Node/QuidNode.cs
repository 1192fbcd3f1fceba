using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Links;
using Quid.Overlay;
using Quid.Proxy;
using Quid.Proxy.Socks;
using Quid.Wire;

namespace Quid.Node;

/// <summary>
/// One Quid node: the layers put together. Links carry cells; control messages go to the
/// overlay and the market, which are state machines guarded by one lock; circuit cells go to the
/// circuit table; the SOCKS listener opens streams through partners that grant us bandwidth.
/// A timer runs the seed's loop: keep the overlay linked, search while the request is unmet,
/// propose to what the search found, and keep the descriptor current.
/// </summary>
public sealed class QuidNode : IControlMessages, IAsyncDisposable
{
    private static readonly TimeSpan PeerCacheInterval = TimeSpan.FromMinutes(1);
    // A request that has just become unmet searches at once, but a burst of such news floods at most once a second.
    private static readonly TimeSpan MinSearchGap = TimeSpan.FromSeconds(1);
    /// <summary>After a new link, the peer cache is written this soon, so that even a node killed young rejoins.</summary>
    private static readonly TimeSpan PeerCacheAfterLink = TimeSpan.FromSeconds(1);

    private readonly NodeOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ILogger _linkLogger;
    private readonly Lock _gate = new();
    private readonly Overlay.Overlay _overlay;
    private readonly Market _market;
    private readonly CircuitTable _circuits;
    private readonly Prober _prober;
    private readonly CircuitPool _pool;
    private readonly NodeDatabase _database;
    private readonly Ledger _ledger;
    private readonly Shaper _down;
    private readonly Shaper _up;
    private readonly ConcurrentDictionary<NodeId, Link> _links = new();
    private readonly ConcurrentDictionary<IPEndPoint, byte> _dialing = new();
    private readonly IReadOnlyList<(NodeId Id, string Address)> _friendAddresses;
    private readonly CancellationTokenSource _stopping = new();
    private readonly IPAddress? _bindAddress;
    private LinkListener? _listener;
    private SocksListener? _socks;
    private HttpProxyListener? _httpProxy;
    private Task _loop = Task.CompletedTask;
    private string _publishedContent = "";
    private DateTimeOffset _publishedAt;
    private DateTimeOffset _lastSearch;
    private DateTimeOffset _lastPeerSave;
    private DateTimeOffset _lastLedgerSave;
    private volatile bool _newLinks;
    private long _refusedLinks;

    private QuidNode(NodeOptions options, NodeIdentity identity, NodeDatabase database, TimeProvider time, ILoggerFactory loggers)
    {
        _options = options;
        _time = time;
        _database = database;
        Identity = identity;
        _logger = loggers.CreateLogger("Quid.Node");
        _linkLogger = loggers.CreateLogger("Quid.Links");
        _bindAddress = options.OutboundBindAddress ?? options.SpecificListenAddress;
        var friends = options.Friends.Select(ParseFriend).ToList();
        _friendAddresses = [.. friends.Where(f => f.Address is not null).Select(f => (f.Id, f.Address!))];
        var overlayOptions = friends.Count == 0 ? options.Overlay : options.Overlay with { Friends = friends.Select(f => f.Id).ToHashSet() };
        _overlay = new Overlay.Overlay(identity, time, overlayOptions);
        _ledger = new Ledger(time);
        foreach (var account in database.LoadAccounts()) _ledger.Add(account);
        if (options.Hops is < 1 or > Cell.MaxRelayEarly)
            throw new ArgumentException($"Hops must be between 1 and {Cell.MaxRelayEarly}; {options.Hops} was given.");
        // A walk of several hops needs partners of partners, so a multi-hop node asks for its
        // request as four smaller blocks from four partners, as the seed suggests for chaining.
        var (request, wanted) = SplitRequest(options.Request, options.Hops);
        _market = new Market(identity, options.Offer, request, time, options.Market with { PartnersWanted = wanted }, _ledger);
        _down = new Shaper(options.Offer.BytesPerSecond * options.ServiceFactor, time);
        _up = new Shaper(options.Offer.BytesPerSecond * options.ServiceFactor, time);
        var circuitLogger = loggers.CreateLogger("Quid.Circuits");
        var exit = new StreamExit(new ExitConnector(options.ExitPolicy, _bindAddress, options.Circuits.ExitConnectTimeout, time, options.ExitResolver), circuitLogger);
        _circuits = new CircuitTable(identity, options.Circuits, exit, new CircuitPolicy(AdmitsCircuitsFrom, ExtendTo, _ledger.Account), time, circuitLogger);
        var builder = new CircuitBuilder(_circuits, options.Circuits, time, circuitLogger);
        _prober = new Prober(builder, time);
        _pool = new CircuitPool(builder, options.Paths with { Hops = options.Hops },
            new PathSource(identity.Id, PathGraphAsync, SocksAuth.None), time, circuitLogger);
    }

    public NodeIdentity Identity { get; }
    public NodeId Id => Identity.Id;
    /// <summary>What the node was started with: the control API reports the request as the user asked for it, before it is split among partners.</summary>
    public NodeOptions Options => _options;
    public IPEndPoint LinkEndPoint => _listener!.LocalEndPoint;
    public IPEndPoint? SocksEndPoint => _socks?.LocalEndPoint;
    public IPEndPoint? HttpProxyEndPoint => _httpProxy?.LocalEndPoint;
    public CircuitTable Circuits => _circuits;
    public CircuitPool Pool => _pool;
    /// <summary>Links refused after the handshake: not a friend, shunned, or no room.</summary>
    public long RefusedLinks => Interlocked.Read(ref _refusedLinks);

    /// <summary>Creates or loads the identity in the data directory, opens the listeners and joins the network.</summary>
    public static Task<QuidNode> StartAsync(NodeOptions options, ILoggerFactory loggers, TimeProvider? time = null)
    {
        Directory.CreateDirectory(options.DataDirectory);
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(options.DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var identity = IdentityStore.LoadOrCreate(options.DataDirectory, out bool created);
        NodeDatabase? database = null;
        try
        {
            database = new NodeDatabase(options.DataDirectory);
            var node = new QuidNode(options, identity, database, time ?? TimeProvider.System, loggers);
            node.Open(created);
            return Task.FromResult(node);
        }
        catch
        {
            database?.Dispose();
            identity.Dispose();
            throw;
        }
    }

    /// <summary>The block each agreement should grant us, and how many such agreements we want.</summary>
    internal static (Block? Block, int Partners) SplitRequest(Block? request, int hops)
    {
        const int partners = 4;
        if (request is not { } total || hops == 1) return (request, 1);
        return (new Block((byte)Math.Max(0, total.Order - 2)), partners);
    }

    private static (NodeId Id, string? Address) ParseFriend(string entry)
    {
        var parts = entry.Split('@', 2);
        if (!NodeId.TryParse(parts[0], out var id))
            throw new ArgumentException($"Friend '{entry}' is not a node id (32 base32 characters, as 'quid id' prints), optionally followed by @host:port.");
        return (id, parts.Length == 2 ? parts[1] : null);
    }

    private void Open(bool identityCreated)
    {
        _logger.LogInformation("Node {Id} ({Origin})", Id, identityCreated ? "new identity" : "identity loaded");
        var cached = _database.LoadPeers();
        lock (_gate) _overlay.AddCachedPeers(cached);
        // The proxies open first: a proxy address that is not loopback stops the node before it touches the network.
        if (_options.Socks is { } socks)
        {
            _socks = new SocksListener(socks, OpenStreamAsync, (host, isolation, ct) => _pool.ResolveAsync(host, isolation, ct), _time, _logger);
            _socks.Start();
            _logger.LogInformation("SOCKS proxy on {EndPoint}", _socks.LocalEndPoint);
        }
        if (_options.HttpProxy is { } httpProxy)
        {
            _httpProxy = new HttpProxyListener(httpProxy, OpenStreamAsync, _time, _logger);
            _httpProxy.Start();
            _logger.LogInformation("HTTP proxy on {EndPoint}", _httpProxy.LocalEndPoint);
        }
        _listener = new LinkListener(_options.Listen, Identity, _options.Links, _time, _linkLogger, OnLinkEstablished);
        _listener.Start();
        _logger.LogInformation("Accepting links on {EndPoint}; offering {Offer}, requesting {Request}{Cache}{Friends}",
            _listener.LocalEndPoint, _options.Offer, _options.Request?.ToString() ?? "nothing (donor)",
            cached.Count > 0 ? $"; {cached.Count} peers remembered" : "",
            _overlay.FriendsOnly ? $"; friends only ({_options.Friends.Count})" : "");
        Publish(force: true);
        _lastPeerSave = _lastLedgerSave = _time.GetUtcNow();
        _loop = Task.Run(LoopAsync);
    }

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(_options.TickInterval, _time);
        do
        {
            try
            {
                Tick();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _logger.LogError(e, "Node upkeep failed; trying again next round");
            }
        }
        while (await WaitAsync(timer).ConfigureAwait(false));
    }

    private async Task<bool> WaitAsync(PeriodicTimer timer)
    {
        try
        {
            return await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>One round of upkeep: bootstrap, overlay, the seed's search and matching, descriptor freshness.</summary>
    private void Tick()
    {
        var now = _time.GetUtcNow();
        if (_links.IsEmpty)
        {
            foreach (var peer in _options.Peers) Dial(peer, null);
            foreach (var (id, address) in _friendAddresses) Dial(address, id);
        }
        IReadOnlyList<OverlayAction> overlayActions;
        IReadOnlyList<(NodeId Partner, long PromisedKbps)> probes;
        lock (_gate)
        {
            overlayActions = _overlay.Tick();
            probes = _market.DueProbes();
        }
        Execute(overlayActions);
        Match(flood: false);
        foreach (var (partner, promised) in probes) _ = ProbeAsync(partner, promised);
        _pool.Maintain();
        Publish(force: false);
        if (now - _lastPeerSave >= PeerCacheInterval || (_newLinks && now - _lastPeerSave >= PeerCacheAfterLink))
        {
            _lastPeerSave = now;
            _newLinks = false;
            SavePeers();
        }
        if (now - _lastLedgerSave >= _options.LedgerFlushInterval)
        {
            _lastLedgerSave = now;
            SaveLedger();
        }
    }

    /// <summary>
    /// The seed's search and matching, while our request is unmet: offers we know of are matched
    /// at once; a search is flooded every SearchInterval, or at once when <paramref name="flood"/>
    /// says the request has just become unmet (but never twice in a second).
    /// </summary>
    private void Match(bool flood)
    {
        IReadOnlyList<OverlayAction> overlayActions = [];
        IReadOnlyList<MarketAction> marketActions;
        lock (_gate)
        {
            if (_market.Request is not { } request || _market.RequestMet) return;
            var canGrant = _market.Capacity.LargestFree;
            var now = _time.GetUtcNow();
            if (now - _lastSearch >= (flood ? MinSearchGap : _options.SearchInterval))
            {
                _lastSearch = now;
                overlayActions = _overlay.Search(request, canGrant).Actions;
            }
            marketActions = _market.Search(_overlay.Candidates(request, canGrant), _links.ContainsKey);
        }
        Execute(overlayActions);
        Execute(marketActions);
    }

    /// <summary>After the market changed: match now if the request is unmet, and search afresh if it was met a moment ago.</summary>
    private void Rematch(bool wasMet)
    {
        bool met;
        lock (_gate) met = _market.RequestMet;
        if (!met) Match(flood: wasMet);
    }

    private void SaveLedger()
    {
        List<Agreement> active;
        lock (_gate) active = [.. _market.Active];
        foreach (var agreement in active) _database.SaveAgreement(agreement);
        _database.SaveAccounts(_ledger.Accounts);
    }

    /// <summary>
    /// An unannounced probe of a partner that grants us bandwidth; its verdict may shrink our
    /// grant to it, or end the agreement. A partner that will not even carry the probe delivered nothing.
    /// </summary>
    private async Task ProbeAsync(NodeId partner, long promisedKbps)
    {
        Descriptor? descriptor;
        lock (_gate) descriptor = _overlay.Find(partner);
        if (!_links.TryGetValue(partner, out var link) || descriptor is null) return;
        double delivered;
        try
        {
            delivered = await _prober.ProbeAsync(link, descriptor, _options.Market.ProbeDuration, _stopping.Token).ConfigureAwait(false);
        }
        catch (StreamException)
        {
            delivered = 0;
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            return;
        }
        IReadOnlyList<MarketAction> actions;
        bool wasMet;
        lock (_gate)
        {
            wasMet = _market.RequestMet;
            actions = _market.ProbeResult(partner, delivered, promisedKbps);
        }
        Execute(actions);
        Rematch(wasMet);
    }

    /// <summary>Reshapes what we carry for a partner to what we now grant it; nothing granted, nothing carried.</summary>
    private void Reshape(NodeId partner)
    {
        long kbps;
        lock (_gate) kbps = _market.GrantedTo(partner);
        var account = _ledger.Account(partner);
        double bytesPerSecond = kbps * 1000 / 8 * _options.ServiceFactor;
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

    private void SavePeers()
    {
        IReadOnlyList<CachedPeer> peers;
        lock (_gate) peers = _overlay.ExportPeers();
        _database.SavePeers(peers);
    }

    /// <summary>Signs and sends a new descriptor when what it says has changed or it is half way to expiring.</summary>
    private void Publish(bool force)
    {
        IReadOnlyList<OverlayAction> actions;
        lock (_gate)
        {
            var free = _market.Capacity.FreeBlocks;
            // The partners that grant us bandwidth: the hops a circuit through us may continue to.
            var partners = _market.Active.Where(a => a.TheyGrant is not null).Select(a => a.Partner).Distinct().Order().ToArray();
            var roles = _overlay.Role == OverlayRole.Ultrapeer ? NodeRoles.Ultrapeer : NodeRoles.None;
            string content = $"{string.Join(',', free)}|{string.Join(',', partners)}|{roles}";
            var now = _time.GetUtcNow();
            if (!force && content == _publishedContent && now - _publishedAt < _options.DescriptorLifetime / 2) return;
            var descriptor = new Descriptor
            {
                SigningKey = Identity.SigningPublicKey,
                LinkKey = Identity.LinkPublicKey,
                Published = now,
                Expires = now + _options.DescriptorLifetime,
                Address = _options.Advertise ?? (_options.SpecificListenAddress is not null ? _listener!.LocalEndPoint : null),
                Offer = _options.Offer,
                Request = _market.Request,
                // A node whose capacity is fully granted advertises nothing free: it stops being found.
                FreeBlocks = free,
                Roles = roles,
                ExitPolicy = _options.ExitPolicy,
                Partners = partners.Take(Descriptor.MaxPartners).ToArray(),
            }.Sign(Identity);
            _publishedContent = content;
            _publishedAt = now;
            actions = _overlay.Publish(descriptor);
        }
        Execute(actions);
    }

    private void Dial(string hostAndPort, NodeId? expected)
    {
        if (!TryParseEndPoint(hostAndPort, out var host, out int port))
        {
            _logger.LogWarning("Peer {Peer} is not host:port; ignoring it", hostAndPort);
            return;
        }
        if (IPAddress.TryParse(host, out var literal))
        {
            Dial(new IPEndPoint(literal, port), expected);
            return;
        }
        _ = ResolveAndDialAsync(host, port, expected);
    }

    private async Task ResolveAndDialAsync(string host, int port, NodeId? expected)
    {
        try
        {
            // A bootstrap peer's name is resolved here: this is the node's own overlay traffic, never a user's destination.
            var addresses = await Dns.GetHostAddressesAsync(host, _stopping.Token).ConfigureAwait(false);
            var address = addresses.FirstOrDefault(a => _bindAddress is null || a.AddressFamily == _bindAddress.AddressFamily) ?? addresses.FirstOrDefault();
            if (address is not null) Dial(new IPEndPoint(address, port), expected);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            _logger.LogDebug("Could not resolve peer {Host}: {Reason}", host, e.Message);
        }
    }

    private void Dial(IPEndPoint address, NodeId? expected)
    {
        if (expected is { } id && (id == Id || _links.ContainsKey(id))) return;
        if (!_dialing.TryAdd(address, 0)) return;
        _ = DialAsync(address, expected);
    }

    private async Task DialAsync(IPEndPoint address, NodeId? expected)
    {
        try
        {
            var link = await Link.ConnectAsync(address, _bindAddress, Identity, expected, _options.Links, _time, _linkLogger, _stopping.Token).ConfigureAwait(false);
            OnLinkEstablished(link);
        }
        catch (Exception e) when (e is LinkException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            _logger.LogDebug("Could not link to {Peer}: {Reason}", address, e.Message);
            lock (_gate) _overlay.DialFailed(expected, address);
        }
        finally
        {
            _dialing.TryRemove(address, out _);
        }
    }

    private static bool TryParseEndPoint(string text, out string host, out int port)
    {
        host = "";
        port = 0;
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.CultureInfo.InvariantCulture, out port) || port is <= 0 or > 65535) return false;
        host = text[..colon].Trim('[', ']');
        return host.Length > 0;
    }

    /// <summary>
    /// A handshake finished. The overlay may refuse the peer (not a friend, shunned, no room).
    /// When both nodes dialed each other at once, both keep the link the node with the smaller
    /// id dialed, so exactly one survives.
    /// </summary>
    private void OnLinkEstablished(Link link)
    {
        if (_stopping.IsCancellationRequested)
        {
            link.Close(null);
            return;
        }
        IReadOnlyList<OverlayAction> actions;
        lock (_gate)
        {
            if (_overlay.Refuse(link.PeerId) is { } reason)
            {
                Interlocked.Increment(ref _refusedLinks);
                _logger.LogDebug("Refusing link with {Peer}: {Reason}", link.PeerId.Brief, reason);
                link.SendControl(new GoodbyeMessage(reason));
                _ = link.DrainAndCloseAsync(TimeSpan.FromSeconds(1));
                return;
            }
            if (_links.TryGetValue(link.PeerId, out var existing) && existing.State == LinkState.Open)
            {
                var smaller = Id < link.PeerId ? Id : link.PeerId;
                bool newDialedBySmaller = (link.Outbound ? Id : link.PeerId) == smaller;
                bool oldDialedBySmaller = (existing.Outbound ? Id : link.PeerId) == smaller;
                if (!newDialedBySmaller || oldDialedBySmaller)
                {
                    link.Close(null);
                    return;
                }
                existing.Close(null);
            }
            _links[link.PeerId] = link;
            actions = _overlay.LinkUp(link.PeerId, !link.Outbound, link.RemoteEndPoint);
        }
        _newLinks = true;
        // A neighbour's address may be the origin of the circuits it sends us: only Debug names it.
        _logger.LogInformation("Linked with {Peer} ({Direction})", link.PeerId.Brief, link.Outbound ? "outbound" : "inbound");
        _logger.LogDebug("Link with {Peer} is {Direction} {Remote}", link.PeerId.Brief, link.Outbound ? "to" : "from", link.RemoteEndPoint);
        link.Start(_circuits, this);
        Execute(actions);
        // The market may have been waiting for this link to propose over it.
        Match(flood: false);
    }

    void IControlMessages.OnControl(Link link, byte[] payload)
    {
        ControlMessage message;
        try
        {
            Admission admission;
            lock (_gate) admission = _overlay.Admit(link.PeerId, ControlCodec.PeekType(payload));
            if (admission == Admission.Drop) return;
            if (admission == Admission.Disconnect)
            {
                Disconnect(link, GoodbyeReason.Abuse);
                return;
            }
            message = ControlCodec.Decode(payload);
        }
        catch (WireException e)
        {
            link.Close(new LinkException(LinkError.BadCell, $"Malformed control message: {e.Message}", e));
            return;
        }
        OnControl(link, message);
    }

    private void OnControl(Link link, ControlMessage message)
    {
        switch (message)
        {
            case GoodbyeMessage goodbye:
                _logger.LogDebug("{Peer} closes the link: {Reason}", link.PeerId.Brief, goodbye.Reason);
                lock (_gate) _overlay.Farewell(link.PeerId, goodbye.Reason);
                link.Close(null);
                break;
            case DescriptorMessage or PeersMessage or QueryMessage or QueryHitMessage:
                IReadOnlyList<OverlayAction> overlayActions;
                lock (_gate) overlayActions = _overlay.Receive(link.PeerId, message);
                Execute(overlayActions);
                break;
            default:
                IReadOnlyList<MarketAction> marketActions;
                bool wasMet;
                lock (_gate)
                {
                    wasMet = _market.RequestMet;
                    marketActions = _market.Receive(link.PeerId, link.PeerSigningKey, message);
                }
                Execute(marketActions);
                Rematch(wasMet);
                break;
        }
    }

    private void Disconnect(Link link, GoodbyeReason reason)
    {
        _logger.LogInformation("Dropping {Peer}: {Reason}", link.PeerId.Brief, reason);
        link.SendControl(new GoodbyeMessage(reason));
        _ = link.DrainAndCloseAsync(TimeSpan.FromSeconds(1));
    }

    void IControlMessages.OnClosed(Link link, Exception? reason)
    {
        IReadOnlyList<MarketAction> actions;
        bool wasMet;
        lock (_gate)
        {
            if (!_links.TryRemove(new KeyValuePair<NodeId, Link>(link.PeerId, link))) return;
            _overlay.LinkDown(link.PeerId);
            wasMet = _market.RequestMet;
            actions = _market.PartnerLost(link.PeerId);
        }
        Execute(actions);
        if (!_stopping.IsCancellationRequested) Rematch(wasMet);
    }

    private void Execute(IReadOnlyList<OverlayAction> actions)
    {
        foreach (var action in actions)
        {
            switch (action)
            {
                case SendOverlayMessage send:
                    Send(send.To, send.Message);
                    break;
                case DialPeer dial:
                    Dial(dial.Address, dial.Id);
                    break;
                case DisconnectPeer disconnect when _links.TryGetValue(disconnect.Id, out var link):
                    Disconnect(link, disconnect.Reason);
                    break;
                case MessageRejected rejected:
                    _logger.LogDebug("Refused a message from {Peer} ({Error}): {Reason}", rejected.From.Brief, rejected.Error, rejected.Reason);
                    break;
                case RoleChanged changed:
                    _logger.LogInformation("This node is now {Role}", changed.Roles.HasFlag(NodeRoles.Ultrapeer) ? "an ultrapeer" : "a leaf");
                    Publish(force: true);
                    break;
                case OffersFound:
                    Match(flood: false);
                    break;
            }
        }
    }

    private void Execute(IReadOnlyList<MarketAction> actions)
    {
        bool changed = false;
        foreach (var action in actions)
        {
            switch (action)
            {
                case SendMarketMessage send:
                    Send(send.To, send.Message);
                    break;
                case LinkNeeded needed when needed.Candidate.Address is { } address:
                    Dial(address, needed.Candidate.Id);
                    break;
                case AgreementFormed formed:
                    changed = true;
                    _database.SaveAgreement(formed.Agreement);
                    _logger.LogInformation("Agreement with {Peer}: we grant {WeGrant}, it grants {TheyGrant}",
                        formed.Agreement.Partner.Brief, formed.Agreement.WeGrant?.ToString() ?? "nothing", formed.Agreement.TheyGrant?.ToString() ?? "nothing");
                    break;
                case AgreementEnded ended:
                    changed = true;
                    _database.SaveAgreement(ended.Agreement, ended.Reason);
                    _logger.LogInformation("Agreement with {Peer} ended ({Reason})", ended.Agreement.Partner.Brief, ended.Reason);
                    break;
                case GrantsChanged grants:
                    changed = true;
                    Reshape(grants.Partner);
                    break;
                case VerdictReached verdict when verdict.Verdict != Verdict.Good:
                    _logger.LogWarning("Partner {Peer} delivered {Delivered:0} kbps of the {Promised} promised: {Verdict}",
                        verdict.Partner.Brief, verdict.DeliveredKbps, verdict.PromisedKbps, verdict.Verdict);
                    break;
            }
        }
        if (changed) Publish(force: false);
    }

    private void Send(NodeId to, ControlMessage message)
    {
        if (_links.TryGetValue(to, out var link)) link.SendControl(message);
    }

    private bool AdmitsCircuitsFrom(NodeId peer)
    {
        lock (_gate) return _market.GrantedTo(peer) > 0;
    }

    /// <summary>A circuit through us may go on only to a partner that grants us bandwidth: paths follow agreements.</summary>
    private Link? ExtendTo(NodeId next)
    {
        lock (_gate)
            if (_market.GrantedBy(next) == 0) return null;
        return _links.TryGetValue(next, out var link) && link.State == LinkState.Open ? link : null;
    }

    /// <summary>
    /// What paths may be chosen from, copied under the lock so the pool never reads live state: the
    /// partners that grant us bandwidth (where our circuits start, with their links and
    /// descriptors), and the descriptors of their partners, theirs, and so on, as far as a path reaches.
    /// </summary>
    private ValueTask<PathGraph> PathGraphAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            FirstHop[] firstHops = [.. _market.Active
                .Where(a => a.TheyGrant is not null)
                .GroupBy(a => a.Partner)
                .Select(g => (Partner: g.Key, Kbps: g.Sum(a => a.TheyGrant!.Value.Kbps)))
                .Select(p => _links.TryGetValue(p.Partner, out var link) && _overlay.Find(p.Partner) is { } descriptor ? new FirstHop(link, descriptor, p.Kbps) : null)
                .OfType<FirstHop>()];
            var descriptors = firstHops.ToDictionary(h => h.Descriptor.Id, h => h.Descriptor);
            List<Descriptor> reached = [.. descriptors.Values];
            for (int depth = 1; depth < _options.Hops; depth++)
            {
                List<Descriptor> next = [];
                foreach (var id in reached.SelectMany(d => d.Partners))
                {
                    if (descriptors.ContainsKey(id) || _overlay.Find(id) is not { } found) continue;
                    descriptors[id] = found;
                    next.Add(found);
                }
                reached = next;
            }
            return ValueTask.FromResult(new PathGraph(firstHops, descriptors));
        }
    }

    /// <summary>A proxy's stream goes over a circuit for its credentials; the exit resolves the name.</summary>
    private Task<RelayStream> OpenStreamAsync(StreamTarget target, SocksAuth isolation, CancellationToken cancellationToken) =>
        _pool.OpenStreamAsync(target, isolation, cancellationToken);

    /// <summary>Floods a search for offers now and returns what came back within <paramref name="window"/>.</summary>
    public async Task<IReadOnlyList<Descriptor>> SearchAsync(Block wanted, Block? canGrant, TimeSpan window, CancellationToken cancellationToken = default)
    {
        QueryId query;
        IReadOnlyList<OverlayAction> actions;
        lock (_gate) (query, actions) = _overlay.Search(wanted, canGrant);
        Execute(actions);
        await Task.Delay(window, _time, cancellationToken).ConfigureAwait(false);
        lock (_gate) return _overlay.Results(query);
    }

    /// <summary>What the node is doing now: its role, offer and request, links, agreements and ledger.</summary>
    public Task<NodeStatus> StatusAsync() => Task.FromResult(Status());

    private NodeStatus Status()
    {
        lock (_gate)
        {
            return new NodeStatus(
                Id,
                _overlay.Role,
                LinkEndPoint,
                SocksEndPoint,
                _market.Offer,
                _market.Request,
                _market.RequestMet,
                _market.ReceivedKbps,
                _market.Capacity.FreeBlocks,
                [.. _links.Values.Select(l => new NeighbourStatus(l.PeerId, _overlay.IsUltrapeer(l.PeerId), l.RemoteEndPoint, l.Outbound, l.Established, l.BytesSent, l.BytesReceived, l.QueuedBytes))],
                [.. _market.Active.Select(a => new AgreementStatus(a.Id.ToString(), a.Partner, a.WeProposed, a.WeGrant, a.TheyGrant, a.Created))],
                _pool.Circuits.Count,
                new OverlayStatus(_overlay.KnownPeerCount, _overlay.QueryRouteCount, _overlay.SearchResultCount),
                [.. _ledger.Accounts.Select(a => new PartnerStatus(a.Partner, a.BytesGiven, a.BytesReceived, a.DeliveredKbps, a.Verdict, a.Failures, a.ShunnedUntil))]);
        }
    }

    /// <summary>Bytes given and received over the whole ledger, read without the lock: what the control API samples for live rates.</summary>
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
    public Task<IReadOnlyList<(NodeId Partner, Allocation Block)>> GrantedBlocksAsync()
    {
        lock (_gate) return Task.FromResult<IReadOnlyList<(NodeId Partner, Allocation Block)>>([.. _market.Active.Where(a => a.OurAllocation is not null).Select(a => (a.Partner, a.OurAllocation!.Value))]);
    }

    /// <summary>Stops listening, lets open streams finish for a while, ends agreements politely, remembers peers, closes links.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_socks is not null) await _socks.DisposeAsync().ConfigureAwait(false);
        if (_httpProxy is not null) await _httpProxy.DisposeAsync().ConfigureAwait(false);
        if (_listener is not null) await _listener.DisposeAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        await DrainStreamsAsync().ConfigureAwait(false);
        List<MarketAction> goodbyes = [];
        lock (_gate)
            foreach (var agreement in _market.Active.ToList())
                goodbyes.AddRange(_market.End(agreement.Id, AgreementEndReason.ShuttingDown));
        foreach (var send in goodbyes.OfType<SendMarketMessage>()) Send(send.To, send.Message);
        foreach (var ended in goodbyes.OfType<AgreementEnded>()) _database.SaveAgreement(ended.Agreement, ended.Reason);
        SavePeers();
        SaveLedger();
        // Give the goodbyes a moment to reach the socket before the links close.
        await Task.WhenAll(_links.Values.Select(l => l.DrainAndCloseAsync(TimeSpan.FromSeconds(1)))).ConfigureAwait(false);
        await Task.WhenAll(_links.Values.Select(l => l.DisposeAsync().AsTask())).ConfigureAwait(false);
        _database.Dispose();
        _stopping.Dispose();
        Identity.Dispose();
        _logger.LogInformation("Node {Id} stopped", Id.Brief);
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
