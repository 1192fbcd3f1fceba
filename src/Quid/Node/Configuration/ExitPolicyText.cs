using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Quid.Wire;

namespace Quid.Node.Configuration;

/// <summary>
/// Exit policies written the way Tor's are: rules separated by commas, the first that matches
/// decides, and no match means reject.
/// <code>accept *:80, accept *:443, reject 10.0.0.0/8:*, reject private:*, accept [2001:db8::]/32:1024-65535</code>
/// An address is <c>*</c> (any), <c>private</c> (loopback, the LAN and every other range an exit
/// must not be tricked into reaching), an IPv4 address or network, or an IPv6 one in brackets;
/// ports are <c>*</c>, one port or a range, and may be left out to mean any.
/// </summary>
public static class ExitPolicyText
{
    /// <summary>The ranges the default policy refuses, taken from it so the two never disagree.</summary>
    private static readonly IReadOnlyList<ExitRule> Private =
        [.. ExitPolicy.Default.Rules.Where(r => r.Action == ExitAction.Reject && r.Network is not null)];

    public static ExitPolicy Parse(string text)
    {
        var rules = new List<ExitRule>();
        foreach (var part in text.Split([',', '\n', ';'], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            rules.AddRange(ParseRule(part));
        if (rules.Count == 0) throw new FormatException("the policy has no rules; write 'reject *:*' for a node that is never an exit");
        if (rules.Count > ExitPolicy.MaxRules)
            throw new FormatException($"the policy has {rules.Count} rules, at most {ExitPolicy.MaxRules} fit in a descriptor ('private' counts as {Private.Count})");
        return new ExitPolicy(rules);
    }

    /// <summary>The policy as <see cref="Parse"/> reads it, with the private ranges folded back into <c>private</c>.</summary>
    public static string Format(ExitPolicy policy)
    {
        var parts = new List<string>();
        var rules = policy.Rules;
        for (int i = 0; i < rules.Count; i++)
        {
            if (IsPrivateRun(rules, i))
            {
                var first = rules[i];
                parts.Add($"{(first.Action == ExitAction.Accept ? "accept" : "reject")} private:{Ports(first)}");
                i += Private.Count - 1;
                continue;
            }
            parts.Add(rules[i].ToString());
        }
        return string.Join(", ", parts);
    }

    private static bool IsPrivateRun(IReadOnlyList<ExitRule> rules, int start)
    {
        if (start + Private.Count > rules.Count) return false;
        var first = rules[start];
        for (int j = 0; j < Private.Count; j++)
        {
            var rule = rules[start + j];
            if (rule.Action != first.Action || rule.PortLow != first.PortLow || rule.PortHigh != first.PortHigh
                || rule.PrefixLength != Private[j].PrefixLength || !Equals(rule.Network, Private[j].Network))
                return false;
        }
        return true;
    }

    private static string Ports(ExitRule rule) =>
        rule.PortLow == 0 && rule.PortHigh == ushort.MaxValue ? "*" : rule.PortLow == rule.PortHigh ? $"{rule.PortLow}" : $"{rule.PortLow}-{rule.PortHigh}";

    private static IEnumerable<ExitRule> ParseRule(string text)
    {
        var words = text.Split(' ', 2, StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var action = words[0].ToLowerInvariant() switch
        {
            "accept" => ExitAction.Accept,
            "reject" => ExitAction.Reject,
            _ => throw new FormatException($"'{text}' does not start with accept or reject"),
        };
        if (words.Length < 2) throw new FormatException($"'{text}' names no address: write it like '{words[0]} *:80'");
        string target = words[1].Replace(" ", "", StringComparison.Ordinal);

        string address, ports;
        if (target.StartsWith('['))
        {
            int close = target.IndexOf(']', StringComparison.Ordinal);
            if (close < 0) throw new FormatException($"'{text}' opens an IPv6 address with [ but never closes it");
            int colon = target.IndexOf(':', close);
            (address, ports) = colon < 0 ? (target, "*") : (target[..colon], target[(colon + 1)..]);
        }
        else
        {
            int colon = target.LastIndexOf(':');
            (address, ports) = colon < 0 ? (target, "*") : (target[..colon], target[(colon + 1)..]);
        }
        var (low, high) = ParsePorts(ports, text);

        if (address == "*") return [new ExitRule(action, null, 0, low, high)];
        if (address.Equals("private", StringComparison.OrdinalIgnoreCase))
            return Private.Select(p => p with { Action = action, PortLow = low, PortHigh = high });
        return [ParseNetwork(address, action, low, high, text)];
    }

    private static ExitRule ParseNetwork(string address, ExitAction action, ushort low, ushort high, string text)
    {
        string host = address, prefix = "";
        int slash = address.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0) (host, prefix) = (address[..slash], address[(slash + 1)..]);
        bool bracketed = host.StartsWith('[') && host.EndsWith(']');
        if (bracketed) host = host[1..^1];
        if (!IPAddress.TryParse(host, out var ip) || (ip.AddressFamily == AddressFamily.InterNetworkV6) != bracketed)
            throw new FormatException($"'{address}' in '{text}' is not an address: use *, private, 192.0.2.0/24 or [2001:db8::]/32");
        int maxBits = ip.AddressFamily == AddressFamily.InterNetworkV6 ? 128 : 32;
        int bits = maxBits;
        if (slash >= 0 && (!int.TryParse(prefix, NumberStyles.None, CultureInfo.InvariantCulture, out bits) || bits > maxBits))
            throw new FormatException($"'/{prefix}' in '{text}' is not a prefix length of 0 to {maxBits}");
        return new ExitRule(action, ip, (byte)bits, low, high);
    }

    private static (ushort Low, ushort High) ParsePorts(string ports, string text)
    {
        if (ports == "*") return (0, ushort.MaxValue);
        var range = ports.Split('-', 2);
        if (!ushort.TryParse(range[0], NumberStyles.None, CultureInfo.InvariantCulture, out ushort low)
            || !ushort.TryParse(range.Length == 2 ? range[1] : range[0], NumberStyles.None, CultureInfo.InvariantCulture, out ushort high) || low > high)
            throw new FormatException($"'{ports}' in '{text}' is not a port: use *, 443 or 1024-65535");
        return (low, high);
    }
}
