using System.Net;
using System.Net.Sockets;

namespace Quid.Wire;

public enum ExitAction : byte { Reject = 0, Accept = 1 }

/// <summary>One line of an exit policy: accept or reject a network (null: any address) and a port range.</summary>
public readonly record struct ExitRule(ExitAction Action, IPAddress? Network, byte PrefixLength, ushort PortLow, ushort PortHigh)
{
    public bool Matches(IPAddress address, int port)
    {
        if (port < PortLow || port > PortHigh) return false;
        if (Network is null) return true;
        if (Network.AddressFamily != address.AddressFamily) return false;
        Span<byte> net = stackalloc byte[16];
        Span<byte> addr = stackalloc byte[16];
        Network.TryWriteBytes(net, out int length);
        address.TryWriteBytes(addr, out _);
        int bits = PrefixLength;
        for (int i = 0; i < length && bits > 0; i++, bits -= 8)
        {
            int mask = bits >= 8 ? 0xFF : (0xFF << (8 - bits)) & 0xFF;
            if ((net[i] & mask) != (addr[i] & mask)) return false;
        }
        return true;
    }

    public override string ToString()
    {
        string action = Action == ExitAction.Accept ? "accept" : "reject";
        string network = Network is null ? "*"
            : Network.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{Network}]/{PrefixLength}" : $"{Network}/{PrefixLength}";
        string ports = PortLow == 0 && PortHigh == ushort.MaxValue ? "*" : PortLow == PortHigh ? $"{PortLow}" : $"{PortLow}-{PortHigh}";
        return $"{action} {network}:{ports}";
    }
}

/// <summary>
/// Which destinations an exit connects to: rules in order, the first that matches decides, and
/// no match means reject. The exit checks it after resolving a name, so a name that resolves to
/// a private address is refused like the address itself.
/// </summary>
public sealed class ExitPolicy
{
    public const int MaxRules = 64;

    public IReadOnlyList<ExitRule> Rules { get; }

    public ExitPolicy(IReadOnlyList<ExitRule> rules)
    {
        if (rules.Count > MaxRules) throw new ArgumentException($"An exit policy has at most {MaxRules} rules.", nameof(rules));
        Rules = rules;
    }

    /// <summary>
    /// Accepts the public internet and refuses what an exit must never be tricked into reaching:
    /// its own host, its LAN and other non-routable ranges.
    /// </summary>
    public static ExitPolicy Default { get; } = new([.. NonPublicNetworks().Select(n => Rule(ExitAction.Reject, n)), AcceptAnything]);

    /// <summary>For test networks on one machine, where every destination is on loopback.</summary>
    public static ExitPolicy AcceptAll { get; } = new([AcceptAnything]);

    public static ExitPolicy RejectAll { get; } = new([new ExitRule(ExitAction.Reject, null, 0, 0, ushort.MaxValue)]);

    private static ExitRule AcceptAnything => new(ExitAction.Accept, null, 0, 0, ushort.MaxValue);

    private static ExitRule Rule(ExitAction action, string cidr)
    {
        var parts = cidr.Split('/');
        return new ExitRule(action, IPAddress.Parse(parts[0]), byte.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), 0, ushort.MaxValue);
    }

    /// <remarks>
    /// ::/96 takes the unspecified and loopback addresses with the deprecated IPv4-compatible form
    /// (::127.0.0.1). Tor refuses all of ::/8, which would take the well-known NAT64 prefix
    /// 64:ff9b::/96 with it and leave an IPv6-only exit unable to reach IPv4 sites; instead the
    /// IPv4 address such a form carries must pass too (see <see cref="Allows"/>). 64:ff9b:1::/48 is
    /// NAT64 inside one operator's own network (RFC 8215).
    /// </remarks>
    private static IEnumerable<string> NonPublicNetworks() =>
    [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/3",
        "::/96", "64:ff9b:1::/48", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    ];

    /// <summary>
    /// Whether a stream may leave for <paramref name="address"/>:<paramref name="port"/>. An IPv6
    /// address that carries an IPv4 one must pass as that IPv4 address too, since a translator or
    /// tunnel on the exit's network may deliver it there.
    /// </summary>
    public bool Allows(IPAddress address, int port)
    {
        // An IPv4 address written as IPv6 (::ffff:127.0.0.1) is that IPv4 address on the socket.
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (!FirstMatchAccepts(address, port)) return false;
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return true;
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        foreach (var carried in CarriedIPv4(bytes))
            if (!FirstMatchAccepts(carried, port)) return false;
        return true;
    }

    private bool FirstMatchAccepts(IPAddress address, int port)
    {
        foreach (var rule in Rules)
            if (rule.Matches(address, port)) return rule.Action == ExitAction.Accept;
        return false;
    }

    /// <summary>
    /// The IPv4 addresses an IPv6 address carries: IPv4-compatible ::a.b.c.d and IPv4-translated
    /// ::ffff:0:a.b.c.d, NAT64's 64:ff9b::a.b.c.d (RFC 6052), 6to4's 2002:aabb:ccdd::/48
    /// (RFC 3056) and Teredo's 2001:0:server::~client (RFC 4380).
    /// </summary>
    private static List<IPAddress> CarriedIPv4(ReadOnlySpan<byte> v6)
    {
        var carried = new List<IPAddress>(2);
        bool zeroThrough7 = v6[..8].IndexOfAnyExcept((byte)0) < 0;
        // :: and ::1 are the unspecified and loopback addresses, not IPv4-compatible ones.
        bool unspecifiedOrLoopback = v6[..15].IndexOfAnyExcept((byte)0) < 0 && v6[15] <= 1;
        if (zeroThrough7 && !unspecifiedOrLoopback && (v6[8..12].IndexOfAnyExcept((byte)0) < 0 || v6[8..12].SequenceEqual((ReadOnlySpan<byte>)[0xff, 0xff, 0, 0])))
            carried.Add(new IPAddress(v6[12..]));
        else if (v6[..12].SequenceEqual((ReadOnlySpan<byte>)[0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0]))
            carried.Add(new IPAddress(v6[12..]));
        else if (v6[0] == 0x20 && v6[1] == 0x02)
            carried.Add(new IPAddress(v6[2..6]));
        else if (v6[..4].SequenceEqual((ReadOnlySpan<byte>)[0x20, 0x01, 0, 0]))
        {
            carried.Add(new IPAddress(v6[4..8]));
            Span<byte> client = stackalloc byte[4];
            for (int i = 0; i < 4; i++) client[i] = (byte)~v6[12 + i];
            carried.Add(new IPAddress(client));
        }
        return carried;
    }

    /// <summary>
    /// Whether some address could be accepted on this port: what a client can know before the
    /// exit resolves the name.
    /// </summary>
    public bool MayAllowPort(int port)
    {
        foreach (var rule in Rules)
        {
            if (port < rule.PortLow || port > rule.PortHigh) continue;
            // A rule for every address decides the port; rules after it are never reached.
            if (rule.Network is null) return rule.Action == ExitAction.Accept;
            if (rule.Action == ExitAction.Accept) return true;
        }
        return false;
    }

    public override string ToString() => string.Join(", ", Rules);

    public int EncodedLength => 1 + Rules.Sum(r => 7 + (r.Network?.AddressFamily == AddressFamily.InterNetworkV6 ? 16 : r.Network is null ? 0 : 4));

    /// <summary>u8 count, then per rule: u8 action, u8 family (0 any, 4, 6), address, u8 prefix, u16 low port, u16 high port.</summary>
    public void Encode(ref WireWriter writer)
    {
        writer.WriteByte((byte)Rules.Count);
        foreach (var rule in Rules)
        {
            writer.WriteByte((byte)rule.Action);
            if (rule.Network is null)
            {
                writer.WriteByte(0);
            }
            else
            {
                bool v6 = rule.Network.AddressFamily == AddressFamily.InterNetworkV6;
                writer.WriteByte(v6 ? (byte)6 : (byte)4);
                rule.Network.TryWriteBytes(writer.Reserve(v6 ? 16 : 4), out _);
            }
            writer.WriteByte(rule.PrefixLength);
            writer.WriteUInt16(rule.PortLow);
            writer.WriteUInt16(rule.PortHigh);
        }
    }

    public static ExitPolicy Decode(ref WireReader reader)
    {
        int count = reader.ReadByte();
        if (count > MaxRules) throw new WireException(WireError.Oversized, $"Exit policy has {count} rules, at most {MaxRules} allowed.");
        var rules = new ExitRule[count];
        for (int i = 0; i < count; i++)
        {
            byte action = reader.ReadByte();
            if (action > 1) throw new WireException(WireError.BadField, $"Unknown exit action {action}.");
            byte family = reader.ReadByte();
            IPAddress? network = family switch
            {
                0 => null,
                4 => new IPAddress(reader.ReadBytes(4)),
                6 => new IPAddress(reader.ReadBytes(16)),
                _ => throw new WireException(WireError.BadField, $"Unknown address family {family} in exit policy."),
            };
            byte prefix = reader.ReadByte();
            if (prefix > (family == 6 ? 128 : family == 4 ? 32 : 0)) throw new WireException(WireError.BadField, $"Prefix length {prefix} is too long.");
            ushort low = reader.ReadUInt16(), high = reader.ReadUInt16();
            if (low > high) throw new WireException(WireError.BadField, $"Port range {low}-{high} is empty.");
            rules[i] = new ExitRule((ExitAction)action, network, prefix, low, high);
        }
        return new ExitPolicy(rules);
    }
}
