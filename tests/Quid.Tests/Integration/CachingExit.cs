using System.Net;
using Quid.Cache;
using Quid.Node;

namespace Quid.Tests.Integration;

/// <summary>
/// Two real nodes, the second an exit with a cache in front of a <see cref="CacheOrigin"/>: what
/// the owner's views of the cache (quid cache, the dashboard) are tested against. An object is
/// stored once two circuits have asked for it, so <see cref="StoreAsync"/> fetches each path as two
/// SOCKS users, each of which gets a circuit of its own.
/// </summary>
internal sealed class CachingExit : IAsyncDisposable
{
    private static readonly NodeSpec[] TwoNodes = [new(1048576, 524288), new(1048576, 524288)];

    private CachingExit(TestNetwork network, CacheOrigin origin)
    {
        Network = network;
        Origin = origin;
    }

    public TestNetwork Network { get; }
    public CacheOrigin Origin { get; }
    public QuidNode Exit => Network.Nodes[1];
    public ExitCache Cache => Exit.Cache!;
    public string ExitDataDirectory => Network.DataDirectory(1);

    public string Url(string path) => $"http://127.0.0.1:{Origin.Port}{path}";

    /// <param name="firstAddress">The last byte of the first node's loopback address; the exit has the next.</param>
    public static async Task<CachingExit> StartAsync(byte firstAddress)
    {
        var origin = await CacheOrigin.StartAsync(IPAddress.Loopback);
        TestNetwork? network = null;
        try
        {
            network = await TestNetwork.StartAsync(firstAddress, TwoNodes, configure: (i, options, _) => i == 1
                ? options with { Cache = new CacheOptions { Quota = 64 << 20, Ports = new HashSet<int> { origin.Port } } }
                : options);
            await network.WaitForClientPartnerAsync();
            return new CachingExit(network, origin);
        }
        catch
        {
            if (network is not null) await network.DisposeAsync();
            await origin.DisposeAsync();
            throw;
        }
    }

    /// <summary>Has two circuits fetch each of <paramref name="paths"/>, and waits until the cache holds them all.</summary>
    public async Task StoreAsync(params string[] paths)
    {
        int before = Cache.Store.Count;
        await FetchAsync("alice", paths);
        await FetchAsync("bob", paths);
        await Eventually.WaitUntilAsync(() => Cache.Store.Count == before + paths.Length, TimeSpan.FromSeconds(10), $"{before + paths.Length} entries in the cache");
    }

    /// <summary>Fetches <paramref name="paths"/> on one connection of the circuit of SOCKS user <paramref name="user"/>.</summary>
    public async Task FetchAsync(string user, params string[] paths)
    {
        var arguments = new List<string> { "--silent", "--show-error", "--fail", "--max-time", "30", "--socks5-hostname", Network.Socks.ToString(), "--proxy-user", $"{user}:x" };
        foreach (var path in paths) arguments.AddRange(["--output", "/dev/null", Url(path)]);
        var (exitCode, _, errors) = await Curl.RunAsync([.. arguments]);
        Assert.True(exitCode == 0, $"curl failed ({exitCode}): {errors}");
    }

    public async ValueTask DisposeAsync()
    {
        await Network.DisposeAsync();
        await Origin.DisposeAsync();
    }
}
