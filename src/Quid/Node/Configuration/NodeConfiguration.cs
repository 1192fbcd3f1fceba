using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Quid.Crypto;
using Quid.Overlay;
using Quid.Wire;
using Tomlyn;
using Tomlyn.Model;
using Tomlyn.Serialization;

namespace Quid.Node.Configuration;

/// <summary>
/// Reads a node's configuration from its three sources, each overriding the one before: the file
/// <c>quid.toml</c> in the data directory, <c>QUID_…</c> environment variables, and command-line
/// flags. Every value is checked before the node starts; all the problems are reported at once,
/// each naming its key, where it came from and how to fix it. With no configuration at all the
/// defaults make a working node.
/// </summary>
public static class NodeConfiguration
{
    public const string FileName = "quid.toml";
    public const int DefaultControlPort = 9051;

    public static IReadOnlyList<Setting> Settings { get; } =
    [
        new("data-dir", SettingKind.Value, "--data-dir", "$XDG_DATA_HOME/quid (~/.local/share/quid)",
            "Where the node keeps its identity, ledger and quid.toml; created owner-only (an existing directory keeps its mode).") { InFile = false },
        new("listen", SettingKind.Value, "--listen", $"0.0.0.0:{NodeOptions.DefaultLinkPort}", "Address and port for links from other nodes."),
        new("advertise", SettingKind.Value, "--advertise", "the listen address, if specific",
            "Address and port other nodes should dial, put in your signed descriptor."),
        new("port-mapping", SettingKind.Value, "--port-mapping", "auto",
            "auto: behind a NAT, ask the gateway for a port (PCP or NAT-PMP) and advertise it, when no advertise is set and the listen address is a wildcard or private; off: never."),
        new("socks", SettingKind.Value, "--socks", $"127.0.0.1:{NodeOptions.DefaultSocksPort}", "Loopback address and port of the SOCKS4a/5 proxy, or off."),
        new("http-proxy", SettingKind.Value, "--http-proxy", $"127.0.0.1:{NodeOptions.DefaultHttpProxyPort}",
            "Loopback address and port of the HTTP proxy (CONNECT and http:// requests), or off."),
        new("proxy-max-connections", SettingKind.Value, "--proxy-max-connections", $"{Proxy.ProxyOptions.DefaultMaxConnections}",
            "Connections the SOCKS proxy, and the HTTP proxy, each serve at once; more are closed at once."),
        new("control", SettingKind.Value, "--control", $"127.0.0.1:{DefaultControlPort}",
            "Loopback address and port of the control API, dashboard and metrics, or off."),
        new("offer", SettingKind.Value, "--offer", "4096", "Bandwidth you give, in kbps: a block of 16·2^k (16, 32, 64 …)."),
        new("request", SettingKind.Value, "--request", "4096",
            "Bandwidth you ask for in return, in kbps (16·2^k), or 0 to donate; with more than one hop it is asked of four partners, a quarter each."),
        new("hops", SettingKind.Value, "--hops", "3",
            "Hops per circuit, 1 to 8: 1 is fastest (your partner is the exit); 3 means no single node sees both you and your destination."),
        new("peers", SettingKind.List, "--peer", "none",
            "Nodes to join the network through, as host:port (repeat the flag); later starts also use the peers they remember."),
        new("friends", SettingKind.List, "--friend", "none",
            "Friends-only mode: link, search and trade only with these nodes, as id or id@host:port (repeat the flag)."),
        new("no-ultrapeer", SettingKind.Switch, "--no-ultrapeer", "false", "Never serve as an ultrapeer, whatever this node's capacity and uptime."),
        new("no-probes", SettingKind.Switch, "--no-probes", "false",
            "Never probe partners' delivery: only for test networks on one machine, whose grants are beyond what it can carry."),
        new("exit-policy", SettingKind.Value, "--exit-policy", ExitPolicyText.Format(ExitPolicy.Default),
            "Where streams may leave the network here, in Tor's syntax: 'accept *:80, accept *:443, reject *:*'.")
        {
            Shorthands =
            [
                new("--no-exit", ExitPolicyText.Format(ExitPolicy.RejectAll), "Carry partners' traffic, but never let it leave the network here."),
                new("--exit-allow-private", ExitPolicyText.Format(ExitPolicy.AcceptAll),
                    "Let streams exit to private and loopback addresses too: only for test networks on one machine."),
            ],
        },
        new("exit-sockets", SettingKind.Value, "--exit-sockets", "auto",
            "Most sockets streams leaving the network here may hold at once, shared fairly among partners; auto derives it from the open-files limit."),
        new("offer-disk", SettingKind.Value, "--offer-disk", "off",
            "Disk you give partners to store in, such as 1GiB, paid to them as credits on this node ('quid credits'), or off."),
        new("request-disk", SettingKind.Value, "--request-disk", "off",
            "Disk you ask each partner that offers some, a power of two such as 256MiB, paid to you as credits on that partner, or off."),
        new("offer-cpu", SettingKind.Value, "--offer-cpu", "off",
            "CPU you give partners for programs they host here, as fuel a day such as 1Tfuel (a Gfuel is about a second of one core), paid to them as credits on this node, or off."),
        new("request-cpu", SettingKind.Value, "--request-cpu", "off",
            "CPU you ask each partner that offers some, a power of two of fuel a day such as 64Gfuel, paid to you as credits on that partner, or off."),
        new("cache", SettingKind.Value, "--cache", "off",
            $"Keep copies of plaintext HTTP responses that exit here, within this much disk (such as 2GiB; at least {Cache.CacheSize.Format(Cache.CacheStore.MinimumQuota)}), or off. 'quid cache' shows them."),
        new("cache-ports", SettingKind.List, "--cache-port", "80",
            "Destination ports whose streams the exit cache reads as plaintext HTTP; streams to other ports pass untouched."),
        new("log-level", SettingKind.Value, "--log-level", nameof(LogLevel.Information),
            "Trace, Debug, Information, Warning or Error; Debug shows circuits and streams."),
        new("log-format", SettingKind.Value, "--log-format", "text", "text, or json for one JSON object per line."),
    ];

    /// <summary>The data directory under the XDG base directory rules: $XDG_DATA_HOME/quid, or ~/.local/share/quid.</summary>
    public static string DefaultDataDirectory(IReadOnlyDictionary<string, string> environment)
    {
        string root = environment.TryGetValue("XDG_DATA_HOME", out var xdg) && Path.IsPathRooted(xdg) ? xdg
            : Path.Combine(environment.TryGetValue("HOME", out var home) && home.Length > 0 ? home : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        return Path.Combine(root, "quid");
    }

    /// <summary>This process's environment, as <see cref="Load"/> takes it.</summary>
    public static IReadOnlyDictionary<string, string> ProcessEnvironment() =>
        Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => e.Value as string ?? "", StringComparer.Ordinal);

    /// <summary>Reads, merges and checks the configuration; throws <see cref="ConfigurationException"/> listing every problem.</summary>
    public static NodeSettings Load(IReadOnlyList<FlagValue> flags, IReadOnlyDictionary<string, string> environment)
    {
        var reader = new SourceReader(flags, environment);
        string dataDirectory = reader.Read(Setting("data-dir"), raw => Path.GetFullPath(Single(raw)), DefaultDataDirectory(environment));
        string file = Path.Combine(dataDirectory, FileName);
        reader.LoadFile(file);

        var listen = reader.Read(Setting("listen"), raw => ParseEndPoint(Single(raw), "0.0.0.0:7843 or [::]:7843"), new IPEndPoint(IPAddress.Any, NodeOptions.DefaultLinkPort));
        var advertise = reader.Read(Setting("advertise"), raw => ParseAdvertise(Single(raw)), null);
        var portMapping = reader.Read(Setting("port-mapping"), raw => ParsePortMapping(Single(raw)), PortMappingMode.Auto);
        var socks = reader.Read(Setting("socks"), raw => ParseLoopback(Single(raw), NodeOptions.DefaultSocksPort), new IPEndPoint(IPAddress.Loopback, NodeOptions.DefaultSocksPort));
        var httpProxy = reader.Read(Setting("http-proxy"), raw => ParseLoopback(Single(raw), NodeOptions.DefaultHttpProxyPort), new IPEndPoint(IPAddress.Loopback, NodeOptions.DefaultHttpProxyPort));
        int proxyMaxConnections = reader.Read(Setting("proxy-max-connections"), raw => ParseMaxConnections(Single(raw)), Proxy.ProxyOptions.DefaultMaxConnections);
        var control = reader.Read(Setting("control"), raw => ParseLoopback(Single(raw), DefaultControlPort), new IPEndPoint(IPAddress.Loopback, DefaultControlPort));
        var offer = reader.Read(Setting("offer"), raw => ParseBlock(Single(raw), allowNone: false), Block.FromKbps(4096));
        var request = reader.Read(Setting("request"), raw => ParseBlock(Single(raw), allowNone: true), Block.FromKbps(4096));
        int hops = reader.Read(Setting("hops"), raw => ParseHops(Single(raw)), 3);
        var peers = reader.Read(Setting("peers"), raw => ParseList(raw, ParsePeer), []);
        var friends = reader.Read(Setting("friends"), raw => ParseList(raw, ParseFriend), []);
        bool noUltrapeer = reader.Read(Setting("no-ultrapeer"), raw => ParseSwitch(Single(raw)), false);
        bool noProbes = reader.Read(Setting("no-probes"), raw => ParseSwitch(Single(raw)), false);
        var exitPolicy = reader.Read(Setting("exit-policy"), raw => ExitPolicyText.Parse(string.Join(", ", raw.Items)), ExitPolicy.Default);
        int? exitSockets = reader.Read(Setting("exit-sockets"), raw => ParseExitSockets(Single(raw)), null);
        long offerDisk = reader.Read(Setting("offer-disk"), raw => ParseOfferDisk(Single(raw)), 0L);
        var requestDisk = reader.Read(Setting("request-disk"), raw => ParseRequestDisk(Single(raw)), null);
        long offerCpu = reader.Read(Setting("offer-cpu"), raw => ParseOfferCpu(Single(raw)), 0L);
        var requestCpu = reader.Read(Setting("request-cpu"), raw => ParseRequestCpu(Single(raw)), null);
        long? cache = reader.Read(Setting("cache"), raw => ParseCache(Single(raw)), null);
        var cachePorts = reader.Read(Setting("cache-ports"), raw => raw.Items.Select(ParsePort).ToHashSet(), [80]);
        var logLevel = reader.Read(Setting("log-level"), raw => ParseLogLevel(Single(raw)), LogLevel.Information);
        var logFormat = reader.Read(Setting("log-format"), raw => ParseLogFormat(Single(raw)), LogFormat.Text);
        reader.CheckFileKeys();
        if (reader.Errors.Count > 0) throw new ConfigurationException(reader.Errors);

        var node = new NodeOptions
        {
            DataDirectory = dataDirectory,
            Listen = listen,
            Advertise = advertise,
            PortMapping = portMapping,
            Socks = socks,
            HttpProxy = httpProxy,
            Proxies = new Proxy.ProxyOptions { MaxConnections = proxyMaxConnections },
            Offer = offer!.Value,
            Request = request,
            Hops = hops,
            Peers = peers,
            Friends = friends,
            Overlay = new OverlayOptions { UltrapeerCapable = !noUltrapeer },
            Market = new Exchange.MarketOptions { ProbePartners = !noProbes },
            ExitPolicy = exitPolicy,
            Circuits = new Circuits.CircuitOptions { ExitSocketBudget = exitSockets },
            Cache = cache is { } quota ? new Cache.CacheOptions { Quota = quota, Ports = cachePorts } : null,
            OfferDisk = offerDisk,
            RequestDisk = requestDisk,
            OfferCpuGfuel = offerCpu,
            RequestCpu = requestCpu,
        };
        var shown = new Dictionary<string, string>
        {
            ["data-dir"] = dataDirectory,
            ["listen"] = listen.ToString(),
            ["advertise"] = advertise?.ToString() ?? "the listen address, if specific",
            ["port-mapping"] = portMapping.ToString().ToLowerInvariant(),
            ["socks"] = socks?.ToString() ?? "off",
            ["http-proxy"] = httpProxy?.ToString() ?? "off",
            ["proxy-max-connections"] = $"{proxyMaxConnections}",
            ["control"] = control?.ToString() ?? "off",
            ["offer"] = $"{offer.Value.Kbps}",
            ["request"] = request is { } r ? $"{r.Kbps}" : "0 (donor)",
            ["hops"] = $"{hops}",
            ["peers"] = peers.Count == 0 ? "none" : string.Join(", ", peers),
            ["friends"] = friends.Count == 0 ? "none" : string.Join(", ", friends),
            ["no-ultrapeer"] = noUltrapeer ? "true" : "false",
            ["no-probes"] = noProbes ? "true" : "false",
            ["exit-policy"] = ExitPolicyText.Format(exitPolicy),
            ["exit-sockets"] = exitSockets?.ToString(CultureInfo.InvariantCulture) ?? "auto",
            ["offer-disk"] = offerDisk > 0 ? Cache.CacheSize.Format(offerDisk) : "off",
            ["request-disk"] = requestDisk is { } disk ? Cache.CacheSize.Format(disk.Bytes) : "off",
            ["offer-cpu"] = offerCpu > 0 ? FormatGfuel(offerCpu) : "off",
            ["request-cpu"] = requestCpu is { } cpu ? FormatGfuel(cpu.Gfuel) : "off",
            ["cache"] = cache is { } size ? Cache.CacheSize.Format(size) : "off",
            ["cache-ports"] = string.Join(", ", cachePorts.Order()),
            ["log-level"] = logLevel.ToString(),
            ["log-format"] = logFormat.ToString().ToLowerInvariant(),
        };
        var values = Settings.Select(s => new EffectiveSetting(s.Key, shown[s.Key], reader.Origins.GetValueOrDefault(s.Key, SettingOrigin.Default))).ToList();
        return new NodeSettings(node, control, logLevel, logFormat, file, File.Exists(file), values, reader.Warnings);
    }

    private static Setting Setting(string key) => Settings.First(s => s.Key == key);

    private static string Single(RawValue raw) => raw.Items.Count == 1
        ? raw.Items[0]
        : throw new FormatException($"takes one value, not {raw.Items.Count}");

    /// <summary>address:port with the port spelled out: 127.0.0.1:1080 or [::1]:1080; port 0 takes any free port.</summary>
    internal static IPEndPoint ParseEndPoint(string text, string example)
    {
        bool hasPort = text.StartsWith('[') ? text.Contains("]:", StringComparison.Ordinal) : text.Count(c => c == ':') == 1;
        return hasPort && IPEndPoint.TryParse(text, out var endPoint)
            ? endPoint
            : throw new FormatException($"'{text}' is not address:port; write it like {example}");
    }

    private static IPEndPoint ParseAdvertise(string text)
    {
        var endPoint = ParseEndPoint(text, "203.0.113.7:7843");
        if (endPoint.Address.Equals(IPAddress.Any) || endPoint.Address.Equals(IPAddress.IPv6Any) || endPoint.Port == 0)
            throw new FormatException($"'{text}' is not an address others can dial; give this machine's public address and port, such as 203.0.113.7:7843");
        return endPoint;
    }

    /// <summary>The proxy and the control API listen on loopback only: anything else would open them to the network.</summary>
    private static IPEndPoint? ParseLoopback(string text, int defaultPort)
    {
        if (text.Equals("off", StringComparison.OrdinalIgnoreCase)) return null;
        var endPoint = ParseEndPoint(text, $"127.0.0.1:{defaultPort}, or off");
        if (!IPAddress.IsLoopback(endPoint.Address))
            throw new FormatException($"{endPoint.Address} is not a loopback address, and this port must never be reachable from the network; use 127.0.0.1:{defaultPort} (or another 127.x.y.z), or off");
        return endPoint;
    }

    private static Block? ParseBlock(string text, bool allowNone)
    {
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long kbps))
            throw new FormatException($"'{text}' is not a number of kbps; use a block of 16·2^k, such as 1024");
        if (kbps == 0 && allowNone) return null;
        if (Block.TryFromKbps(kbps, out var block)) return block;
        long lower = kbps < Block.BaseKbps ? Block.BaseKbps : Block.BaseKbps << (int)Math.Min(Block.MaxOrder, Math.Log2(kbps / (double)Block.BaseKbps));
        throw new FormatException($"{kbps} kbps is not a block of 16·2^k (16, 32, 64 … {new Block(Block.MaxOrder).Kbps}) so nobody could search for it; " +
            $"use {lower}{(lower * 2 <= new Block(Block.MaxOrder).Kbps && lower < kbps ? $" or {lower * 2}" : "")}{(allowNone ? ", or 0 to donate" : "")}");
    }

    private static int ParseMaxConnections(string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int count) && count is >= 1 and <= 1_000_000
            ? count
            : throw new FormatException($"'{text}' is not a number of connections from 1 to 1000000; the default is {Proxy.ProxyOptions.DefaultMaxConnections}");

    private static int? ParseExitSockets(string text) =>
        text.Equals("auto", StringComparison.OrdinalIgnoreCase) ? null
        : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int sockets) && sockets >= 1 ? sockets
        : throw new FormatException($"'{text}' is not a number of sockets; use auto (from the open-files limit) or a number such as 2048, below that limit");

    private static int ParsePort(string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int port) && port is >= 1 and <= 65535 ? port
        : throw new FormatException($"'{text}' is not a port; give a number from 1 to 65535, such as 80 or 8080");

    private static long? ParseCache(string text)
    {
        if (text.Equals("off", StringComparison.OrdinalIgnoreCase)) return null;
        long quota = Cache.CacheSize.Parse(text);
        return quota >= Cache.CacheStore.MinimumQuota ? quota
            : throw new FormatException($"'{text}' is too small for a cache; give at least {Cache.CacheSize.Format(Cache.CacheStore.MinimumQuota)}, or off");
    }

    /// <summary>Disk offered is granted in whole MiB; any amount of at least one will do.</summary>
    private static long ParseOfferDisk(string text)
    {
        if (text.Equals("off", StringComparison.OrdinalIgnoreCase)) return 0;
        long bytes = Cache.CacheSize.Parse(text);
        return bytes >= DiskBlock.BaseBytes ? bytes / DiskBlock.BaseBytes * DiskBlock.BaseBytes
            : throw new FormatException($"'{text}' is less than 1MiB; give at least 1MiB, such as 1GiB, or off");
    }

    /// <summary>Disk is asked in blocks, so that every amount asked is one a partner can grant whole.</summary>
    private static DiskBlock? ParseRequestDisk(string text)
    {
        if (text.Equals("off", StringComparison.OrdinalIgnoreCase)) return null;
        long bytes = Cache.CacheSize.Parse(text);
        if (DiskBlock.TryFromBytes(bytes, out var block)) return block;
        var lower = DiskBlock.Floor(bytes / DiskBlock.BaseBytes);
        throw new FormatException($"'{text}' is not a power of two MiB (1MiB, 2MiB … 1GiB …); use {(lower is { } l ? Cache.CacheSize.Format(l.Bytes) : "1MiB")}, or off");
    }

    /// <summary>CPU offered is granted in whole Gfuel a day; any amount of at least one will do.</summary>
    private static long ParseOfferCpu(string text)
    {
        if (text.Equals("off", StringComparison.OrdinalIgnoreCase)) return 0;
        long fuel = ParseFuel(text);
        return fuel >= CpuBlock.FuelPerGfuel ? fuel / CpuBlock.FuelPerGfuel
            : throw new FormatException($"'{text}' is less than 1Gfuel a day; give at least 1Gfuel, such as 1Tfuel, or off");
    }

    /// <summary>CPU is asked in blocks, as disk is.</summary>
    private static CpuBlock? ParseRequestCpu(string text)
    {
        if (text.Equals("off", StringComparison.OrdinalIgnoreCase)) return null;
        long gfuel = ParseFuel(text) / CpuBlock.FuelPerGfuel;
        var lower = CpuBlock.Floor(gfuel);
        if (lower is { } block && block.Fuel == ParseFuel(text)) return block;
        throw new FormatException($"'{text}' is not a power of two Gfuel (1Gfuel, 2Gfuel … 1Tfuel …); use {(lower is { } l ? FormatGfuel(l.Gfuel) : "1Gfuel")}, or off");
    }

    /// <summary>Fuel a day, such as 64Gfuel or 1Tfuel: binary multiples (K, M, G, T, P), "fuel" and "/day" optional.</summary>
    private static long ParseFuel(string text)
    {
        string t = text.Trim();
        if (t.EndsWith("/day", StringComparison.OrdinalIgnoreCase)) t = t[..^4];
        if (t.EndsWith("fuel", StringComparison.OrdinalIgnoreCase)) t = t[..^4];
        int shift = t.Length == 0 ? 0 : char.ToUpperInvariant(t[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, 'P' => 50, _ => 0 };
        if (shift > 0) t = t[..^1];
        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out long amount) || amount > long.MaxValue >> shift)
            throw new FormatException($"'{text}' is not an amount of fuel a day, such as 64Gfuel or 1Tfuel");
        return amount << shift;
    }

    private static string FormatGfuel(long gfuel) => gfuel % 1024 == 0 ? $"{gfuel / 1024}Tfuel" : $"{gfuel}Gfuel";

    private static int ParseHops(string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int hops) && hops is >= 1 and <= Cell.MaxRelayEarly
            ? hops
            : throw new FormatException($"'{text}' is not 1 to {Cell.MaxRelayEarly}; 1 is fastest, 3 keeps any single node from seeing both you and your destination");

    private static List<string> ParseList(RawValue raw, Func<string, string> parse) => [.. raw.Items.Select(parse)];

    private static string ParsePeer(string text)
    {
        int colon = text.LastIndexOf(':');
        string host = colon > 0 ? text[..colon].Trim('[', ']') : "";
        if (host.Length == 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
            throw new FormatException($"'{text}' is not host:port; write a peer like quid.example.net:7843 or 192.0.2.1:7843");
        return text;
    }

    private static string ParseFriend(string text)
    {
        var parts = text.Split('@', 2);
        if (!NodeId.TryParse(parts[0], out _))
            throw new FormatException($"'{parts[0]}' is not a node id; give the 32 base32 characters 'quid id' prints on the friend's machine, optionally followed by @host:port");
        if (parts.Length == 2) ParsePeer(parts[1]);
        return text;
    }

    private static bool ParseSwitch(string text) => text.ToLowerInvariant() switch
    {
        "true" or "yes" or "on" or "1" => true,
        "false" or "no" or "off" or "0" => false,
        _ => throw new FormatException($"'{text}' is not true or false"),
    };

    private static LogLevel ParseLogLevel(string text) =>
        !text.All(char.IsAsciiDigit) && Enum.TryParse<LogLevel>(text, ignoreCase: true, out var level) && Enum.IsDefined(level)
            ? level
            : throw new FormatException($"'{text}' is not a log level; use Trace, Debug, Information, Warning, Error or Critical");

    private static PortMappingMode ParsePortMapping(string text) => text.ToLowerInvariant() switch
    {
        "auto" => PortMappingMode.Auto,
        "off" => PortMappingMode.Off,
        _ => throw new FormatException($"'{text}' is not auto or off; auto asks a NAT gateway for a port when it can matter, off never asks"),
    };

    private static LogFormat ParseLogFormat(string text) => text.ToLowerInvariant() switch
    {
        "text" => LogFormat.Text,
        "json" => LogFormat.Json,
        _ => throw new FormatException($"'{text}' is not a log format; use text or json"),
    };

    /// <summary>The closest known key to a misspelt one, if any is close.</summary>
    internal static string? Suggest(string unknown)
    {
        string normal = unknown.ToLowerInvariant().Replace('_', '-');
        return Settings.Select(s => s.Key).Where(k => Distance(normal, k) <= 2).OrderBy(k => Distance(normal, k)).FirstOrDefault();
    }

    private static int Distance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            previous = current;
        }
        return previous[b.Length];
    }

    /// <summary>TOML text as Tomlyn's untyped model; throws <see cref="TomlException"/> when it is not valid TOML.</summary>
    internal static TomlTable ReadToml(string text) => TomlSerializer.Deserialize(text, TomlModel.Default.TomlTable) ?? new TomlTable();

    private sealed record RawValue(IReadOnlyList<string> Items, SettingOrigin Origin);

    /// <summary>Finds each setting's value in the strongest source that has one, and collects the problems.</summary>
    private sealed class SourceReader(IReadOnlyList<FlagValue> flags, IReadOnlyDictionary<string, string> environment)
    {
        private TomlTable? _file;
        private string _filePath = FileName;

        public List<ConfigurationError> Errors { get; } = [];
        public List<string> Warnings { get; } = [];
        public Dictionary<string, SettingOrigin> Origins { get; } = [];

        public void LoadFile(string path)
        {
            _filePath = path;
            foreach (var name in environment.Keys.Where(k => k.StartsWith("QUID_", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
            {
                if (Settings.Any(s => s.EnvironmentVariable == name)) continue;
                string? near = Suggest(name["QUID_".Length..]);
                Warnings.Add($"{name} is not a Quid setting and is ignored{(near is null ? "" : $"; did you mean {Settings.First(s => s.Key == near).EnvironmentVariable}?")}");
            }
            if (!File.Exists(path)) return;
            try
            {
                _file = ReadToml(File.ReadAllText(path));
            }
            catch (TomlException e)
            {
                Errors.Add(new ConfigurationError(FileName, new SettingOrigin(SettingSource.File, path), $"not valid TOML: {e.Message}; write one 'key = value' per line, strings in quotes"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Errors.Add(new ConfigurationError(FileName, new SettingOrigin(SettingSource.File, path), $"cannot be read: {e.Message}"));
            }
        }

        /// <summary>The setting's value from the strongest source, parsed; the default when no source sets it.</summary>
        public T Read<T>(Setting setting, Func<RawValue, T> parse, T fallback)
        {
            if (Find(setting) is not { } raw) return fallback;
            Origins[setting.Key] = raw.Origin;
            try
            {
                return parse(raw);
            }
            catch (FormatException e)
            {
                Errors.Add(new ConfigurationError(setting.Key, raw.Origin, e.Message));
                return fallback;
            }
        }

        private RawValue? Find(Setting setting)
        {
            var given = flags.Where(f => f.Key == setting.Key).ToList();
            if (given.Select(f => f.Flag).Distinct().Count() > 1)
            {
                Errors.Add(new ConfigurationError(setting.Key, new SettingOrigin(SettingSource.Flag, string.Join(" and ", given.Select(f => f.Flag).Distinct())),
                    $"these flags set the same thing; give only one of {string.Join(", ", new[] { setting.Flag }.Concat(setting.Shorthands.Select(s => s.Flag)))}"));
                return null;
            }
            if (given.Count > 0) return new RawValue([.. given.SelectMany(f => f.Values)], new SettingOrigin(SettingSource.Flag, given[0].Flag));

            if (environment.TryGetValue(setting.EnvironmentVariable, out var text) && text.Trim().Length > 0)
            {
                var items = setting.Kind == SettingKind.List
                    ? text.Split([',', ' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    : [text.Trim()];
                return new RawValue(items, new SettingOrigin(SettingSource.Environment, setting.EnvironmentVariable));
            }

            if (_file is null || !setting.InFile || !_file.TryGetValue(setting.Key, out var value)) return null;
            var origin = new SettingOrigin(SettingSource.File, _filePath);
            var fromFile = value switch
            {
                TomlArray array when setting.Kind == SettingKind.List || setting.Key == "exit-policy" => array.Select(Scalar).ToList(),
                TomlArray => null,
                _ => Scalar(value) is { } scalar ? [scalar] : null,
            };
            if (fromFile is null || fromFile.Any(v => v is null))
            {
                string shape = setting.Kind switch
                {
                    SettingKind.List => $"{setting.Key} = [\"…\", \"…\"]",
                    SettingKind.Switch => $"{setting.Key} = true",
                    _ => $"{setting.Key} = \"…\"",
                };
                Errors.Add(new ConfigurationError(setting.Key, origin, $"has the wrong shape; write it as {shape}"));
                return null;
            }
            return new RawValue(fromFile!, origin);
        }

        private static string? Scalar(object? value) => value switch
        {
            string s => s,
            bool b => b ? "true" : "false",
            long l => l.ToString(CultureInfo.InvariantCulture),
            _ => null,
        };

        /// <summary>A key in quid.toml that no setting reads is a typo or a misunderstanding: better refused than ignored.</summary>
        public void CheckFileKeys()
        {
            if (_file is null) return;
            var origin = new SettingOrigin(SettingSource.File, _filePath);
            foreach (var key in _file.Keys)
            {
                if (Settings.Any(s => s.Key == key && s.InFile)) continue;
                if (key == "data-dir")
                {
                    Errors.Add(new ConfigurationError(key, origin, "cannot be set in quid.toml, which lives in the data directory; use --data-dir or QUID_DATA_DIR"));
                    continue;
                }
                string? near = Suggest(key);
                Errors.Add(new ConfigurationError(key, origin, near is not null
                    ? $"is not a setting; did you mean '{near}'?"
                    : $"is not a setting; the keys are {string.Join(", ", Settings.Where(s => s.InFile).Select(s => s.Key))}"));
            }
        }
    }
}

/// <summary>
/// Tomlyn's untyped model, read through generated metadata rather than reflection, which the
/// native (AOT) build of quid does not have.
/// </summary>
[TomlSerializable(typeof(TomlTable))]
internal sealed partial class TomlModel : TomlSerializerContext;
