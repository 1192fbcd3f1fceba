using Quid.Wire;

namespace Quid.Circuits;

/// <summary>Where a circuit ending here takes its EstablishRendezvous and Rendezvous messages.</summary>
internal interface IRendezvousPoint
{
    void Establish(Circuit client, ReadOnlySpan<byte> data);
    void Join(Circuit service, ReadOnlySpan<byte> data);
}

/// <summary>
/// This node as a rendezvous point R: a client's circuit ending here waits under a cookie, and a
/// service's circuit ending here that names the cookie is joined to it. From then on each cell
/// that passes R's layer on one circuit goes on into the other (<see cref="Circuit.PassToOrigin"/>),
/// and R reads none of them. The table of waiting circuits is bounded: one cookie per circuit,
/// at most <c>capacity</c> cookies, each forgotten after its lifetime, when it is used,
/// or when its circuit closes; a cookie beyond the bound is refused, never queued.
/// </summary>
public sealed class RendezvousPoint(int capacity, TimeSpan lifetime, TimeProvider time) : IRendezvousPoint
{
    private readonly record struct Waiting(Circuit Circuit, DateTimeOffset Expires);

    private readonly Lock _lock = new();
    private readonly Dictionary<RendezvousCookie, Waiting> _waiting = [];

    /// <summary>Cookies held now, expired ones not yet dropped included.</summary>
    public int Count
    {
        get { lock (_lock) return _waiting.Count; }
    }

    void IRendezvousPoint.Establish(Circuit client, ReadOnlySpan<byte> data)
    {
        RendezvousCookie cookie;
        try
        {
            cookie = EstablishRendezvousBody.Read(data).Cookie;
        }
        catch (WireException)
        {
            Refuse(client, RendezvousFailure.Malformed);
            return;
        }
        RendezvousFailure? failure;
        lock (_lock) failure = TryAdd(client, cookie);
        if (failure is { } refused) Refuse(client, refused);
        else client.SendRelay(RelayCommand.RendezvousEstablished, 0, []);
    }

    /// <summary>Call under the lock.</summary>
    private RendezvousFailure? TryAdd(Circuit client, RendezvousCookie cookie)
    {
        if (client.RendezvousCookie is not null) return RendezvousFailure.AlreadyUsed;
        var now = time.GetUtcNow();
        if (_waiting.TryGetValue(cookie, out var holder))
        {
            if (holder.Expires > now && holder.Circuit.State != CircuitState.Closed) return RendezvousFailure.CookieInUse;
            _waiting.Remove(cookie);
        }
        if (_waiting.Count >= capacity)
        {
            // Only when full: a flood pays for the scan with one cell per cookie.
            foreach (var (old, waiting) in _waiting)
                if (waiting.Expires <= now || waiting.Circuit.State == CircuitState.Closed) _waiting.Remove(old);
            if (_waiting.Count >= capacity) return RendezvousFailure.ResourceLimit;
        }
        _waiting.Add(cookie, new Waiting(client, now + lifetime));
        client.RendezvousCookie = cookie;
        return null;
    }

    /// <summary>
    /// A service's circuit names a cookie: if a client's circuit waits under it, joins the two. The
    /// order is what keeps each side's layers in step: the service hears RendezvousJoined before
    /// any cell of the client's can reach it, and the join is in place before the client hears
    /// Rendezvous2, after which it may send.
    /// </summary>
    void IRendezvousPoint.Join(Circuit service, ReadOnlySpan<byte> data)
    {
        RendezvousBody rendezvous;
        try
        {
            rendezvous = RendezvousBody.Read(data);
        }
        catch (WireException)
        {
            Refuse(service, RendezvousFailure.Malformed);
            return;
        }
        Circuit? client = null;
        RendezvousFailure? failure = null;
        lock (_lock)
        {
            if (service.RendezvousCookie is not null || service.Joined is not null) failure = RendezvousFailure.AlreadyUsed;
            // Taken out whatever follows: a cookie serves once.
            else if (!_waiting.Remove(rendezvous.Cookie, out var waiting) || waiting.Expires <= time.GetUtcNow()
                || waiting.Circuit.State == CircuitState.Closed || waiting.Circuit.Outward is not null)
                failure = RendezvousFailure.UnknownCookie;
            else
            {
                client = waiting.Circuit;
                // Neither circuit may be joined again.
                service.RendezvousCookie = rendezvous.Cookie;
            }
        }
        if (failure is { } refused)
        {
            Refuse(service, refused);
            return;
        }
        service.SendRelay(RelayCommand.RendezvousJoined, 0, []);
        Circuit.Join(client!, service);
        client!.SendRelay(RelayCommand.Rendezvous2, 0, rendezvous.HandshakeReply);
        // Closed while being joined: its teardown may have missed the join, so the other side goes too.
        if (client.State == CircuitState.Closed) service.Destroy(DestroyReason.HopLost);
    }

    /// <summary>
    /// The client's circuit waiting under <paramref name="cookie"/>, taken out of the table (a
    /// cookie serves once), for the service of this node to meet it here; null when none waits,
    /// as for an unknown cookie.
    /// </summary>
    public Circuit? TakeWaiting(RendezvousCookie cookie)
    {
        lock (_lock)
        {
            if (!_waiting.Remove(cookie, out var waiting) || waiting.Expires <= time.GetUtcNow()
                || waiting.Circuit.State == CircuitState.Closed || waiting.Circuit.Outward is not null || waiting.Circuit.Joined is not null)
                return null;
            return waiting.Circuit;
        }
    }

    /// <summary>The circuit is closing: its cookie, if it still waits, goes with it.</summary>
    internal void Forget(Circuit circuit)
    {
        if (circuit.RendezvousCookie is not { } cookie) return;
        lock (_lock)
        {
            if (_waiting.TryGetValue(cookie, out var waiting) && waiting.Circuit == circuit) _waiting.Remove(cookie);
        }
    }

    /// <summary>The circuit stays, as after ExtendFailed: its origin hears why and decides.</summary>
    private static void Refuse(Circuit circuit, RendezvousFailure reason) =>
        circuit.SendRelay(RelayCommand.RendezvousFailed, 0, [(byte)reason]);
}
