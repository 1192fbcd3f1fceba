using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Time.Testing;
using Quid.Core;
using Quid.Crypto;
using Quid.Tests.Wire;
using Quid.Wire;

namespace Quid.Tests.Core;

/// <summary>
/// Node cores on one fake clock, hosted the simplest way there is: a dial to a core's address
/// links it at once, control messages cross as encoded bytes in the order they were sent, and
/// nothing happens until the test says so (<see cref="Deliver"/>, <see cref="Tick"/>). Every
/// effect each core returns is kept, so a test can ask what a core did.
/// </summary>
internal sealed class CoreHarness : IDisposable
{
    private readonly List<CoreNode> _nodes = [];
    private readonly Queue<(CoreNode To, TestLink Link, byte[] Payload)> _inFlight = new();
    private int _port = 7000;

    public FakeTimeProvider Time { get; } = new(TestDescriptors.Epoch);

    public void Dispose()
    {
        foreach (var node in _nodes) node.Identity.Dispose();
    }

    /// <summary>A link between two cores; each end is closed on its own, as with real sockets.</summary>
    internal sealed class TestLink(CoreNode dialer, CoreNode acceptor)
    {
        public CoreNode Dialer { get; } = dialer;
        public CoreNode Acceptor { get; } = acceptor;
        public bool Closed { get; set; }

        public CoreNode Other(CoreNode end) => end == Dialer ? Acceptor : Dialer;
    }

    /// <summary>A core and what it did.</summary>
    internal sealed class CoreNode(NodeIdentity identity, NodeCore<TestLink> core, IPEndPoint address)
    {
        public NodeIdentity Identity { get; } = identity;
        public NodeCore<TestLink> Core { get; } = core;
        public IPEndPoint Address { get; } = address;
        public NodeId Id => Identity.Id;
        public List<NodeEffect> Effects { get; } = [];
        public List<LinkVerdict> Verdicts { get; } = [];

        public IEnumerable<T> Seen<T>() where T : NodeEffect => Effects.OfType<T>();
        public IEnumerable<T> Sent<T>() where T : ControlMessage => Effects.OfType<NodeEffect.Send>().Select(s => s.Message).OfType<T>();
        public Descriptor LastDescriptor => Seen<NodeEffect.DescriptorPublished>().Last().Descriptor;
    }

    /// <summary>A node's identity from a number, so that two runs of a test make the same nodes.</summary>
    public static NodeIdentity Identity(int seed) => NodeIdentity.FromSeed(SHA256.HashData(BitConverter.GetBytes(seed)));

    /// <summary>Core settings for a quick test network: seeded randomness, searches every second.</summary>
    public static CoreOptions Options(long offer, long? request, int hops = 1, int seed = 1) => new()
    {
        Offer = Block.FromKbps(offer),
        Request = request is { } r ? Block.FromKbps(r) : null,
        Hops = hops,
        SearchInterval = TimeSpan.FromSeconds(1),
        Overlay = new() { Random = new Random(seed) },
        Market = new() { Random = new Random(seed + 1) },
    };

    public CoreNode Add(CoreOptions options, NodeIdentity? identity = null)
    {
        identity ??= Identity(1000 + _nodes.Count);
        var address = new IPEndPoint(IPAddress.Loopback, ++_port);
        var node = new CoreNode(identity, new NodeCore<TestLink>(identity, options with { Address = options.Address ?? address }, Time), options.Address ?? address);
        _nodes.Add(node);
        Execute(node, node.Core.Start());
        return node;
    }

    /// <summary>Carries out what a core asked, as a host would.</summary>
    public void Execute(CoreNode node, IReadOnlyList<NodeEffect> effects)
    {
        node.Effects.AddRange(effects);
        foreach (var effect in effects)
        {
            switch (effect)
            {
                case NodeEffect.Send send when node.Core.LinkTo(send.To) is { Closed: false } link:
                    _inFlight.Enqueue((link.Other(node), link, ControlCodec.Encode(send.Message)));
                    break;
                case NodeEffect.Dial dial:
                    if (_nodes.FirstOrDefault(n => n.Address.Equals(dial.Address)) is { } target && (dial.Expected is null || dial.Expected == target.Id))
                        Connect(node, target, dial.Address);
                    else
                        Execute(node, node.Core.DialFailed(dial.Address, dial.Expected));
                    break;
                case NodeEffect.Disconnect disconnect when node.Core.LinkTo(disconnect.Peer) is { } link:
                    _inFlight.Enqueue((link.Other(node), link, ControlCodec.Encode(new GoodbyeMessage(disconnect.Reason))));
                    Close(node, link);
                    break;
                case NodeEffect.CloseLink close when node.Core.LinkTo(close.Peer) is { } link:
                    Close(node, link);
                    break;
            }
        }
    }

    /// <summary><paramref name="dialer"/>'s dial reaches <paramref name="acceptor"/>: the dialer's end comes up first, then the acceptor's.</summary>
    public TestLink Connect(CoreNode dialer, CoreNode acceptor, EndPoint? dialed = null)
    {
        var link = new TestLink(dialer, acceptor);
        if (LinkUp(dialer, link, outbound: true, dialed ?? acceptor.Address)) LinkUp(acceptor, link, outbound: false, null);
        return link;
    }

    private bool LinkUp(CoreNode node, TestLink link, bool outbound, EndPoint? dialed)
    {
        var peer = link.Other(node);
        var decision = node.Core.LinkUp(link, peer.Id, outbound, peer.Address, peer.Identity.SigningPublicKey, dialed);
        node.Verdicts.Add(decision.Verdict);
        if (decision.Verdict != LinkVerdict.Keep)
        {
            Close(node, link);
            return false;
        }
        if (decision.Replaced is { } old) Close(node, old);
        if (decision.Evicted is { } evicted) Close(node, evicted);
        Execute(node, decision.Effects);
        return true;
    }

    /// <summary>A link closes: both ends hear of it.</summary>
    public void Close(CoreNode by, TestLink link)
    {
        if (link.Closed) return;
        link.Closed = true;
        Execute(by, by.Core.LinkDown(link, link.Other(by).Id));
        var other = link.Other(by);
        Execute(other, other.Core.LinkDown(link, by.Id));
    }

    /// <summary>Delivers every message in flight, and those they cause, in order.</summary>
    public void Deliver()
    {
        while (_inFlight.TryDequeue(out var m))
        {
            // The harness closes both ends at once, so what was in flight on a closed link is lost.
            if (m.Link.Closed) continue;
            Execute(m.To, m.To.Core.Receive(m.Link, m.Link.Other(m.To).Id, m.Payload));
        }
    }

    /// <summary>Time passes by <paramref name="step"/>; every core ticks and what it sends is delivered.</summary>
    public void Tick(TimeSpan? step = null, int times = 1)
    {
        for (int i = 0; i < times; i++)
        {
            Time.Advance(step ?? TimeSpan.FromSeconds(1));
            foreach (var node in _nodes.ToList()) Execute(node, node.Core.Tick());
            Deliver();
        }
    }
}
