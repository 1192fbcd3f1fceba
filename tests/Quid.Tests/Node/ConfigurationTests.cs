using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Quid.Node;
using Quid.Node.Configuration;
using Quid.Wire;
using Tomlyn;
using Tomlyn.Model;

namespace Quid.Tests.Node;

/// <summary>quid.toml, then QUID_ variables, then flags: each overrides the one before, and every bad value is named with its fix.</summary>
public sealed class ConfigurationTests : IDisposable
{
    private readonly string _home = Directory.CreateTempSubdirectory("quid-config-").FullName;

    private string DataDirectory => Path.Combine(_home, "data");

    private Dictionary<string, string> Environment(params (string Name, string Value)[] variables)
    {
        var environment = new Dictionary<string, string> { ["HOME"] = _home };
        foreach (var (name, value) in variables) environment[name] = value;
        return environment;
    }

    private void WriteFile(string toml)
    {
        Directory.CreateDirectory(DataDirectory);
        File.WriteAllText(Path.Combine(DataDirectory, NodeConfiguration.FileName), toml);
    }

    private NodeSettings Load(IReadOnlyList<FlagValue>? flags = null, Dictionary<string, string>? environment = null) =>
        NodeConfiguration.Load([new FlagValue("data-dir", "--data-dir", [DataDirectory]), .. flags ?? []], environment ?? Environment());

    private static EffectiveSetting Value(NodeSettings settings, string key) => settings.Values.Single(v => v.Key == key);

    private ConfigurationError Rejected(IReadOnlyList<FlagValue>? flags = null, Dictionary<string, string>? environment = null) =>
        Assert.Single(Assert.Throws<ConfigurationException>(() => Load(flags, environment)).Errors);

    [Fact]
    public void Zero_configuration_gives_a_working_node_under_the_XDG_data_directory()
    {
        var settings = NodeConfiguration.Load([], Environment());
        Assert.Equal(Path.Combine(_home, ".local", "share", "quid"), settings.DataDirectory);
        Assert.Equal(new IPEndPoint(IPAddress.Any, 7843), settings.Node.Listen);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 1080), settings.Node.Socks);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 9051), settings.Control);
        Assert.Equal(Block.FromKbps(4096), settings.Node.Offer);
        Assert.Equal(Block.FromKbps(4096), settings.Node.Request);
        Assert.Equal(3, settings.Node.Hops);
        Assert.Same(ExitPolicy.Default, settings.Node.ExitPolicy);
        Assert.Equal(LogLevel.Information, settings.LogLevel);
        Assert.False(settings.ConfigFileExists);
        Assert.All(settings.Values, v => Assert.Equal(SettingSource.Default, v.Origin.Source));
        Assert.Empty(settings.Warnings);
    }

    [Fact]
    public void The_proxies_connection_cap_comes_from_the_file_the_environment_or_the_flag()
    {
        Assert.Equal(512, NodeConfiguration.Load([], Environment()).Node.Proxies.MaxConnections);
        WriteFile("proxy-max-connections = 100\n");
        Assert.Equal(100, Load().Node.Proxies.MaxConnections);
        Assert.Equal(200, Load(environment: Environment(("QUID_PROXY_MAX_CONNECTIONS", "200"))).Node.Proxies.MaxConnections);
        Assert.Equal(300, Load([new FlagValue("proxy-max-connections", "--proxy-max-connections", ["300"])]).Node.Proxies.MaxConnections);
    }

    [Fact]
    public void Port_mapping_is_auto_by_default_and_off_from_the_file_the_environment_or_the_flag()
    {
        Assert.Equal(PortMappingMode.Auto, NodeConfiguration.Load([], Environment()).Node.PortMapping);
        WriteFile("port-mapping = \"off\"\n");
        Assert.Equal(PortMappingMode.Off, Load().Node.PortMapping);
        Assert.Equal(PortMappingMode.Auto, Load(environment: Environment(("QUID_PORT_MAPPING", "auto"))).Node.PortMapping);
        Assert.Equal(PortMappingMode.Off, Load([new FlagValue("port-mapping", "--port-mapping", ["off"])], Environment(("QUID_PORT_MAPPING", "auto"))).Node.PortMapping);
    }

    [Fact]
    public void XDG_DATA_HOME_moves_the_default_data_directory()
    {
        var settings = NodeConfiguration.Load([], Environment(("XDG_DATA_HOME", Path.Combine(_home, "xdg"))));
        Assert.Equal(Path.Combine(_home, "xdg", "quid"), settings.DataDirectory);
    }

    [Fact]
    public void Flags_override_the_environment_which_overrides_the_file()
    {
        WriteFile("""
            offer = 1024
            hops = 1
            peers = ["file.example:7843"]
            no-ultrapeer = true
            """);
        var environment = Environment(("QUID_OFFER", "2048"), ("QUID_PEERS", "env1.example:7843, env2.example:7843"));
        FlagValue[] flags = [new("offer", "--offer", ["512"])];

        var settings = Load(flags, environment);
        Assert.Equal(512, settings.Node.Offer.Kbps);
        Assert.Equal(new SettingOrigin(SettingSource.Flag, "--offer"), Value(settings, "offer").Origin);
        Assert.Equal(["env1.example:7843", "env2.example:7843"], settings.Node.Peers);
        Assert.Equal(new SettingOrigin(SettingSource.Environment, "QUID_PEERS"), Value(settings, "peers").Origin);
        Assert.Equal(1, settings.Node.Hops);
        Assert.Equal(SettingSource.File, Value(settings, "hops").Origin.Source);
        Assert.False(settings.Node.Overlay.UltrapeerCapable);
        Assert.Equal(SettingSource.Default, Value(settings, "request").Origin.Source);
        Assert.True(settings.ConfigFileExists);

        // Take the flag away and the environment decides; take that away and the file does.
        Assert.Equal(2048, Load([], environment).Node.Offer.Kbps);
        var fromFile = Load([], Environment());
        Assert.Equal(1024, fromFile.Node.Offer.Kbps);
        Assert.Equal(["file.example:7843"], fromFile.Node.Peers);
        Assert.Equal(Path.Combine(DataDirectory, NodeConfiguration.FileName), Value(fromFile, "offer").Origin.Where);
    }

    [Fact]
    public void CPU_is_offered_as_fuel_a_day_and_asked_in_blocks()
    {
        Assert.Equal(0, Load().Node.OfferCpuGfuel);
        var settings = Load([new FlagValue("offer-cpu", "--offer-cpu", ["1Tfuel"]), new FlagValue("request-cpu", "--request-cpu", ["64Gfuel/day"])]);
        Assert.Equal(1024, settings.Node.OfferCpuGfuel);
        Assert.Equal(new CpuBlock(6), settings.Node.RequestCpu);
        Assert.Equal("1Tfuel", Value(settings, "offer-cpu").Value);
        Assert.Equal(3000, Load(environment: Environment(("QUID_OFFER_CPU", "3000G"))).Node.OfferCpuGfuel);
        Assert.Contains("power of two", Rejected([new FlagValue("request-cpu", "--request-cpu", ["100Gfuel"])]).Problem);
        Assert.Contains("less than 1Gfuel", Rejected([new FlagValue("offer-cpu", "--offer-cpu", ["500Mfuel"])]).Problem);
        Assert.Contains("amount of fuel", Rejected([new FlagValue("offer-cpu", "--offer-cpu", ["lots"])]).Problem);
    }

    [Fact]
    public void Probes_are_on_unless_turned_off()
    {
        Assert.True(Load().Node.Market.ProbePartners);
        Assert.False(Load([new FlagValue("no-probes", "--no-probes", ["true"])]).Node.Market.ProbePartners);
        Assert.False(Load(environment: Environment(("QUID_NO_PROBES", "true"))).Node.Market.ProbePartners);
    }

    [Fact]
    public void The_exit_socket_budget_comes_from_the_open_files_limit_unless_set()
    {
        Assert.Null(Load().Node.Circuits.ExitSocketBudget);
        Assert.Equal("auto", Value(Load(), "exit-sockets").Value);
        Assert.Equal(2048, Load(environment: Environment(("QUID_EXIT_SOCKETS", "2048"))).Node.Circuits.ExitSocketBudget);
        Assert.Equal(300, Load([new FlagValue("exit-sockets", "--exit-sockets", ["300"])]).Node.Circuits.ExitSocketBudget);
    }

    [Fact]
    public void A_switch_flag_given_false_overrides_the_file()
    {
        WriteFile("no-ultrapeer = true");
        Assert.True(Load([new FlagValue("no-ultrapeer", "--no-ultrapeer", ["false"])]).Node.Overlay.UltrapeerCapable);
        Assert.True(Load(environment: Environment(("QUID_NO_ULTRAPEER", "no"))).Node.Overlay.UltrapeerCapable);
    }

    [Fact]
    public void The_data_directory_comes_from_the_flag_or_QUID_DATA_DIR_never_from_the_file_inside_it()
    {
        string elsewhere = Path.Combine(_home, "elsewhere");
        Assert.Equal(elsewhere, NodeConfiguration.Load([], Environment(("QUID_DATA_DIR", elsewhere))).DataDirectory);
        WriteFile($"data-dir = \"{elsewhere}\"");
        var error = Rejected();
        Assert.Equal("data-dir", error.Key);
        Assert.Contains("--data-dir or QUID_DATA_DIR", error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void An_exit_policy_in_Tor_syntax_from_the_file_or_a_shorthand_flag()
    {
        WriteFile("""exit-policy = ["accept *:80", "accept *:443", "reject *:*"]""");
        var policy = Load().Node.ExitPolicy;
        Assert.True(policy.Allows(IPAddress.Parse("93.184.216.34"), 443));
        Assert.False(policy.Allows(IPAddress.Parse("93.184.216.34"), 22));

        var none = Load([new FlagValue("exit-policy", "--no-exit", ["reject *:*"])]);
        Assert.False(none.Node.ExitPolicy.MayAllowPort(80));
        Assert.Equal(new SettingOrigin(SettingSource.Flag, "--no-exit"), Value(none, "exit-policy").Origin);
        Assert.Equal("reject *:*", Value(none, "exit-policy").Value);
    }

    [Fact]
    public void Two_flags_for_one_setting_are_refused()
    {
        var error = Rejected([new FlagValue("exit-policy", "--no-exit", ["reject *:*"]), new FlagValue("exit-policy", "--exit-allow-private", ["accept *:*"])]);
        Assert.Equal("exit-policy", error.Key);
        Assert.Contains("give only one of --exit-policy, --no-exit, --exit-allow-private", error.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("offer", "1000", "1000 kbps is not a block", "use 512 or 1024")]
    [InlineData("offer", "0", "0 kbps is not a block", "use 16")]
    [InlineData("request", "fast", "'fast' is not a number of kbps", "such as 1024")]
    [InlineData("hops", "9", "'9' is not 1 to 8", "3 keeps any single node")]
    [InlineData("listen", "7843", "'7843' is not address:port", "0.0.0.0:7843")]
    [InlineData("socks", "0.0.0.0:1080", "0.0.0.0 is not a loopback address", "use 127.0.0.1:1080")]
    [InlineData("control", "192.168.1.2:9051", "192.168.1.2 is not a loopback address", "use 127.0.0.1:9051")]
    [InlineData("advertise", "0.0.0.0:7843", "is not an address others can dial", "203.0.113.7:7843")]
    [InlineData("peers", "quid.example.net", "'quid.example.net' is not host:port", "quid.example.net:7843")]
    [InlineData("friends", "alice", "'alice' is not a node id", "'quid id' prints")]
    [InlineData("no-ultrapeer", "maybe", "'maybe' is not true or false", "true or false")]
    [InlineData("exit-policy", "allow *:80", "does not start with accept or reject", "accept or reject")]
    [InlineData("exit-policy", "accept 10.0.0.0/33:*", "'/33'", "0 to 32")]
    [InlineData("exit-policy", "accept *:80-20", "'80-20' in", "1024-65535")]
    [InlineData("exit-sockets", "many", "'many' is not a number of sockets", "auto")]
    [InlineData("log-level", "loud", "'loud' is not a log level", "Debug, Information")]
    [InlineData("log-format", "xml", "'xml' is not a log format", "text or json")]
    [InlineData("port-mapping", "yes", "'yes' is not auto or off", "off never asks")]
    [InlineData("proxy-max-connections", "0", "'0' is not a number of connections", "the default is 512")]
    public void A_bad_value_is_refused_naming_the_key_its_source_and_the_fix(string key, string value, string problem, string fix)
    {
        var setting = NodeConfiguration.Settings.Single(s => s.Key == key);
        var error = Rejected(environment: Environment((setting.EnvironmentVariable, value)));
        Assert.Equal(key, error.Key);
        Assert.Equal(new SettingOrigin(SettingSource.Environment, setting.EnvironmentVariable), error.Origin);
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
        Assert.Contains(fix, error.Problem, StringComparison.Ordinal);
        Assert.StartsWith($"{key} (from environment {setting.EnvironmentVariable}): ", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Every_problem_is_reported_at_once()
    {
        WriteFile("""
            offer = 1000
            ofer = 1024
            hops = "three"
            socks = ["127.0.0.1:1080", "127.0.0.1:1081"]
            """);
        var errors = Assert.Throws<ConfigurationException>(() => Load()).Errors;
        Assert.Equal(["hops", "ofer", "offer", "socks"], errors.Select(e => e.Key).Order());
        Assert.Contains("did you mean 'offer'?", errors.Single(e => e.Key == "ofer").Problem, StringComparison.Ordinal);
        Assert.Contains("write it as socks = \"…\"", errors.Single(e => e.Key == "socks").Problem, StringComparison.Ordinal);
        Assert.All(errors, e => Assert.Equal(SettingSource.File, e.Origin.Source));
    }

    [Fact]
    public void A_file_that_is_not_TOML_is_refused_with_where_it_goes_wrong()
    {
        WriteFile("offer = = 1024");
        var error = Rejected();
        Assert.Equal(NodeConfiguration.FileName, error.Key);
        Assert.Contains("not valid TOML: (1,", error.Problem, StringComparison.Ordinal);
    }

    /// <summary>
    /// quid.toml is read through generated metadata, which the native build needs, where it used
    /// to be read by reflection: on every shape of TOML the model must be the one it was.
    /// </summary>
    [Theory]
    [InlineData("")]
    [InlineData("# only a comment\n")]
    [InlineData("offer = 1024\nhops = 1\nno-ultrapeer = true\nlog-level = \"Debug\"")]
    [InlineData("peers = [\"a.example:7843\", '127.0.0.9:7843']\nexit-policy = \"reject private:*, accept *:443\"")]
    [InlineData("s = \"tab\\there \\u00e9\"\nl = 'C:\\raw'\nm = \"\"\"\nline one\nline two\"\"\"\nq = '''it's'''")]
    [InlineData("hex = 0xff\noct = 0o17\nbin = 0b101\nbig = 1_000_000\nneg = -7\nf = 3.25\ne = 6e-3\ninf = -inf\nnan = nan")]
    [InlineData("odt = 1979-05-27T07:32:00Z\noff = 1979-05-27T00:32:00.5-07:00\nldt = 1979-05-27T07:32:00\nld = 1979-05-27\nlt = 07:32:00")]
    [InlineData("mixed = [1, \"two\", [3, 4], { five = 5 }]\nempty = []")]
    [InlineData("offer = 1\noffer = 2\n[t]\nk = 1\n[t]\nk = 2")]
    [InlineData("a.b.c = 1\n\"quoted key\" = 2\ninline = { x = 1, y = { z = true } }\n[table]\nk = \"v\"\n[table.sub]\nk = 2\n[[list]]\nn = 1\n[[list]]\nn = 2")]
    public void The_TOML_model_read_without_reflection_is_the_one_reflection_read(string toml)
    {
        Assert.Equal(Describe(ReadByReflection(toml)), Describe(NodeConfiguration.ReadToml(toml)));

        static string Describe(object? value) => value switch
        {
            TomlTable table => "{" + string.Join(", ", table.Select(p => $"{p.Key} = {Describe(p.Value)}")) + "}",
            TomlTableArray tables => "[[" + string.Join(", ", tables.Select(Describe)) + "]]",
            TomlArray array => "[" + string.Join(", ", array.Select(Describe)) + "]",
            null => "null",
            _ => $"{value.GetType().Name} {Convert.ToString(value, CultureInfo.InvariantCulture)}",
        };
    }

    [Theory]
    [InlineData("offer = = 1024")]
    [InlineData("s = \"unterminated")]
    [InlineData("[t\nk = 1")]
    public void Text_that_is_not_TOML_is_refused_as_reflection_refused_it(string toml)
    {
        Assert.Throws<TomlException>(() => ReadByReflection(toml));
        Assert.Throws<TomlException>(() => NodeConfiguration.ReadToml(toml));
    }

    /// <summary>How quid.toml was read before the native build: the reference to compare with, in a JIT test only.</summary>
    private static TomlTable ReadByReflection(string toml) => TomlSerializer.Deserialize<TomlTable>(toml)!;

    [Fact]
    public void A_table_where_a_value_belongs_is_refused_with_the_shape_to_write()
    {
        WriteFile("""
            [offer]
            kbps = 1024
            """);
        var error = Rejected();
        Assert.Equal("offer", error.Key);
        Assert.Contains("write it as offer = \"…\"", error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_QUID_variable_is_a_warning_with_a_suggestion_not_an_error()
    {
        var settings = Load(environment: Environment(("QUID_OFER", "1024")));
        Assert.Equal(4096, settings.Node.Offer.Kbps);
        Assert.Contains("QUID_OFER is not a Quid setting and is ignored; did you mean QUID_OFFER?", settings.Warnings);
    }

    [Fact]
    public void Port_zero_and_off_are_accepted_for_the_local_ports()
    {
        var settings = Load([new FlagValue("socks", "--socks", ["off"]), new FlagValue("control", "--control", ["127.0.0.1:0"])]);
        Assert.Null(settings.Node.Socks);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 0), settings.Control);
        Assert.Equal("off", Value(settings, "socks").Value);
    }

    [Fact]
    public void Every_setting_has_a_flag_a_variable_and_a_default_and_no_two_share_a_name()
    {
        Assert.All(NodeConfiguration.Settings, s =>
        {
            Assert.StartsWith("--", s.Flag, StringComparison.Ordinal);
            Assert.Matches("^QUID_[A-Z_]+$", s.EnvironmentVariable);
            Assert.False(string.IsNullOrWhiteSpace(s.DefaultText));
        });
        Assert.Equal(NodeConfiguration.Settings.Count, NodeConfiguration.Settings.Select(s => s.Key).Distinct().Count());
        Assert.Equal(NodeConfiguration.Settings.Count, NodeConfiguration.Settings.Select(s => s.Flag).Distinct().Count());
    }

    public void Dispose() => Directory.Delete(_home, recursive: true);
}
