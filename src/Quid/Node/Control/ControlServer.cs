using System.Net;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Quid.Node.Metrics;

namespace Quid.Node.Control;

/// <summary>
/// The control API, the dashboard and the metrics, on one loopback port (127.0.0.1:9051 by
/// default, like Tor's control port). Every answer with data in it needs the cookie from the data
/// directory as a bearer token; only the dashboard's own page, script and style (which hold no
/// data) are served without it, so a browser can load the page and then ask for the token. A
/// request naming any host but a loopback one is refused, so a web page cannot reach the API by
/// rebinding its own name to 127.0.0.1. Only the services' and the cache's paths change anything, and only with
/// the cookie; a web page of another origin cannot send it (the bearer header needs a CORS
/// preflight, which this server never grants).
/// </summary>
public sealed partial class ControlServer : IAsyncDisposable
{
    private static readonly Dictionary<string, (string Resource, string ContentType)> Assets = new(StringComparer.Ordinal)
    {
        ["/"] = ("Quid.Dashboard.index.html", "text/html; charset=utf-8"),
        ["/dashboard.js"] = ("Quid.Dashboard.dashboard.js", "text/javascript; charset=utf-8"),
        ["/dashboard.css"] = ("Quid.Dashboard.dashboard.css", "text/css; charset=utf-8"),
    };

    private readonly WebApplication _app;
    private readonly QuidNode _node;
    private readonly NodeMonitor _monitor;
    private readonly NodeMetrics _metrics;
    private readonly string _dataDirectory;
    private readonly byte[] _token;
    private readonly ControlOptions _options;

    private ControlServer(WebApplication app, QuidNode node, NodeMonitor monitor, NodeMetrics metrics, string dataDirectory, byte[] cookie, ControlOptions options)
    {
        _options = options;
        _app = app;
        _node = node;
        _monitor = monitor;
        _metrics = metrics;
        _dataDirectory = dataDirectory;
        _token = Encoding.ASCII.GetBytes(ControlCookie.Hex(cookie));
    }

    public IPEndPoint EndPoint { get; private set; } = new(IPAddress.Loopback, 0);

    /// <summary>The dashboard's address with the token in its fragment, which a browser never sends to the server.</summary>
    public static string DashboardUrl(IPEndPoint endPoint, byte[] cookie) => $"http://{endPoint}/#token={ControlCookie.Hex(cookie)}";

    /// <summary>Writes a new cookie, listens on <paramref name="endPoint"/> (loopback only) and records the address it got.</summary>
    public static async Task<ControlServer> StartAsync(QuidNode node, NodeMonitor monitor, NodeMetrics metrics, IPEndPoint endPoint, string dataDirectory,
        ILoggerFactory loggers, ControlOptions? options = null, CancellationToken cancellationToken = default)
    {
        if (!IPAddress.IsLoopback(endPoint.Address))
            throw new ArgumentException($"The control API listens on loopback only, not {endPoint}.", nameof(endPoint));
        options ??= new ControlOptions();
        var cookie = ControlCookie.Create(dataDirectory);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "Quid" });
        builder.Services.AddSingleton(loggers);
        var perSource = new PerSourceLimit(options.MaxConnectionsPerSource);
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(endPoint, listen => listen.Use(perSource.Apply));
            kestrel.AddServerHeader = false;
            // No request has a body but the services' POSTs, which raise this once they are authorized.
            kestrel.Limits.MaxRequestBodySize = 0;
            kestrel.Limits.MaxConcurrentConnections = options.MaxConnections;
            // Kestrel keeps a silent connection for 130 s by default: long enough for a few to lock out the CLI.
            kestrel.Limits.KeepAliveTimeout = options.IdleTimeout;
            kestrel.Limits.RequestHeadersTimeout = options.IdleTimeout;
        });
        var app = builder.Build();
        var server = new ControlServer(app, node, monitor, metrics, dataDirectory, cookie, options);
        app.Run(server.HandleAsync);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.EndPoint = IPEndPoint.Parse(new Uri(address).Authority);
        ControlCookie.WriteOwnerOnly(Path.Combine(dataDirectory, ControlCookie.EndPointFileName), Encoding.ASCII.GetBytes(server.EndPoint.ToString()));
        return server;
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        response.Headers.CacheControl = "no-store";
        response.Headers.XContentTypeOptions = "nosniff";
        if (!IsLoopbackHost(request.Host.Host))
        {
            await ErrorAsync(response, StatusCodes.Status421MisdirectedRequest, "The control API answers only requests addressed to a loopback host.").ConfigureAwait(false);
            return;
        }
        string path = request.Path.Value ?? "/";
        var methods = MethodsFor(path);
        if (!methods.Contains(request.Method, StringComparer.OrdinalIgnoreCase))
        {
            response.Headers.Allow = string.Join(", ", methods);
            await ErrorAsync(response, StatusCodes.Status405MethodNotAllowed, $"{path} answers {string.Join(" and ", methods)} only.").ConfigureAwait(false);
            return;
        }
        if (Assets.TryGetValue(path, out var asset))
        {
            await AssetAsync(response, asset.Resource, asset.ContentType).ConfigureAwait(false);
            return;
        }
        if (!Authorized(request))
        {
            response.Headers.WWWAuthenticate = "Bearer realm=\"quid\"";
            await ErrorAsync(response, StatusCodes.Status401Unauthorized,
                $"Send the control cookie ({ControlCookie.FileName} in the data directory, hex-encoded) as 'Authorization: Bearer <hex>'.").ConfigureAwait(false);
            return;
        }
        if (IsServicesPath(path) && !(path == ServicesPath && (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method))))
        {
            await ServicesAsync(context, path).ConfigureAwait(false);
            return;
        }
        if (path == StorePath || path.StartsWith(StorePrefix, StringComparison.Ordinal) || path == HostedPath)
        {
            await StoreAsync(context, path).ConfigureAwait(false);
            return;
        }
        if (IsProgramsPath(path))
        {
            await ProgramsAsync(context, path).ConfigureAwait(false);
            return;
        }
        if (path is CreditsPath or GivePath or TakePath)
        {
            await CreditsAsync(context, path).ConfigureAwait(false);
            return;
        }
        if (IsCachePath(path))
        {
            await CacheAsync(context, path).ConfigureAwait(false);
            return;
        }
        if (path == "/metrics")
        {
            response.ContentType = PrometheusText.ContentType;
            await response.WriteAsync(PrometheusText.Collect(_metrics.Meter), context.RequestAborted).ConfigureAwait(false);
            return;
        }
        (object Value, JsonTypeInfo Type)? answer = path switch
        {
            "/api/id" => (ControlViews.Id(_node), ControlJson.Default.IdReport),
            "/api/status" => (await ControlViews.StatusAsync(_node, _monitor).ConfigureAwait(false), ControlJson.Default.StatusReport),
            "/api/peers" => (await ControlViews.PeersAsync(_node).ConfigureAwait(false), ControlJson.Default.IReadOnlyListPeerReport),
            "/api/circuits" => (ControlViews.Circuits(_node), ControlJson.Default.CircuitsReport),
            "/api/ledger" => (await ControlViews.LedgerAsync(_node, _dataDirectory).ConfigureAwait(false), ControlJson.Default.IReadOnlyListLedgerRow),
            "/api/throughput" => (_monitor.History, ControlJson.Default.IReadOnlyListThroughputSample),
            ServicesPath => (ControlViews.Services(_node), ControlJson.Default.IReadOnlyListServiceReport),
            _ => null,
        };
        if (answer is not { } found)
        {
            await ErrorAsync(response, StatusCodes.Status404NotFound, $"No such endpoint: {path}. Try /api/status, /api/peers, /api/circuits, /api/ledger, /api/services, /api/cache, /api/credits, /api/store, /api/hosted, /api/programs, /api/mail/box, /api/id, /api/throughput or /metrics.").ConfigureAwait(false);
            return;
        }
        response.ContentType = "application/json; charset=utf-8";
        await JsonSerializer.SerializeAsync(response.Body, found.Value, found.Type, context.RequestAborted).ConfigureAwait(false);
    }

    private static bool IsLoopbackHost(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var address) && IPAddress.IsLoopback(address));

    /// <summary>Compares in constant time, so the token cannot be guessed a byte at a time from how long a refusal takes.</summary>
    private bool Authorized(HttpRequest request)
    {
        string header = request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return false;
        var presented = Encoding.ASCII.GetBytes(header[scheme.Length..].Trim().ToLowerInvariant());
        return CryptographicOperations.FixedTimeEquals(presented, _token);
    }

    private static async Task AssetAsync(HttpResponse response, string resource, string contentType)
    {
        response.ContentType = contentType;
        // The page loads only its own script and style, and talks only to this server. Images may be
        // blob: URLs too: the exit cache's previews, fetched with the token (an <img> cannot send it).
        response.Headers.ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
        response.Headers["Referrer-Policy"] = "no-referrer";
        await using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"The dashboard's {resource} is missing from the assembly.");
        await stream.CopyToAsync(response.Body).ConfigureAwait(false);
    }

    private static async Task ErrorAsync(HttpResponse response, int status, string message)
    {
        response.StatusCode = status;
        response.ContentType = "application/json; charset=utf-8";
        await JsonSerializer.SerializeAsync(response.Body, new ErrorReport(message), ControlJson.Default.ErrorReport).ConfigureAwait(false);
    }

    /// <summary>
    /// Closes a connection at once when its source address already has its share open, so that
    /// one source (one local user) cannot take every connection the API serves.
    /// </summary>
    private sealed class PerSourceLimit(int maxPerSource)
    {
        private readonly Dictionary<IPAddress, int> _open = [];

        public ConnectionDelegate Apply(ConnectionDelegate next) => async connection =>
        {
            var source = (connection.RemoteEndPoint as IPEndPoint)?.Address;
            if (source is null)
            {
                await next(connection).ConfigureAwait(false);
                return;
            }
            lock (_open)
            {
                int open = _open.GetValueOrDefault(source);
                if (open >= maxPerSource)
                {
                    connection.Abort();
                    return;
                }
                _open[source] = open + 1;
            }
            try
            {
                await next(connection).ConfigureAwait(false);
            }
            finally
            {
                lock (_open)
                {
                    if (--_open[source] == 0) _open.Remove(source);
                }
            }
        };
    }

    public async ValueTask DisposeAsync()
    {
        File.Delete(Path.Combine(_dataDirectory, ControlCookie.EndPointFileName));
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
