using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Node;
using Quid.Node.Control;

namespace Quid.Tests.Integration;

/// <summary>The control API of a test node, started the way <c>quid run</c> starts it, on a free loopback port.</summary>
internal sealed class ControlPlane : IAsyncDisposable
{
    private readonly NodeControl _control;

    private ControlPlane(NodeControl control, string dataDirectory)
    {
        _control = control;
        DataDirectory = dataDirectory;
    }

    public NodeMonitor Monitor => _control.Monitor;
    public ControlServer Server => _control.Server!;
    public string DataDirectory { get; }
    public string BaseUrl => $"http://{Server.EndPoint}";
    public string Token => ControlCookie.Hex(ControlCookie.Read(DataDirectory));

    public static async Task<ControlPlane> StartAsync(QuidNode node, string dataDirectory, ControlOptions? options = null)
    {
        var control = await NodeControl.StartAsync(node, new IPEndPoint(IPAddress.Loopback, 0), anyPortIfTaken: false, dataDirectory, NullLoggerFactory.Instance, TimeProvider.System, options);
        return new ControlPlane(control, dataDirectory);
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

    public ValueTask DisposeAsync() => _control.DisposeAsync();
}
