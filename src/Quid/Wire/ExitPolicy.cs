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

    private static IEnumerable<string> NonPublicNetworks() =>
    [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/3",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    ];

    public bool Allows(IPAddress address, int port)
    {
        // An IPv4 address written as IPv6 (::ffff:127.0.0.1) must meet the IPv4 rules.
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        foreach (var rule in Rules)
            if (rule.Matches(address, port)) return rule.Action == ExitAction.Accept;
        return false;
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
