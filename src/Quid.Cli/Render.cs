using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Quid.Node.Control;

namespace Quid.Cli;

/// <summary>Numbers the way people read them, and JSON the way scripts do.</summary>
internal static class Render
{
    public static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.0} GiB",
        >= 1 << 20 => $"{bytes / (double)(1 << 20):0.0} MiB",
        >= 1 << 10 => $"{bytes / 1024.0:0.0} KiB",
        _ => $"{bytes} B",
    };

    /// <summary>A rate in bits per second, as link speeds are quoted.</summary>
    public static string Rate(double bytesPerSecond)
    {
        double bits = bytesPerSecond * 8;
        return bits switch
        {
            >= 1e9 => $"{bits / 1e9:0.00} Gbit/s",
            >= 1e6 => $"{bits / 1e6:0.00} Mbit/s",
            >= 1e3 => $"{bits / 1e3:0} kbit/s",
            _ => $"{bits:0} bit/s",
        };
    }

    public static string Kbps(long kbps) => kbps == 0 ? "-" : $"{kbps} kbps";

    public static string Age(TimeSpan age) => age switch
    {
        { TotalDays: >= 1 } => $"{(int)age.TotalDays}d {age.Hours}h",
        { TotalHours: >= 1 } => $"{(int)age.TotalHours}h {age.Minutes}m",
        { TotalMinutes: >= 1 } => $"{(int)age.TotalMinutes}m {age.Seconds}s",
        _ => $"{Math.Max(0, (int)age.TotalSeconds)}s",
    };

    public static string Since(DateTimeOffset time) => Age(DateTimeOffset.UtcNow - time);

    /// <summary>A moment as "yyyy-MM-dd HH:mm UTC", as the commands that name one print it.</summary>
    public static string Utc(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) + " UTC";

    public static string Brief(string id) => id.Length > 8 ? id[..8] : id;

    public static void Json<T>(T value, JsonTypeInfo<T> type) => Console.WriteLine(JsonSerializer.Serialize(value, type));

    public static string Number(double value) => value.ToString("0", CultureInfo.InvariantCulture);
}

/// <summary>
/// What the commands print with --json: the control API's records as the node sends them (the
/// same options as <see cref="ControlJson"/>), indented for people, and the CLI's own. Generated
/// at build time, since the native (AOT) build of quid has no reflection to serialize with.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UseStringEnumConverter = true, WriteIndented = true)]
[JsonSerializable(typeof(IdReport))]
[JsonSerializable(typeof(StatusReport))]
[JsonSerializable(typeof(IReadOnlyList<PeerReport>))]
[JsonSerializable(typeof(CircuitsReport))]
[JsonSerializable(typeof(IReadOnlyList<LedgerRow>))]
[JsonSerializable(typeof(ConfigReport))]
[JsonSerializable(typeof(DashboardLink))]
[JsonSerializable(typeof(IReadOnlyList<ServiceReport>))]
[JsonSerializable(typeof(ServiceReport))]
[JsonSerializable(typeof(ServiceRemoved))]
[JsonSerializable(typeof(FollowReport))]
[JsonSerializable(typeof(IReadOnlyList<FollowReport>))]
[JsonSerializable(typeof(FollowRemoved))]
[JsonSerializable(typeof(CacheReport))]
[JsonSerializable(typeof(CacheEntryReport))]
[JsonSerializable(typeof(CachePurgeReport))]
[JsonSerializable(typeof(CacheSaved))]
internal sealed partial class CliJson : JsonSerializerContext;
