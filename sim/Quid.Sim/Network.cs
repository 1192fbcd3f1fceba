using System.Net;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Sim;

/// <summary>The virtual Internet's parameters: one-way latency by distance, jitter, loss, and how crashes are noticed.</summary>
public sealed record NetworkOptions
{
    /// <summary>One-way latency between two hosts in the same place.</summary>
    public double BaseLatencyMs { get; init; } = 10;
    /// <summary>Added one-way latency across the whole map (hosts sit on a unit square).</summary>
    public double DistanceLatencyMs { get; init; } = 100;
    /// <summary>Mean of the exponential queueing jitter added to each message.</summary>
    public double JitterMs { get; init; } = 2;
    /// <summary>Packet loss: TCP repairs it, so a loss costs a retransmission timeout, not the message.</summary>
    public double Loss { get; init; } = 0.005;
    /// <summary>Multiplies every host's upload when charging control messages to it.</summary>
    public double BandwidthScale { get; init; } = 1;
    /// <summary>A dial to an address where nobody answers fails after this long (the link handshake timeout).</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>The share of a crashed node's links that its machine's kernel resets at once; the rest time out.</summary>
    public double CrashResetShare { get; init; } = 0.5;
    /// <summary>A link to a node that vanished without a reset is noticed within this long (the idle timeout).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(95);
}

/// <summary>A machine: where it is, whether it can be dialed, and its upload, which outlives a re-keyed identity.</summary>
public sealed class Host(int index, IPEndPoint? address, double x, double y, long uploadKbps)
{
    public int Index { get; } = index;
    /// <summary>Null behind a NAT: the node dials out but nobody can dial it.</summary>
    public IPEndPoint? Address { get; } = address;
    public double X { get; } = x;
    public double Y { get; } = y;
    public long UploadKbps { get; } = uploadKbps;
    /// <summary>When the upload is free again: control messages queue behind each other.</summary>
    internal long UplinkFreeAt { get; set; }
}

/// <summary>
/// One authenticated link between two nodes, seen from both ends. Each end decides for itself
/// that it is open or closed, as with real sockets; messages in each direction arrive in order.
/// </summary>
public sealed class SimLink(SimNode dialer, SimNode acceptor)
{
    public SimNode Dialer { get; } = dialer;
    public SimNode Acceptor { get; } = acceptor;
    internal bool OpenAtDialer { get; set; }
    internal bool OpenAtAcceptor { get; set; }
    internal bool ClosedAtDialer { get; set; }
    internal bool ClosedAtAcceptor { get; set; }
    private long _lastToAcceptor;
    private long _lastToDialer;

    public SimNode Other(SimNode end) => end == Dialer ? Acceptor : Dialer;
    public bool Outbound(SimNode end) => end == Dialer;
    public bool IsOpenAt(SimNode end) => end == Dialer ? OpenAtDialer : OpenAtAcceptor;
    public bool IsClosedAt(SimNode end) => end == Dialer ? ClosedAtDialer : ClosedAtAcceptor;

    internal void SetOpen(SimNode end)
    {
        if (end == Dialer) OpenAtDialer = true;
        else OpenAtAcceptor = true;
    }

    internal void SetClosed(SimNode end)
    {
        if (end == Dialer) { OpenAtDialer = false; ClosedAtDialer = true; }
        else { OpenAtAcceptor = false; ClosedAtAcceptor = true; }
    }

    /// <summary>TCP keeps order: nothing sent after a message arrives before it.</summary>
    internal long InOrder(SimNode to, long arrival)
    {
        if (to == Acceptor) return _lastToAcceptor = Math.Max(_lastToAcceptor, arrival);
        return _lastToDialer = Math.Max(_lastToDialer, arrival);
    }
}

/// <summary>
/// The network between simulated nodes: dials, control messages passed as objects with the
/// delay their size, the hosts' uploads, distance and loss would give them, and link closes.
/// </summary>
public sealed class VirtualNetwork(NetworkOptions options, Scheduler scheduler, Random random)
{
    private readonly Dictionary<IPEndPoint, SimNode> _listening = [];

    public NetworkOptions Options => options;
    public long MessagesSent { get; private set; }
    public long BytesSent { get; private set; }
    /// <summary>Query messages that reached an online node in the measurement window.</summary>
    public long QueriesArrived { get; private set; }
    /// <summary>Of those, the ones that came on a link the receiver had already closed, and were discarded unread.</summary>
    public long QueriesOnClosedLinks { get; private set; }

    private long Now => scheduler.Clock.Now;

    internal void Listen(SimNode node)
    {
        if (node.Host.Address is { } address) _listening[address] = node;
    }

    internal void StopListening(SimNode node)
    {
        if (node.Host.Address is { } address && _listening.TryGetValue(address, out var current) && current == node) _listening.Remove(address);
    }

    /// <summary>One-way latency between two hosts, in ticks, before jitter and queueing.</summary>
    public long Latency(Host a, Host b)
    {
        double distance = Math.Sqrt((a.X - b.X) * (a.X - b.X) + (a.Y - b.Y) * (a.Y - b.Y)) / Math.Sqrt(2);
        return TimeSpan.FromMilliseconds(options.BaseLatencyMs + options.DistanceLatencyMs * distance).Ticks;
    }

    private long Jitter() => options.JitterMs <= 0 ? 0 : TimeSpan.FromMilliseconds(-options.JitterMs * Math.Log(1 - random.NextDouble())).Ticks;

    /// <summary>
    /// Dials <paramref name="address"/>: after TCP's and the Noise handshake's round trips the
    /// dialer's end opens, one trip later the acceptor's. A wrong id, a node that went away, or
    /// nobody listening fails the dial.
    /// </summary>
    internal void Dial(SimNode from, IPEndPoint address, NodeId? expected)
    {
        if (!_listening.TryGetValue(address, out var to) || !to.Online)
        {
            scheduler.After(options.ConnectTimeout, () => from.DialFailed(address, expected));
            return;
        }
        long oneWay = Latency(from.Host, to.Host);
        if (expected is { } id && to.Id != id)
        {
            // The handshake proves another key than the one we dialed for.
            scheduler.At(Now + 4 * oneWay, () => from.DialFailed(address, expected));
            return;
        }
        var link = new SimLink(from, to);
        scheduler.At(Now + 4 * oneWay + Jitter(), () =>
        {
            if (!to.Online || to.Host.Address is null || !_listening.ContainsKey(address))
            {
                from.DialFailed(address, expected);
                return;
            }
            from.LinkEstablished(link, address);
            scheduler.At(Now + oneWay, () =>
            {
                // The dialer closed during the handshake's last trip: the acceptor never sees a link.
                if (link.IsClosedAt(from) || !from.Online) return;
                to.LinkEstablished(link, address);
            });
        });
    }

    /// <summary>Sends a control message over a link: it queues on the sender's upload, crosses the distance, and arrives in order.</summary>
    internal void Send(SimLink link, SimNode from, ControlMessage message)
    {
        var to = link.Other(from);
        int length = ControlCodec.EncodedLength(message);
        // Fragments of at most 2040 bytes, each in a 2048-byte cell.
        int bytes = ControlFraming.CellCount(length) * Cell.Size;
        MessagesSent++;
        BytesSent += bytes;
        var host = from.Host;
        long start = Math.Max(Now, host.UplinkFreeAt);
        host.UplinkFreeAt = start + (long)(bytes * 8.0 / (host.UploadKbps * 1000.0 * options.BandwidthScale) * TimeSpan.TicksPerSecond);
        long oneWay = Latency(from.Host, to.Host);
        long arrival = host.UplinkFreeAt + oneWay + Jitter();
        int packets = (bytes + 1447) / 1448;
        if (options.Loss > 0 && random.NextDouble() < 1 - Math.Pow(1 - options.Loss, packets))
            arrival += Math.Max(TimeSpan.FromMilliseconds(200).Ticks, 4 * oneWay);
        arrival = link.InOrder(to, arrival);
        scheduler.At(arrival, () => to.Deliver(link, message));
    }

    /// <summary>Counts a Query that reached an online node, and whether its link was already closed at that end.</summary>
    internal void QueryArrived(bool onClosedLink)
    {
        QueriesArrived++;
        if (onClosedLink) QueriesOnClosedLinks++;
    }

    /// <summary>One end closes the link: the other end learns of it after everything already sent.</summary>
    internal void Close(SimLink link, SimNode by)
    {
        var to = link.Other(by);
        long arrival = link.InOrder(to, Now + Latency(by.Host, to.Host));
        scheduler.At(arrival, () => to.PeerClosed(link));
    }

    /// <summary>A node vanished: its peers notice at once if its kernel reset the connections, otherwise only when the link goes idle.</summary>
    internal void Crashed(SimNode node, IEnumerable<SimLink> links)
    {
        StopListening(node);
        foreach (var link in links)
        {
            var to = link.Other(node);
            long delay = random.NextDouble() < options.CrashResetShare
                ? Latency(node.Host, to.Host)
                : (long)(options.IdleTimeout.Ticks * (0.3 + 0.7 * random.NextDouble()));
            long arrival = link.InOrder(to, Now + delay);
            scheduler.At(arrival, () => to.PeerClosed(link));
        }
    }
}
