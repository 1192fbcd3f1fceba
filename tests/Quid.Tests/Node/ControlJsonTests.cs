using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Quid.Cli;
using Quid.Node.Control;
using Quid.Services;

namespace Quid.Tests.Node;

/// <summary>
/// The control API's JSON and the CLI's --json are written by generated code, which the native
/// build needs, where reflection wrote them before: the dashboard's script and people's scripts
/// read them, so every model must come out byte for byte as it did, and read back.
/// </summary>
public sealed class ControlJsonTests
{
    /// <summary>What the node and the CLI serialized with before: web defaults, enums by name.</summary>
    private static readonly JsonSerializerOptions Reflection = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };
    private static readonly JsonSerializerOptions ReflectionIndented = new(Reflection) { WriteIndented = true };

    private const string Alice = "aliceaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    private const string Bob = "bobbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    private static readonly DateTimeOffset Started = new(2025, 11, 23, 15, 42, 3, 250, TimeSpan.Zero);

    private static readonly IdReport Id = new(Alice, Alice[..8]);

    private static readonly StatusReport Status = new(Alice, "Ultrapeer", NodePhase.Ready, "Ready: a circuit is waiting", Started, 3723.5,
        "127.0.0.2:7843", null, 3, 4096, 1024, true, 1024, 2048, 2048,
        [new(0, 1024, OfferBlockState.Granted, Bob), new(1024, 1024, OfferBlockState.Reserved, null), new(2048, 2048, OfferBlockState.Free, null)],
        new RatesReport(12345.678, 0.1, 1L << 40, 0), 4, 2, 1, 3, 0, 12,
        new ReachabilityReport(Reachability.Reachable, "198.18.0.5:7843", "PortMapping", 3, "mapped", "10.0.0.1", "PCP", "mapped by PCP on gateway 10.0.0.1",
            "reachable at 198.18.0.5:7843 (mapped by PCP on gateway 10.0.0.1; 3 links dialed in)"));

    private static readonly IReadOnlyList<PeerReport> Peers =
    [
        new(Bob, true, "127.0.0.3:7843", true, Started.ToOffset(TimeSpan.FromHours(-7)), 1000, 2000, 0, 1024, 2048, "Good", true),
        new(Alice, false, "[::1]:40000", false, Started, 0, 0, 65536, 0, 0, null, false),
    ];

    private static readonly CircuitsReport Circuits = new(3, [new([Alice, Bob, Alice], Started, 2)], 1, 4, 7);

    private static readonly IReadOnlyList<LedgerRow> Ledger =
    [
        new(Bob, "Underdelivering", 512, 1024, 311.25, 10, 20, 1, 3, null, Started),
        new(Alice, "Shunned", 0, 0, null, 0, 0, 0, 1, Started.AddHours(1), null),
    ];

    private static readonly IReadOnlyList<ThroughputSample> Throughput = [new(Started, 1.5, 0), new(Started.AddSeconds(1), 0, 2e9)];

    [Fact]
    public void Every_answer_of_the_control_API_is_written_as_reflection_wrote_it_and_reads_back()
    {
        AssertAsBefore(Id, ControlJson.Default.IdReport, Reflection);
        AssertAsBefore(Status, ControlJson.Default.StatusReport, Reflection);
        AssertAsBefore(Peers, ControlJson.Default.IReadOnlyListPeerReport, Reflection);
        AssertAsBefore(Circuits, ControlJson.Default.CircuitsReport, Reflection);
        AssertAsBefore(Ledger, ControlJson.Default.IReadOnlyListLedgerRow, Reflection);
        AssertAsBefore(Throughput, ControlJson.Default.IReadOnlyListThroughputSample, Reflection);
        AssertAsBefore(new ErrorReport("No such endpoint"), ControlJson.Default.ErrorReport, Reflection);
    }

    [Fact]
    public void The_names_and_enum_strings_that_the_dashboard_and_scripts_read_are_kept()
    {
        using var status = JsonDocument.Parse(JsonSerializer.Serialize(Status, ControlJson.Default.StatusReport));
        var root = status.RootElement;
        Assert.Equal("Ready", root.GetProperty("phase").GetString());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("socks").ValueKind);
        Assert.Equal(1024, root.GetProperty("requestKbps").GetInt64());
        Assert.Equal(["Granted", "Reserved", "Free"], root.GetProperty("offerBlocks").EnumerateArray().Select(b => b.GetProperty("state").GetString()));
        Assert.Equal(12345.678, root.GetProperty("rates").GetProperty("givenBytesPerSecond").GetDouble());
        Assert.Equal(NodePhase.Ready, JsonSerializer.Deserialize("""{"phase":"Ready"}""", ControlJson.Default.StatusReport)!.Phase);
        Assert.Equal("Reachable", root.GetProperty("reachability").GetProperty("state").GetString());
        Assert.Equal("198.18.0.5:7843", root.GetProperty("reachability").GetProperty("address").GetString());

        using var ledger = JsonDocument.Parse(JsonSerializer.Serialize(Ledger, ControlJson.Default.IReadOnlyListLedgerRow));
        var row = ledger.RootElement[0];
        Assert.Equal(["partner", "verdict", "weGrantKbps", "promisedKbps", "deliveredKbps", "bytesGiven", "bytesReceived", "activeAgreements", "pastAgreements", "shunnedUntil", "lastProbe"],
            row.EnumerateObject().Select(p => p.Name));

        // The dashboard reads these of each service; scripts read the secret of a moving one.
        var service = new ServiceReport("web", AddressKind.Moving, "x.quid", true, Started, 2, 0, 1, 1, 0, "quid-secret-x", Started.AddDays(1));
        using var services = JsonDocument.Parse(JsonSerializer.Serialize<IReadOnlyList<ServiceReport>>([service], ControlJson.Default.IReadOnlyListServiceReport));
        var first = services.RootElement[0];
        Assert.Equal(["name", "kind", "address", "published", "started", "introductionPointsUp", "openMeetings", "introduced", "met", "dropped", "secret", "addressUntil", "accessKey"],
            first.EnumerateObject().Select(p => p.Name));
        Assert.Equal("Moving", first.GetProperty("kind").GetString());
        Assert.Equal(service, JsonSerializer.Deserialize(JsonSerializer.Serialize(service, CliJson.Default.ServiceReport), ControlJson.Default.ServiceReport));
    }

    [Fact]
    public void Every_json_the_CLI_prints_is_what_it_printed_before()
    {
        AssertAsBefore(Id, CliJson.Default.IdReport, ReflectionIndented);
        AssertAsBefore(Status, CliJson.Default.StatusReport, ReflectionIndented);
        AssertAsBefore(Peers, CliJson.Default.IReadOnlyListPeerReport, ReflectionIndented);
        AssertAsBefore(Circuits, CliJson.Default.CircuitsReport, ReflectionIndented);
        AssertAsBefore(Ledger, CliJson.Default.IReadOnlyListLedgerRow, ReflectionIndented);

        // quid config and quid dashboard printed anonymous objects; their records must print the same.
        var config = new ConfigReport("/var/lib/quid/quid.toml", true,
            [new("offer", "2048", "environment", "environment QUID_OFFER"), new("hops", "3", "default", "default")], ["QUID_OFER is not a Quid setting"]);
        var before = new
        {
            file = config.File,
            fileExists = config.FileExists,
            settings = config.Settings.Select(v => new { key = v.Key, value = v.Value, source = v.Source, from = v.From }),
            warnings = config.Warnings,
        };
        Assert.Equal(JsonSerializer.Serialize(before, ReflectionIndented), JsonSerializer.Serialize(config, CliJson.Default.ConfigReport));
        const string url = "http://127.0.0.1:9051/#token=00ff";
        Assert.Equal(JsonSerializer.Serialize(new { url }, ReflectionIndented), JsonSerializer.Serialize(new DashboardLink(url), CliJson.Default.DashboardLink));
    }

    private static void AssertAsBefore<T>(T value, JsonTypeInfo<T> generated, JsonSerializerOptions before)
    {
        string json = JsonSerializer.Serialize(value, generated);
        Assert.Equal(JsonSerializer.Serialize(value, before), json);
        Assert.Equal(json, JsonSerializer.Serialize(JsonSerializer.Deserialize(json, generated)!, generated));
    }
}
