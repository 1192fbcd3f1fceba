using System.Net;
using Quid.Circuits;
using Quid.Exchange;
using Quid.Links;
using Quid.Overlay;
using Quid.Proxy;
using Quid.Wire;

namespace Quid.Node;

/// <summary>Everything a node needs to start. The defaults make a working node with no configuration at all.</summary>
public sealed record NodeOptions
{
    public const int DefaultLinkPort = 7843;
    public const int DefaultSocksPort = 1080;
    public const int DefaultHttpProxyPort = 8118;

    public required string DataDirectory { get; init; }
    /// <summary>Move the data directory's identity and ledger into its archive folder and start as a new node (<c>quid run --new-identity</c>).</summary>
    public bool NewIdentity { get; init; }
    /// <summary>Where other nodes reach us.</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Any, DefaultLinkPort);
    /// <summary>The address put in our descriptor; by default the listen address when it is a specific one.</summary>
    public IPEndPoint? Advertise { get; init; }
    /// <summary>Whether to ask the gateway (NAT-PMP / PCP) for a port and advertise it; auto asks only where it can matter.</summary>
    public PortMappingMode PortMapping { get; init; } = PortMappingMode.Auto;
    /// <summary>The gateway's NAT-PMP / PCP port to ask; by default the default route's gateway, port 5351. Given, it is asked even by a node on loopback (tests' fake gateways).</summary>
    public IPEndPoint? Gateway { get; init; }
    /// <summary>The local SOCKS proxy, loopback only; null for a node that only relays.</summary>
    public IPEndPoint? Socks { get; init; } = new(IPAddress.Loopback, DefaultSocksPort);
    /// <summary>The local HTTP proxy (CONNECT and plain http:// requests), loopback only; null for none.</summary>
    public IPEndPoint? HttpProxy { get; init; } = new(IPAddress.Loopback, DefaultHttpProxyPort);
    public Block Offer { get; init; } = Block.FromKbps(4096);
    /// <summary>The block asked for in return; null for a donor.</summary>
    public Block? Request { get; init; } = Block.FromKbps(4096);
    /// <summary>Nodes to join the network through, as host:port.</summary>
    public IReadOnlyList<string> Peers { get; init; } = [];
    public ExitPolicy ExitPolicy { get; init; } = ExitPolicy.Default;
    /// <summary>Source address for links we dial and for exit connections; by default the listen address when it is a specific one.</summary>
    public IPAddress? OutboundBindAddress { get; init; }
    /// <summary>How this node resolves names for streams that exit here; the system resolver by default.</summary>
    public Resolver? ExitResolver { get; init; }
    /// <summary>
    /// Friends-only mode when not empty: each entry is a node id, optionally with where to reach
    /// it (<c>id@host:port</c>). The node links, searches and trades only with these.
    /// </summary>
    public IReadOnlyList<string> Friends { get; init; } = [];
    /// <summary>How often the node does its upkeep: links, matching, descriptor freshness.</summary>
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>How often a node whose request is unmet floods a search for offers (the seed's "regular time intervals").</summary>
    public TimeSpan SearchInterval { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan DescriptorLifetime { get; init; } = TimeSpan.FromHours(1);
    /// <summary>How long a stopping node lets open streams finish before it ends its agreements and closes its links.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>How often the ledger's counters reach the database; a kill -9 loses at most this much counting.</summary>
    public TimeSpan LedgerFlushInterval { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Hops per circuit, 1 to 8: 1 is the seed's base design (a partner is the exit); the default 3 means no single node sees both you and your destination.</summary>
    public int Hops { get; init; } = 3;
    public LinkOptions Links { get; init; } = new();
    public OverlayOptions Overlay { get; init; } = new();
    public MarketOptions Market { get; init; } = new();
    public CircuitOptions Circuits { get; init; } = new();
    public PathOptions Paths { get; init; } = new();
    /// <summary>The exit cache (seed 000's second addition); null, the default, for none.</summary>
    public Cache.CacheOptions? Cache { get; init; }
    /// <summary>Disk granted to partners, in bytes (whole MiB), paid to them as credits on this node; 0 for none.</summary>
    public long OfferDisk { get; init; }
    /// <summary>The disk asked of each partner that offers some; null for none.</summary>
    public DiskBlock? RequestDisk { get; init; }
    /// <summary>CPU granted to partners, in Gfuel a day, for programs they host here (docs/HOSTING.md), paid to them as credits on this node; 0 for none.</summary>
    public long OfferCpuGfuel { get; init; }
    /// <summary>The CPU asked of each partner that offers some; null for none.</summary>
    public CpuBlock? RequestCpu { get; init; }
    /// <summary>How often credits owed by partners are asked for (PROTOCOL §10.3).</summary>
    public TimeSpan CreditRequestInterval { get; init; } = TimeSpan.FromMinutes(1);
    /// <summary>Desk streams served at once; one more is closed as it begins (PROTOCOL §10.4).</summary>
    public int DeskStreams { get; init; } = 32;
    /// <summary>Credits a second the desk checks or evaluates, over all its streams; requests beyond it wait (PROTOCOL §10.4).</summary>
    public double DeskCreditsPerSecond { get; init; } = 500;
    /// <summary>How often the copies of our stored files are audited (PROTOCOL §10.7).</summary>
    public TimeSpan StorageAuditInterval { get; init; } = TimeSpan.FromHours(1);
    /// <summary>Limits of the SOCKS and HTTP proxies, each on its own.</summary>
    public ProxyOptions Proxies { get; init; } = new();

    internal IPAddress? SpecificListenAddress =>
        Listen.Address.Equals(IPAddress.Any) || Listen.Address.Equals(IPAddress.IPv6Any) ? null : Listen.Address;
}
