using System.Net;
using Microsoft.Extensions.Time.Testing;
using Quid.Crypto;
using Quid.Overlay;
using Quid.Tests.Wire;
using Quid.Wire;

namespace Quid.Tests.Overlay;

/// <summary>A neighbour as a test sees it: its keys and the descriptor it sent.</summary>
internal sealed record Peer(NodeIdentity Identity, Descriptor Descriptor)
{
    public NodeId Id => Identity.Id;
}

/// <summary>
/// One fake clock, the identities a test makes, and the moves every overlay test repeats:
/// build a node, link a neighbour that sends its descriptor, make a node an ultrapeer.
/// </summary>
internal sealed class OverlayHarness : IDisposable
{
    private readonly List<NodeIdentity> _identities = [];
    private int _port = 20000;

    public OverlayHarness() => Self = NewIdentity();

    public FakeTimeProvider Time { get; } = new(TestDescriptors.Epoch);
    public NodeIdentity Self { get; }
    public DateTimeOffset Now => Time.GetUtcNow();

    public void Dispose()
    {
        foreach (var identity in _identities) identity.Dispose();
    }

    public static Block K(long kbps) => Block.FromKbps(kbps);

    /// <summary>The descriptors the overlay would hand the market as candidates.</summary>
    public static IReadOnlyList<Descriptor> Candidates(Quid.Overlay.Overlay overlay, Block wanted, Block? canGrant)
    {
        var candidates = new List<(NodeId Id, Descriptor Descriptor)>();
        overlay.Candidates(wanted, canGrant, candidates);
        return [.. candidates.Select(c => c.Descriptor)];
    }

    public NodeIdentity NewIdentity()
    {
        var identity = NodeIdentity.Generate(out _);
        _identities.Add(identity);
        return identity;
    }

    public IPEndPoint NextAddress() => new(IPAddress.Loopback, ++_port);

    public Quid.Overlay.Overlay NewOverlay(OverlayOptions? options = null, NodeIdentity? identity = null, int seed = 8, Func<NodeId, TimeSpan>? linkBacklog = null) =>
        new(identity ?? Self, Time, (options ?? new OverlayOptions()) with { Random = new Random(seed) }, linkBacklog);

    /// <summary>A descriptor published <paramref name="age"/> ago; by default it offers 512, requests 256, has all 512 free and an address.</summary>
    public Descriptor DescriptorOf(
        NodeIdentity identity,
        TimeSpan? age = null,
        TimeSpan? lifetime = null,
        bool address = true,
        NodeRoles roles = NodeRoles.None,
        long offer = 512,
        long? request = 256,
        IReadOnlyList<Block>? free = null,
        IReadOnlyList<NodeId>? partners = null) =>
        TestDescriptors.Make(
            identity, K(offer), request is { } r ? K(r) : null,
            free: free,
            published: Now - (age ?? TimeSpan.Zero),
            lifetime: lifetime ?? TimeSpan.FromHours(1),
            address: address ? NextAddress() : null,
            partners: partners,
            roles: roles);

    /// <summary>Links a new neighbour (we dialed it) that sends its descriptor; the overlay must accept it.</summary>
    public Peer Link(
        Quid.Overlay.Overlay overlay,
        NodeRoles roles = NodeRoles.None,
        long offer = 512,
        long? request = 256,
        IReadOnlyList<Block>? free = null,
        NodeIdentity? identity = null)
    {
        identity ??= NewIdentity();
        var descriptor = DescriptorOf(identity, roles: roles, offer: offer, request: request, free: free);
        overlay.LinkUp(identity.Id, inbound: false, descriptor.Address!);
        var actions = overlay.Receive(identity.Id, new DescriptorMessage(descriptor));
        Assert.Empty(actions.OfType<MessageRejected>());
        Assert.Same(descriptor, overlay.Find(identity.Id));
        return new Peer(identity, descriptor);
    }

    /// <summary>A neighbour that calls itself an ultrapeer and has nothing free: it never matches a query.</summary>
    public Peer LinkUltrapeer(Quid.Overlay.Overlay overlay) => Link(overlay, NodeRoles.Ultrapeer, free: []);

    /// <summary>Options under which a node with a published, addressed, large enough descriptor may promote at once.</summary>
    public static OverlayOptions Capable(OverlayOptions? options = null) =>
        (options ?? new OverlayOptions()) with { UltrapeerMinUptime = TimeSpan.Zero };

    /// <summary>Publishes a descriptor fit for an ultrapeer (address, 512 offered, 512 free).</summary>
    public Descriptor PublishCapable(Quid.Overlay.Overlay overlay, NodeIdentity? identity = null, long offer = 512, IReadOnlyList<Block>? free = null)
    {
        var own = DescriptorOf(identity ?? Self, offer: offer, free: free);
        overlay.Publish(own);
        return own;
    }

    /// <summary>
    /// A node that knows no ultrapeer and is capable: ticking past four promotion delays makes
    /// it one (see ElectRole). The clock moves by that much.
    /// </summary>
    public Quid.Overlay.Overlay NewUltrapeer(OverlayOptions? options = null, NodeIdentity? identity = null, int seed = 8, Func<NodeId, TimeSpan>? linkBacklog = null)
    {
        var overlay = NewOverlay(Capable(options), identity, seed, linkBacklog);
        PublishCapable(overlay, identity);
        var opts = Capable(options);
        Assert.Empty(overlay.Tick().OfType<RoleChanged>());
        Time.Advance(opts.PromotionDelay * 4 + TimeSpan.FromSeconds(1));
        Assert.Equal(NodeRoles.Ultrapeer, Assert.Single(overlay.Tick().OfType<RoleChanged>()).Roles);
        Assert.Equal(OverlayRole.Ultrapeer, overlay.Role);
        return overlay;
    }

    public static QueryMessage Query(byte ttl = 4, long wanted = 256, long? canGrant = 256, byte maxResults = 8, QueryId? id = null) =>
        new(id ?? QueryId.New(), ttl, 0, K(wanted), canGrant is { } c ? K(c) : null, maxResults);

    /// <summary>The messages of one type the actions send, with their recipients.</summary>
    public static (NodeId To, T Message)[] Sent<T>(IEnumerable<OverlayAction> actions) where T : ControlMessage =>
        [.. actions.OfType<SendOverlayMessage>().Where(s => s.Message is T).Select(s => (s.To, (T)s.Message))];

    public static NodeId[] Dialed(IEnumerable<OverlayAction> actions) =>
        [.. actions.OfType<DialPeer>().Select(d => d.Id ?? throw new InvalidOperationException("a dial without an id"))];
}
