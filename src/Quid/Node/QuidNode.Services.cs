using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Quid.Circuits;
using Quid.Core;
using Quid.Overlay;
using Quid.Proxy;
using Quid.Services;
using Quid.Services.Share;
using Quid.Wire;

namespace Quid.Node;

/// <summary>What a user asked the node to publish: a service or a share. Asked again, the very same is no conflict.</summary>
/// <param name="Name">Letters, digits and dashes: names the key file of a stable or moving service.</param>
/// <param name="Private">Only holders of its access key (<see cref="HostedService.AccessKey"/>) can find it; to anyone else it does not exist.</param>
public abstract record PublishSpec(string Name, AddressKind Kind, bool Private);

/// <summary>What <see cref="QuidNode.PublishAsync"/> publishes: a local TCP service under a name the node keeps its key by.</summary>
/// <param name="Target">Where the service's streams go: a local TCP listener.</param>
public sealed record ServiceSpec(string Name, IPEndPoint Target, AddressKind Kind = AddressKind.Ephemeral, bool Private = false) : PublishSpec(Name, Kind, Private);

/// <summary>What <see cref="QuidNode.PublishShareAsync"/> publishes: files and folders to download, or, with <paramref name="ReceiveDirectory"/>, an upload inbox.</summary>
public sealed record ShareSpec(string Name, IReadOnlyList<string> Paths, string? ReceiveDirectory = null, AddressKind Kind = AddressKind.Ephemeral, bool Private = false)
    : PublishSpec(Name, Kind, Private)
{
    /// <summary>The same share: the same paths in the same order, not the same list.</summary>
    public bool Equals(ShareSpec? other) =>
        base.Equals(other) && ReceiveDirectory == other.ReceiveDirectory && Paths.SequenceEqual(other.Paths);

    public override int GetHashCode() => HashCode.Combine(base.GetHashCode(), ReceiveDirectory, Paths.Count);
}

/// <summary>
/// Session-address services on the node (PROTOCOL §9.13): the services it publishes, the
/// <c>.quid</c> names its proxies reach, and its part for others' circuits that end here, as an
/// introduction point (publishing their records, passing them introductions) and as a lookup's
/// last hop. The overlay work runs on the loop; the circuits answer from there.
/// </summary>
public sealed partial class QuidNode : IServiceDirectory
{
    /// <summary>Circuits we publish for, as an introduction point, at most: beyond, they are refused.</summary>
    private const int MaxIntroducing = 1024;
    /// <summary>The overlay keeps at most 64 lookups of its own and forgets the oldest beyond: we refuse rather than let one go unanswered.</summary>
    private const int MaxLookupsForCircuits = 64;
    /// <summary>How long a service published again at start may take before the log says it has no introduction point yet.</summary>
    private static readonly TimeSpan RepublishWait = TimeSpan.FromMinutes(2);
    /// <summary>An introduction point republishes for a circuit at most this often.</summary>
    private static readonly TimeSpan MinRepublishInterval = TimeSpan.FromSeconds(10);

    private ServiceClient _serviceClient = null!;
    private readonly Dictionary<string, HostedService> _services = [];
    /// <summary>What each service was published with, by name: the same request again gets the same service.</summary>
    private readonly Dictionary<string, PublishSpec> _asked = [];
    /// <summary>The file servers of shares, by service name: each listens on a loopback port that only the node connects to.</summary>
    private readonly Dictionary<string, LoopbackListener> _shares = [];
    /// <summary>
    /// Our publications for circuits, with when each went out: the storers' routes for one last
    /// <see cref="OverlayOptions.RecordRouteLifetime"/>. This and the three below: on the loop only.
    /// </summary>
    private readonly Dictionary<QueryId, (Circuit Circuit, DateTimeOffset Published)> _introducing = [];
    private readonly Dictionary<Circuit, DateTimeOffset> _lastPublish = [];
    /// <summary>
    /// The gates through which an introduction point passes introductions down each service's
    /// circuit: 10 a second, bursts of 50, and under a flood those with the most work first
    /// (PROTOCOL §9.14). The rest are dropped here, before each costs the service a circuit.
    /// </summary>
    private readonly Dictionary<Circuit, IntroductionGate> _introductionGates = [];
    private long _introductionsDropped;
    private readonly Dictionary<QueryId, Circuit> _lookupsForCircuits = [];

    /// <summary>Introductions this node dropped as an introduction point: malformed, replayed, outbid or kept waiting too long (PROTOCOL §9.14).</summary>
    public long IntroductionsDropped => Interlocked.Read(ref _introductionsDropped);

    /// <summary>The services this node publishes, by name.</summary>
    public IReadOnlyList<HostedService> Services
    {
        get { lock (_services) return [.. _services.Values]; }
    }

    /// <summary>Rendezvous circuits to services that this node's proxies reached.</summary>
    public ServiceClient ServiceClient => _serviceClient;

    private void StartServices(ILogger circuitLogger)
    {
        _serviceClient = new ServiceClient(_pool, _options.Circuits, _time, circuitLogger);
        _circuits.ServiceDirectory = this;
    }

    /// <summary>
    /// Publishes the local TCP service at <paramref name="spec"/>'s target under a session address,
    /// and returns it once its record is out (or after <paramref name="publishedWithin"/>, still
    /// trying). A stable or moving service keeps its key in the data directory under its name, so
    /// its address survives restarts; an ephemeral one gets a new address each time.
    /// </summary>
    public Task<HostedService> PublishAsync(ServiceSpec spec, TimeSpan publishedWithin, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return Published(spec) is { } service ? Task.FromResult(service) : PublishAsync(spec, spec, publishedWithin, cancellationToken);
    }

    /// <summary>
    /// Publishes <paramref name="spec"/>; <paramref name="asked"/> is what the user asked for (the
    /// spec itself, or the share it serves), remembered under its name and, for a stable or moving
    /// address, kept in the ledger to publish again at each start.
    /// </summary>
    private async Task<HostedService> PublishAsync(ServiceSpec spec, PublishSpec asked, TimeSpan publishedWithin, CancellationToken cancellationToken)
    {
        ServiceNames.Check(spec.Name);
        using var secret = spec.Kind == AddressKind.Moving ? new ServiceSecret(ServiceNames.LoadOrCreateSecret(_options.DataDirectory, spec.Name, spec.Kind)) : null;
        // A private service keeps its access key as long as its address: the two are what a client needs.
        var access = !spec.Private ? null
            : spec.Kind == AddressKind.Ephemeral ? ServiceSecret.Generate()
            : new ServiceSecret(ServiceNames.LoadOrCreateSecret(_options.DataDirectory, spec.Name, "access"));
        var keys = spec.Kind switch
        {
            AddressKind.Stable => ServiceKeys.Stable(ServiceNames.LoadOrCreateSecret(_options.DataDirectory, spec.Name, spec.Kind), access: access),
            AddressKind.Moving => ServiceKeys.Moving(secret!, access: access),
            _ => ServiceKeys.Ephemeral(access: access),
        };
        var target = spec.Target;
        var service = new HostedService(spec.Name, keys, (_, ct) => ConnectToServiceAsync(target, ct), _pool, Id, _circuits.Rendezvous, _time, _logger) { FollowSecret = secret?.ToText() };
        lock (_services)
        {
            if (_services.ContainsKey(spec.Name))
            {
                keys.Dispose();
                throw ServiceNames.Taken(spec.Name);
            }
            _services[spec.Name] = service;
            _asked[spec.Name] = asked;
        }
        // Ephemeral addresses die with the node: the point of them is that a restart changes them.
        if (asked.Kind != AddressKind.Ephemeral) _database.SaveService(asked);
        service.Start();
        _logger.LogInformation("Publishing {Name} ({Kind}) at {Address}", spec.Name, spec.Kind.ToString().ToLowerInvariant(), service.Address);
        try
        {
            await service.Published.WaitAsync(publishedWithin, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _logger.LogWarning("{Name} has no introduction point yet after {Seconds:0} s; clients cannot find it until it has one (is this node partnered yet?)", spec.Name, publishedWithin.TotalSeconds);
        }
        return service;
    }

    /// <summary>
    /// Publishes files and folders (or an upload inbox) under a session address, served by the
    /// built-in file server (<see cref="ShareServer"/>: listings, ranges, resume; files streamed
    /// from where they are). Paths that do not exist are an <see cref="ArgumentException"/>.
    /// </summary>
    public async Task<HostedService> PublishShareAsync(ShareSpec spec, TimeSpan publishedWithin, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ServiceNames.Check(spec.Name);
        if (Published(spec) is { } published) return published;
        ShareContent content;
        try
        {
            content = spec.ReceiveDirectory is { } inbox ? new UploadInbox(inbox) : new SharedFiles(spec.Paths);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException(e.Message, e);
        }
        var server = new ShareServer(content, _time, _logger);
        var listener = new LoopbackListener(new IPEndPoint(IPAddress.Loopback, 0), $"share {spec.Name}", _options.Proxies.MaxConnections, _time, _logger);
        bool taken;
        // Another publication of the name may have come meanwhile: that one stays.
        lock (_services) taken = _services.ContainsKey(spec.Name) || !_shares.TryAdd(spec.Name, listener);
        if (taken)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
            throw ServiceNames.Taken(spec.Name);
        }
        listener.Start(async socket =>
        {
            await using var stream = new NetworkStream(socket, ownsSocket: true);
            await server.ServeAsync(stream, listener.Stopping).ConfigureAwait(false);
        });
        try
        {
            return await PublishAsync(new ServiceSpec(spec.Name, listener.LocalEndPoint, spec.Kind, spec.Private), spec, publishedWithin, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            lock (_services) _shares.Remove(spec.Name);
            await listener.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Remembers the access key of a private service, given as its text (<c>quid-secret-…</c>),
    /// so that this node's proxies can reach <paramref name="address"/>, now and after restarts
    /// (it is kept in the ledger). Bad text is a <see cref="FormatException"/> naming what is wrong.
    /// </summary>
    public void AddAccess(string address, string accessKey)
    {
        var parsed = SessionAddress.Parse(address);
        _serviceClient.AddAccess(parsed, ServiceSecret.Parse(accessKey));
        _database.SaveAccess(parsed.ToString(), accessKey.Trim());
    }

    /// <summary>Forgets the access key of the private service at <paramref name="address"/>, now and at later starts; false if none was kept (or the address is not one).</summary>
    public bool RemoveAccess(string address)
    {
        if (!SessionAddress.TryParse(address, out var parsed)) return false;
        _database.ForgetAccess(parsed.ToString());
        return _serviceClient.RemoveAccess(parsed);
    }

    /// <summary>
    /// Follows the moving service whose secret (<c>quid-secret-…</c>) is <paramref name="secret"/>
    /// under <paramref name="name"/>: this node's proxies then reach it as <c>NAME.quid</c> at
    /// whatever its address is, from period to period, with <paramref name="accessKey"/> if it is
    /// private. Kept in the ledger and followed again at each start. A bad name is an
    /// <see cref="ArgumentException"/>, bad text a <see cref="FormatException"/>. Returns the address now.
    /// </summary>
    public SessionAddress Follow(string name, string secret, string? accessKey)
    {
        FollowName.Check(name);
        SessionAddress address;
        using (var parsed = ServiceSecret.Parse(secret))
            address = _serviceClient.Follow(name, parsed, accessKey is null ? null : ServiceSecret.Parse(accessKey));
        _database.SaveFollow(name.ToLowerInvariant(), secret, accessKey);
        return address;
    }

    /// <summary>Stops following <paramref name="name"/>, now and at later starts; false if it was not followed.</summary>
    public bool Unfollow(string name)
    {
        _database.ForgetFollow(name.ToLowerInvariant());
        return _serviceClient.Unfollow(name);
    }

    /// <summary>Stops publishing the service named <paramref name="name"/> (and its file server, for a share); false if there is none.</summary>
    public async Task<bool> UnpublishAsync(string name)
    {
        HostedService? service;
        LoopbackListener? share;
        lock (_services)
        {
            if (!_services.Remove(name, out service)) return false;
            _shares.Remove(name, out share);
            _asked.Remove(name);
        }
        _database.ForgetService(name);
        // Removed for good: lookups of its address fail at once from now on.
        await service.StopAsync(withdraw: true).ConfigureAwait(false);
        if (share is not null) await share.DisposeAsync().ConfigureAwait(false);
        _logger.LogInformation("Stopped publishing {Name}", name);
        return true;
    }

    /// <summary>
    /// The service published under <paramref name="asked"/>'s name if it was published with the
    /// very same request, so that asking again (a script run after a restart that had already
    /// published it again) gets it rather than a refusal; null otherwise.
    /// </summary>
    private HostedService? Published(PublishSpec asked)
    {
        lock (_services)
            return _asked.TryGetValue(asked.Name, out var had) && had == asked ? _services.GetValueOrDefault(asked.Name) : null;
    }

    /// <summary>
    /// Publishes again, each in the background, the stable and moving services kept from earlier
    /// runs: their addresses are what they were, with nothing for the user to do. Follows the
    /// moving services followed before, and takes the access keys given before, too.
    /// </summary>
    private void RepublishServices()
    {
        foreach (var spec in _database.LoadServices()) _ = RepublishAsync(spec);
        foreach (var (address, key) in _database.LoadAccess())
        {
            try
            {
                _serviceClient.AddAccess(SessionAddress.Parse(address), ServiceSecret.Parse(key));
            }
            catch (FormatException e)
            {
                _logger.LogWarning("Cannot use the access key kept for {Address}: {Reason} Give it anew with: quid access ADDRESS KEY", address, e.Message);
            }
        }
        foreach (var (name, secret, access) in _database.LoadFollows())
        {
            try
            {
                Follow(name, secret, access);
            }
            catch (Exception e) when (e is ArgumentException or FormatException)
            {
                _logger.LogWarning("Cannot follow {Name} again: {Reason} Follow it anew with: quid follow {Name} SECRET", name, e.Message, name);
            }
        }
    }

    private async Task RepublishAsync(PublishSpec spec)
    {
        _logger.LogInformation("Publishing {Name} again, as before the restart", spec.Name);
        try
        {
            if (spec is ShareSpec share) await PublishShareAsync(share, RepublishWait, _stopping.Token).ConfigureAwait(false);
            else await PublishAsync((ServiceSpec)spec, RepublishWait, _stopping.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ArgumentException or NodeStateException)
        {
            _logger.LogWarning("Cannot publish {Name} again: {Reason} Fix it and restart, or stop keeping it with: quid services remove {Name}", spec.Name, e.Message, spec.Name);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            // The node is stopping.
        }
    }

    private static async Task<Socket?> ConnectToServiceAsync(IPEndPoint target, CancellationToken cancellationToken)
    {
        var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(target, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async Task StopServicesAsync()
    {
        List<HostedService> services;
        List<LoopbackListener> shares;
        lock (_services)
        {
            services = [.. _services.Values];
            shares = [.. _shares.Values];
            _services.Clear();
            _shares.Clear();
            _asked.Clear();
        }
        // An ephemeral address dies with the node, so it is withdrawn; the others come back at the next start.
        await Task.WhenAll(services.Select(s => s.StopAsync(withdraw: s.Kind == AddressKind.Ephemeral).AsTask())).ConfigureAwait(false);
        foreach (var share in shares) await share.DisposeAsync().ConfigureAwait(false);
    }

    // ---- For circuits that end here ----

    void IServiceDirectory.EstablishIntroduction(Circuit circuit, ServiceRecord record) => Post(new OnLoop(() =>
    {
        var now = _time.GetUtcNow();
        if (record.Verify(now, _options.Overlay.MaxClockSkew) is not null)
        {
            circuit.AnswerIntroduction(IntroductionStatus.BadRecord);
            return;
        }
        ForgetClosedCircuits();
        // A service's withdrawal, as it stops, is taken at once, but once per circuit: it may
        // follow a republication by less than the interval.
        bool withdrawing = record.IsWithdrawal && circuit.IntroducedRecord is { IsWithdrawal: false };
        if (!withdrawing && ((_lastPublish.TryGetValue(circuit, out var last) && now - last < MinRepublishInterval)
            || (!_lastPublish.ContainsKey(circuit) && _lastPublish.Count >= MaxIntroducing)))
        {
            circuit.AnswerIntroduction(IntroductionStatus.Refused);
            return;
        }
        _lastPublish[circuit] = now;
        circuit.IntroducedRecord = record;
        var (publish, effects) = _core.PublishRecord(record);
        _introducing[publish] = (circuit, now);
        circuit.AnswerIntroduction(IntroductionStatus.Publishing);
        Execute(effects);
    }));

    void IServiceDirectory.Lookup(Circuit circuit, ServiceLookupBody lookup) => Post(new OnLoop(() =>
    {
        ForgetClosedCircuits();
        if (_lookupsForCircuits.Count >= MaxLookupsForCircuits)
        {
            circuit.AnswerLookup(new ServiceLookupAnsweredBody(LookupStatus.Refused, null));
            return;
        }
        var (id, effects) = _core.Lookup(lookup.LookupId, lookup.Introduction);
        _lookupsForCircuits[id] = circuit;
        Execute(effects);
    }));

    /// <summary>On the loop: the overlay's answers for circuits that end here.</summary>
    private void OnServiceEffect(NodeEffect effect)
    {
        switch (effect)
        {
            case NodeEffect.IntroductionArrived arrived:
                ForgetClosedCircuits();
                if (!_introducing.TryGetValue(arrived.Publish, out var publication))
                {
                    // Its service's circuit has closed (the service moved or stopped): the holder tries another route.
                    Execute(_core.RefuseIntroduction(arrived.Publish, arrived.Lookup));
                    break;
                }
                if (!_introductionGates.TryGetValue(publication.Circuit, out var gate))
                    _introductionGates[publication.Circuit] = gate = new IntroductionGate(_time);
                long dropped = gate.Dropped;
                foreach (var introduction in gate.Offer(arrived.Introduction)) publication.Circuit.PassIntroduction(introduction);
                CountDropped(gate, dropped);
                break;
            case NodeEffect.ServiceRecordFound found when _lookupsForCircuits.Remove(found.Lookup, out var circuit):
                circuit.AnswerLookup(new ServiceLookupAnsweredBody(LookupStatus.Found, found.Record));
                break;
            case NodeEffect.ServiceLookupFailed failed when _lookupsForCircuits.Remove(failed.Lookup, out var circuit):
                circuit.AnswerLookup(new ServiceLookupAnsweredBody(LookupStatus.NotFound, null));
                break;
        }
    }

    /// <summary>Publications and lookups of circuits that have closed go (the publications closed in the overlay too), and publications no storer keeps a route for; on the loop.</summary>
    private void ForgetClosedCircuits()
    {
        var expired = _time.GetUtcNow() - _options.Overlay.RecordRouteLifetime;
        foreach (var (id, publication) in _introducing.ToList())
        {
            if (publication.Circuit.State != CircuitState.Closed && publication.Published >= expired) continue;
            _introducing.Remove(id);
            _core.ClosePublication(id);
        }
        foreach (var circuit in _lastPublish.Keys.ToList())
            if (circuit.State == CircuitState.Closed) _lastPublish.Remove(circuit);
        foreach (var circuit in _introductionGates.Keys.ToList())
            if (circuit.State == CircuitState.Closed) _introductionGates.Remove(circuit);
        foreach (var (id, circuit) in _lookupsForCircuits.ToList())
            if (circuit.State == CircuitState.Closed) _lookupsForCircuits.Remove(id);
    }

    /// <summary>Introductions that waited at a gate and whose turn has come go down their circuits; on the loop, each tick.</summary>
    private void ReleaseWaitingIntroductions()
    {
        foreach (var (circuit, gate) in _introductionGates)
        {
            if (gate.Waiting == 0 || circuit.State != CircuitState.Open) continue;
            long dropped = gate.Dropped;
            foreach (var introduction in gate.Release()) circuit.PassIntroduction(introduction);
            CountDropped(gate, dropped);
        }
    }

    private void CountDropped(IntroductionGate gate, long before)
    {
        if (gate.Dropped == before) return;
        Interlocked.Add(ref _introductionsDropped, gate.Dropped - before);
        _logger.LogDebug("Dropped {Count} introductions: malformed, replayed, outbid or kept waiting too long ({Waiting} wait for a service's circuit)",
            gate.Dropped - before, gate.Waiting);
    }
}

/// <summary>A service of that name is published already, with something other than what was asked.</summary>
public sealed class ServiceNameTakenException(string message) : ArgumentException(message);

/// <summary>Names of published services, and the secrets of the stable and moving ones in the data directory.</summary>
internal static class ServiceNames
{
    public const string Folder = "services";

    public static ServiceNameTakenException Taken(string name) =>
        new($"A service named '{name}' is published already, differently: remove it first (quid services remove {name}), or choose another name.");

    public static void Check(string name)
    {
        if (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            throw new ArgumentException($"'{name}' is not a service name: use 1 to 64 letters, digits and dashes.");
    }

    /// <summary>The 32-byte seed (stable) or secret (moving) kept for <paramref name="name"/>, made on first use; owner-only.</summary>
    public static byte[] LoadOrCreateSecret(string dataDirectory, string name, AddressKind kind) =>
        LoadOrCreateSecret(dataDirectory, name, kind.ToString().ToLowerInvariant());

    /// <summary>The 32 bytes kept in <c>services/NAME.WHAT.key</c>, made on first use; owner-only.</summary>
    public static byte[] LoadOrCreateSecret(string dataDirectory, string name, string what)
    {
        var folder = Path.Combine(dataDirectory, Folder);
        var path = Path.Combine(folder, $"{name}.{what}.key");
        if (File.Exists(path))
        {
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length != 32) throw new NodeStateException($"{path} is damaged (it should hold 32 bytes); delete it to give the service '{name}' a new address.");
            return bytes;
        }
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(folder);
        else Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var secret = RandomNumberGenerator.GetBytes(32);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new FileStream(path, options)) file.Write(secret);
        return secret;
    }
}
