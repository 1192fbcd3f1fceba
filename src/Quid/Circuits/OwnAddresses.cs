using System.Net;
using System.Net.NetworkInformation;

namespace Quid.Circuits;

/// <summary>
/// The addresses of the exit's own host: those it was configured with (listen, advertised,
/// outbound bind) and those of its network interfaces, read again once a minute so an address a
/// DHCP lease or a new interface brings is known soon. An exit refuses them as it refuses private
/// ranges (see <see cref="ExitConnector"/>).
/// </summary>
public sealed class OwnAddresses
{
    private static readonly TimeSpan RefreshInterval = TimeSpan.FromMinutes(1);

    private readonly IPAddress[] _configured;
    private readonly TimeProvider _time;
    private readonly Func<IEnumerable<IPAddress>> _interfaces;
    private readonly Lock _lock = new();
    private readonly HashSet<IPAddress> _learned = [];
    private HashSet<IPAddress> _current = [];
    private DateTimeOffset _refreshAt = DateTimeOffset.MinValue;

    public OwnAddresses(IEnumerable<IPAddress> configured, TimeProvider time, Func<IEnumerable<IPAddress>>? interfaces = null)
    {
        _configured = [.. configured.Select(Normal)];
        _time = time;
        _interfaces = interfaces ?? InterfaceAddresses;
    }

    /// <summary>
    /// An address found to be ours while running: the outside address a NAT gateway mapped for us
    /// (a stream to it would come back to this host, or reach the gateway from inside). It stays ours.
    /// </summary>
    public void Learned(IPAddress address)
    {
        lock (_lock)
        {
            _learned.Add(Normal(address));
            _current.Add(Normal(address));
        }
    }

    public bool Contains(IPAddress address)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (now >= _refreshAt)
            {
                _current = [.. _configured, .. _learned, .. ReadInterfaces().Select(Normal)];
                _refreshAt = now + RefreshInterval;
            }
            return _current.Contains(Normal(address));
        }
    }

    private IEnumerable<IPAddress> ReadInterfaces()
    {
        try
        {
            return [.. _interfaces()];
        }
        catch (NetworkInformationException)
        {
            // Unreadable now: the configured addresses still count, and the next refresh tries again.
            return [];
        }
    }

    private static IEnumerable<IPAddress> InterfaceAddresses() =>
        NetworkInterface.GetAllNetworkInterfaces().SelectMany(i => i.GetIPProperties().UnicastAddresses).Select(u => u.Address);

    private static IPAddress Normal(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) return address.MapToIPv4();
        // A zone (fe80::1%eth0) names the interface, not another address.
        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && address.ScopeId != 0) return new IPAddress(address.GetAddressBytes());
        return address;
    }
}
