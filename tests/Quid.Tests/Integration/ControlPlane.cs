using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Node;
using Quid.Node.Control;
using Quid.Node.Metrics;

namespace Quid.Tests.Integration;

/// <summary>The control API of a test node, started the way <c>quid run</c> starts it, on a free loopback port.</summary>
internal sealed class ControlPlane : IAsyncDisposable
{
    private ControlPlane(NodeMonitor monitor, NodeMetrics metrics, ControlServer server, string dataDirectory)
    {
        Monitor = monitor;
        Metrics = metrics;
        Server = server;
        DataDirectory = dataDirectory;
    }

    public NodeMonitor Monitor { get; }
    public NodeMetrics Metrics { get; }
    public ControlServer Server { get; }
    public string DataDirectory { get; }
    public string BaseUrl => $"http://{Server.EndPoint}";
    public string Token => ControlCookie.Hex(ControlCookie.Read(DataDirectory));

    public static async Task<ControlPlane> StartAsync(QuidNode node, string dataDirectory)
    {
        var monitor = new NodeMonitor(node, TimeProvider.System, NullLogger.Instance);
        await monitor.StartAsync();
        var metrics = new NodeMetrics(node, monitor);
        var server = await ControlServer.StartAsync(node, monitor, metrics, new IPEndPoint(IPAddress.Loopback, 0), dataDirectory, NullLoggerFactory.Instance);
        return new ControlPlane(monitor, metrics, server, dataDirectory);
    }

    /// <summary>curl with the cookie (or another token, or none) as the bearer token: status code and body.</summary>
    public async Task<(int Status, string Body)> CurlAsync(string path, string? token, params string[] more)
    {
        string[] auth = token is null ? [] : ["-H", $"Authorization: Bearer {token}"];
        var (code, output, errors) = await Curl.RunAsync(["--silent", "--show-error", "--max-time", "10", "--write-out", "\n%{http_code}", .. auth, .. more, BaseUrl + path]);
        Assert.True(code == 0, $"curl failed ({code}): {errors}");
        int split = output.LastIndexOf('\n');
        return (int.Parse(output[(split + 1)..], System.Globalization.CultureInfo.InvariantCulture), output[..split]);
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        Metrics.Dispose();
        await Monitor.DisposeAsync();
    }
}
