using System.Net;
using System.Net.Sockets;
using Quid.Wire;

namespace Quid.Circuits;

/// <summary>Resolves a host name; at an exit that is the exit's own resolver, never the client's.</summary>
public delegate Task<IPAddress[]> Resolver(string host, CancellationToken cancellationToken);

/// <summary>
/// Where streams leave the network: resolves the name here, checks the exit policy against
/// every resolved address (so a name pointing at a private address is refused like the
/// address), then connects, from <see cref="BindAddress"/> when one is set.
/// </summary>
/// <remarks>
/// As Tor's ExitPolicyRejectPrivate does, the exit also refuses its own addresses
/// (<paramref name="ownAddresses"/>: its interfaces' and the ones it was configured with), which
/// no private range covers when they are public: a stream to them would reach services listening
/// on the exit's host. Tor puts them at the head of its published policy; ours checks them here
/// and publishes nothing, so (unlike Tor's ExitPolicyRejectLocalInterfaces, off by default for
/// that reason) every interface's address is refused without revealing any. They stay
/// reachable where the policy says so: a rule naming an address (not *) that accepts it, or a
/// policy that accepts loopback on the port, such as a test network's <c>accept *:*</c>, under
/// which refusing the host's other addresses would protect nothing.
/// </remarks>
public sealed class ExitConnector(ExitPolicy policy, IPAddress? bindAddress, TimeSpan connectTimeout, TimeProvider time, Resolver? resolver = null,
    OwnAddresses? ownAddresses = null)
{
    private readonly Resolver _resolve = resolver ?? ((host, ct) => Dns.GetHostAddressesAsync(host, ct));

    public ExitPolicy Policy => policy;
    public IPAddress? BindAddress => bindAddress;

    public sealed record Result(Socket? Socket, IPAddress? Address, EndReason Failure);

    /// <summary>Whether a stream may go to <paramref name="address"/>:<paramref name="port"/>: the policy allows it, and it is not the exit's own unless the policy means it.</summary>
    public bool Allows(IPAddress address, int port)
    {
        if (!policy.Allows(address, port)) return false;
        if (ownAddresses is null || !ownAddresses.Contains(address)) return true;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        var named = policy.Rules.First(r => r.Matches(address, port));
        return (named.Network is not null && named.PrefixLength > 0)
            || policy.Allows(address.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Loopback : IPAddress.Loopback, port);
    }

    /// <summary>
    /// Answers a client's RESOLVE with the exit's own resolver. Addresses the exit refuses on every
    /// port (its own host, its LAN) are left out: a name lookup must not map the exit's private
    /// network for strangers. A name with none left is answered as a name that does not resolve.
    /// </summary>
    public async Task<(IPAddress[] Addresses, EndReason Failure)> ResolveAsync(string host, CancellationToken cancellationToken)
    {
        // A session address is no DNS name: a client that sent one here leaked it, and our
        // resolver must not pass the leak on.
        if (StreamTarget.IsSessionName(host)) return ([], EndReason.ResolveFailed);
        IPAddress[] addresses;
        try
        {
            using var timeout = new CancellationTokenSource(connectTimeout, time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
            addresses = await _resolve(host, linked.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ArgumentException)
        {
            return ([], EndReason.ResolveFailed);
        }
        var allowed = addresses.Where(a => Allows(a, 443) || Allows(a, 80)).ToArray();
        return allowed.Length > 0 ? (allowed, EndReason.Done) : ([], EndReason.ResolveFailed);
    }

    public async Task<Result> ConnectAsync(StreamTarget target, CancellationToken cancellationToken)
    {
        IPAddress[] allowed;
        if (IPAddress.TryParse(target.Host, out var literal))
        {
            // The client named the address itself: saying it is refused tells it nothing about our DNS.
            if (!Allows(literal, target.Port)) return new Result(null, null, EndReason.ExitPolicy);
            allowed = [literal];
        }
        else
        {
            // A port refused everywhere is refused before a lookup, which could otherwise tell a
            // client whether a name exists (and costs a lookup for nothing).
            if (!policy.MayAllowPort(target.Port)) return new Result(null, null, EndReason.ExitPolicy);
            if (target.IsSessionAddress) return new Result(null, null, EndReason.ResolveFailed);
            IPAddress[] addresses;
            try
            {
                using var timeout = new CancellationTokenSource(connectTimeout, time);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
                addresses = await _resolve(target.Host, linked.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ArgumentException)
            {
                return new Result(null, null, EndReason.ResolveFailed);
            }
            allowed = [.. addresses.Where(a => Allows(a, target.Port))];
            // A name whose every address we refuse gets the answer of a name that does not exist.
            // Answering "exit policy" would tell a client that the name exists in the exit's own
            // DNS, pointing at its host or LAN: enough to map an internal network name by name.
            // "Could not resolve" is true from where a stream may go, and reveals nothing.
            if (allowed.Length == 0) return new Result(null, null, EndReason.ResolveFailed);
        }

        var failure = EndReason.Unreachable;
        foreach (var address in allowed)
        {
            Socket? socket = null;
            try
            {
                socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                if (bindAddress is not null && bindAddress.AddressFamily == address.AddressFamily) socket.Bind(new IPEndPoint(bindAddress, 0));
                using var timeout = new CancellationTokenSource(connectTimeout, time);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
                await socket.ConnectAsync(new IPEndPoint(address, target.Port), linked.Token).ConfigureAwait(false);
                return new Result(socket, address, EndReason.Done);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable)
            {
                // Out of descriptors (EMFILE, ENFILE) or socket memory: no other address would fare better.
                socket?.Dispose();
                return new Result(null, null, EndReason.ResourceLimit);
            }
            catch (SocketException e)
            {
                socket?.Dispose();
                failure = e.SocketErrorCode == SocketError.ConnectionRefused ? EndReason.ConnectionRefused : EndReason.Unreachable;
            }
            catch (OperationCanceledException)
            {
                socket?.Dispose();
                if (cancellationToken.IsCancellationRequested) throw;
                failure = EndReason.Timeout;
            }
        }
        return new Result(null, null, failure);
    }
}
