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
public sealed class ExitConnector(ExitPolicy policy, IPAddress? bindAddress, TimeSpan connectTimeout, TimeProvider time, Resolver? resolver = null)
{
    private readonly Resolver _resolve = resolver ?? ((host, ct) => Dns.GetHostAddressesAsync(host, ct));

    public ExitPolicy Policy => policy;
    public IPAddress? BindAddress => bindAddress;

    public sealed record Result(Socket? Socket, IPAddress? Address, EndReason Failure);

    /// <summary>
    /// Answers a client's RESOLVE with the exit's own resolver. Addresses the exit policy refuses
    /// on every port (its own host, its LAN) are left out: a name lookup must not map the exit's
    /// private network for strangers.
    /// </summary>
    public async Task<(IPAddress[] Addresses, EndReason Failure)> ResolveAsync(string host, CancellationToken cancellationToken)
    {
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
        var allowed = addresses.Where(a => policy.Allows(a, 443) || policy.Allows(a, 80)).ToArray();
        return allowed.Length > 0 ? (allowed, EndReason.Done) : ([], addresses.Length == 0 ? EndReason.ResolveFailed : EndReason.ExitPolicy);
    }

    public async Task<Result> ConnectAsync(StreamTarget target, CancellationToken cancellationToken)
    {
        IPAddress[] addresses;
        if (IPAddress.TryParse(target.Host, out var literal))
        {
            addresses = [literal];
        }
        else
        {
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
            if (addresses.Length == 0) return new Result(null, null, EndReason.ResolveFailed);
        }

        var allowed = addresses.Where(a => policy.Allows(a, target.Port)).ToArray();
        if (allowed.Length == 0) return new Result(null, null, EndReason.ExitPolicy);

        var failure = EndReason.Unreachable;
        foreach (var address in allowed)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                if (bindAddress is not null && bindAddress.AddressFamily == address.AddressFamily) socket.Bind(new IPEndPoint(bindAddress, 0));
                using var timeout = new CancellationTokenSource(connectTimeout, time);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
                await socket.ConnectAsync(new IPEndPoint(address, target.Port), linked.Token).ConfigureAwait(false);
                return new Result(socket, address, EndReason.Done);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                failure = e.SocketErrorCode == SocketError.ConnectionRefused ? EndReason.ConnectionRefused : EndReason.Unreachable;
            }
            catch (OperationCanceledException)
            {
                socket.Dispose();
                if (cancellationToken.IsCancellationRequested) throw;
                failure = EndReason.Timeout;
            }
        }
        return new Result(null, null, failure);
    }
}
