using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Quid.Services;

namespace Quid.Node.Control;

/// <summary>
/// The services the node publishes under session addresses: <c>GET /api/services</c> lists them,
/// <c>POST /api/services</c> and <c>POST /api/shares</c> publish one (what <c>quid serve</c> and
/// <c>quid share</c> send), <c>DELETE /api/services/NAME</c> stops one. A refusal says what to change.
/// </summary>
public sealed partial class ControlServer
{
    private const string ServicesPath = "/api/services";
    private const string SharesPath = "/api/shares";
    private const string AccessPath = "/api/access";
    private const string ServicePrefix = ServicesPath + "/";
    private const string AccessPrefix = AccessPath + "/";
    private const string FollowsPath = "/api/follows";
    private const string FollowPrefix = FollowsPath + "/";
    /// <summary>A request to publish is a few names and paths: more than this is refused before it is read.</summary>
    private const long MaxBodyBytes = 64 << 10;

    private static readonly string[] ReadMethods = [HttpMethods.Get, HttpMethods.Head];

    private static string[] MethodsFor(string path) => path switch
    {
        PurgePath or WipePath or GivePath or TakePath or CheckPath or SendPath or FetchPath => [HttpMethods.Post],
        ProgramsPath or BoxPath => [HttpMethods.Get, HttpMethods.Head, HttpMethods.Post],
        _ when path.StartsWith(ProgramsPrefix, StringComparison.Ordinal) && path.EndsWith(TopUpSuffix, StringComparison.Ordinal) => [HttpMethods.Post],
        _ when path.StartsWith(ProgramsPrefix, StringComparison.Ordinal) => [HttpMethods.Get, HttpMethods.Delete],
        StorePath => [HttpMethods.Get, HttpMethods.Head, HttpMethods.Post],
        _ when path.StartsWith(StorePrefix, StringComparison.Ordinal) && path.EndsWith(RenewSuffix, StringComparison.Ordinal) => [HttpMethods.Post],
        _ when path.StartsWith(StorePrefix, StringComparison.Ordinal) => [HttpMethods.Get, HttpMethods.Delete],
        ServicesPath => [HttpMethods.Get, HttpMethods.Head, HttpMethods.Post],
        SharesPath or AccessPath => [HttpMethods.Post],
        FollowsPath => [HttpMethods.Get, HttpMethods.Head, HttpMethods.Post],
        _ when path.StartsWith(ServicePrefix, StringComparison.Ordinal) => [HttpMethods.Get, HttpMethods.Head, HttpMethods.Delete],
        _ when path.StartsWith(FollowPrefix, StringComparison.Ordinal) || path.StartsWith(AccessPrefix, StringComparison.Ordinal) => [HttpMethods.Delete],
        _ => ReadMethods,
    };

    private static bool IsServicesPath(string path) =>
        path is ServicesPath or SharesPath or AccessPath or FollowsPath
        || path.StartsWith(ServicePrefix, StringComparison.Ordinal) || path.StartsWith(FollowPrefix, StringComparison.Ordinal)
        || path.StartsWith(AccessPrefix, StringComparison.Ordinal);

    /// <summary>Answers an authorized request to publish, show or stop a service; the method is one <see cref="MethodsFor"/> allows.</summary>
    private async Task ServicesAsync(HttpContext context, string path)
    {
        var response = context.Response;
        if (path.StartsWith(ServicePrefix, StringComparison.Ordinal))
        {
            string name = path[ServicePrefix.Length..];
            if (HttpMethods.IsDelete(context.Request.Method))
            {
                if (await _node.UnpublishAsync(name).ConfigureAwait(false)) response.StatusCode = StatusCodes.Status204NoContent;
                else await NoSuchServiceAsync(response, name).ConfigureAwait(false);
                return;
            }
            if (_node.Services.FirstOrDefault(s => s.Name == name) is { } found && ControlViews.Service(found) is { } report)
                await JsonAsync(context, StatusCodes.Status200OK, report).ConfigureAwait(false);
            else await NoSuchServiceAsync(response, name).ConfigureAwait(false);
            return;
        }

        if (path == AccessPath)
        {
            await AddAccessAsync(context).ConfigureAwait(false);
            return;
        }
        if (path.StartsWith(AccessPrefix, StringComparison.Ordinal))
        {
            string address = path[AccessPrefix.Length..];
            if (_node.RemoveAccess(address)) response.StatusCode = StatusCodes.Status204NoContent;
            else await ErrorAsync(response, StatusCodes.Status404NotFound, $"This node holds no access key for {address}.").ConfigureAwait(false);
            return;
        }
        if (path == FollowsPath || path.StartsWith(FollowPrefix, StringComparison.Ordinal))
        {
            await FollowsAsync(context, path).ConfigureAwait(false);
            return;
        }
        Func<Task<HostedService>>? publish = path == SharesPath
            ? await ReadShareAsync(context).ConfigureAwait(false)
            : await ReadServiceAsync(context).ConfigureAwait(false);
        if (publish is null) return;
        HostedService service;
        try
        {
            service = await publish().ConfigureAwait(false);
        }
        catch (ServiceNameTakenException e)
        {
            await ErrorAsync(response, StatusCodes.Status409Conflict, e.Message).ConfigureAwait(false);
            return;
        }
        catch (ArgumentException e)
        {
            // The share's content was refused.
            await ErrorAsync(response, StatusCodes.Status400BadRequest, e.Message).ConfigureAwait(false);
            return;
        }
        catch (NodeStateException e)
        {
            await ErrorAsync(response, StatusCodes.Status500InternalServerError, e.Message).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away while waiting; the service is published all the same.
            return;
        }
        if (ControlViews.Service(service) is not { } published)
        {
            await ErrorAsync(response, StatusCodes.Status404NotFound, $"The service '{service.Name}' was removed before it was published.").ConfigureAwait(false);
            return;
        }
        response.Headers.Location = ServicePrefix + Uri.EscapeDataString(service.Name);
        await JsonAsync(context, StatusCodes.Status201Created, published).ConfigureAwait(false);
    }

    private async Task<Func<Task<HostedService>>?> ReadServiceAsync(HttpContext context)
    {
        const string form = """{"name": "web", "target": "127.0.0.1:8080", "kind": "stable|ephemeral|moving"}""";
        var request = await ReadBodyAsync(context, ControlJson.Default.ServiceRequest, form).ConfigureAwait(false);
        if (request is null) return null;
        string? kindProblem = CheckKind(request.Kind, out var kind);
        string? problem = CheckName(request.Name) ?? kindProblem;
        var target = problem is null ? ParseTarget(request.Target, out problem) : null;
        if (await RefusedAsync(context.Response, problem).ConfigureAwait(false)) return null;
        var spec = new ServiceSpec(request.Name!, target!, kind, request.Private);
        return () => _node.PublishAsync(spec, _options.PublishWait, context.RequestAborted);
    }

    private async Task<Func<Task<HostedService>>?> ReadShareAsync(HttpContext context)
    {
        const string form = """{"name": "files", "paths": ["/absolute/path", …], "receive": null, "kind": "stable|ephemeral|moving"}""";
        var request = await ReadBodyAsync(context, ControlJson.Default.ShareRequest, form).ConfigureAwait(false);
        if (request is null) return null;
        var paths = request.Paths ?? [];
        string? kindProblem = CheckKind(request.Kind, out var kind);
        string? problem = CheckName(request.Name) ?? kindProblem ?? (paths.Count, request.Receive) switch
        {
            (0, null) => "Nothing to share: give the paths of files or folders to share, or a receive folder to take uploads in.",
            (> 0, not null) => "A share either serves files or takes uploads: give paths, or a receive folder, not both.",
            _ => null,
        };
        foreach (var path in request.Receive is null ? paths : [request.Receive])
        {
            if (problem is not null) break;
            if (string.IsNullOrWhiteSpace(path) || !Path.IsPathFullyQualified(path))
                problem = $"'{path}' is not an absolute path: the node does not know your working directory, so give full paths (quid share makes them so).";
            else if (request.Receive is null && !File.Exists(path) && !Directory.Exists(path))
                problem = $"{path} does not exist (or the node's user cannot see it): check the path.";
            else if (request.Receive is not null && File.Exists(path))
                problem = $"{path} is a file: the receive folder must be a folder (it is made if missing).";
        }
        if (await RefusedAsync(context.Response, problem).ConfigureAwait(false)) return null;
        var spec = new ShareSpec(request.Name!, paths, request.Receive, kind, request.Private);
        return () => _node.PublishShareAsync(spec, _options.PublishWait, context.RequestAborted);
    }

    /// <summary>
    /// <c>POST /api/access</c>: keeps a private service's access key for the proxies, across
    /// restarts; 200, or 400 naming what is wrong with the address or the key. <c>DELETE
    /// /api/access/ADDRESS</c> forgets it.
    /// </summary>
    private async Task AddAccessAsync(HttpContext context)
    {
        const string form = """{"address": "<56 characters>.quid", "key": "quid-secret-…"}""";
        var request = await ReadBodyAsync(context, ControlJson.Default.AccessRequest, form).ConfigureAwait(false);
        if (request is null) return;
        try
        {
            _node.AddAccess(request.Address ?? "", request.Key ?? "");
        }
        catch (FormatException e)
        {
            await ErrorAsync(context.Response, StatusCodes.Status400BadRequest, e.Message).ConfigureAwait(false);
            return;
        }
        await JsonAsync(context, StatusCodes.Status200OK, new AccessReport(SessionAddress.Parse(request.Address!).ToString()), ControlJson.Default.AccessReport).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>GET /api/follows</c> lists the moving services followed; <c>POST /api/follows</c> follows
    /// one (200, or 400 naming what is wrong with the name, secret or key); <c>DELETE
    /// /api/follows/NAME</c> stops (204, or 404).
    /// </summary>
    private async Task FollowsAsync(HttpContext context, string path)
    {
        var response = context.Response;
        if (path.StartsWith(FollowPrefix, StringComparison.Ordinal))
        {
            string name = path[FollowPrefix.Length..];
            if (_node.Unfollow(name)) response.StatusCode = StatusCodes.Status204NoContent;
            else await ErrorAsync(response, StatusCodes.Status404NotFound, $"This node follows nothing named '{name}': quid follows lists what it follows.").ConfigureAwait(false);
            return;
        }
        if (!HttpMethods.IsPost(context.Request.Method))
        {
            await JsonAsync(context, StatusCodes.Status200OK, ControlViews.Follows(_node), ControlJson.Default.IReadOnlyListFollowReport).ConfigureAwait(false);
            return;
        }
        const string form = """{"name": "blog", "secret": "quid-secret-…", "key": null}""";
        var request = await ReadBodyAsync(context, ControlJson.Default.FollowRequest, form).ConfigureAwait(false);
        if (request is null) return;
        try
        {
            _node.Follow(request.Name ?? "", request.Secret ?? "", request.Key);
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            await ErrorAsync(response, StatusCodes.Status400BadRequest, e.Message).ConfigureAwait(false);
            return;
        }
        var followed = ControlViews.Follows(_node).Single(f => f.Name.Equals(request.Name, StringComparison.OrdinalIgnoreCase));
        await JsonAsync(context, StatusCodes.Status200OK, followed, ControlJson.Default.FollowReport).ConfigureAwait(false);
    }

    /// <summary>The body as <paramref name="type"/>; null, with the refusal sent, if it is not that.</summary>
    private static async Task<T?> ReadBodyAsync<T>(HttpContext context, JsonTypeInfo<T> type, string form, long maxBytes = MaxBodyBytes) where T : class
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = maxBytes;
        try
        {
            var body = await JsonSerializer.DeserializeAsync(context.Request.Body, type, context.RequestAborted).ConfigureAwait(false);
            if (body is not null) return body;
        }
        catch (JsonException)
        {
            // Answered below.
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await ErrorAsync(context.Response, e.StatusCode, $"The request is larger than {maxBytes >> 10} KiB{(maxBytes == MaxBodyBytes ? "; a request to publish names a few paths at most" : "")}.").ConfigureAwait(false);
            return null;
        }
        await ErrorAsync(context.Response, StatusCodes.Status400BadRequest, $"Send a JSON object of the form {form}.").ConfigureAwait(false);
        return null;
    }

    private static string? CheckName(string? name)
    {
        if (string.IsNullOrEmpty(name)) return "Give the service a name: 1 to 64 letters, digits and dashes.";
        try
        {
            ServiceNames.Check(name);
            return null;
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }
    }

    private static string? CheckKind(string? text, out AddressKind kind)
    {
        kind = AddressKind.Ephemeral;
        if (text is null) return null;
        foreach (var candidate in Enum.GetValues<AddressKind>())
        {
            if (!candidate.ToString().Equals(text, StringComparison.OrdinalIgnoreCase)) continue;
            kind = candidate;
            return null;
        }
        return $"'{text}' is not a kind of address: use stable (one address for good), ephemeral (a new one each time) or moving (a new one each day, followed with a secret).";
    }

    /// <summary>
    /// Refuses the request with <paramref name="problem"/> (400); false if there is none. A name
    /// taken by another service is the node's to refuse (409): asking again for the same service
    /// gets it.
    /// </summary>
    private static async Task<bool> RefusedAsync(HttpResponse response, string? problem)
    {
        if (problem is null) return false;
        await ErrorAsync(response, StatusCodes.Status400BadRequest, problem).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// <c>host:port</c>, the host an IP address (in brackets for IPv6) or <c>localhost</c>, which
    /// is 127.0.0.1: where the node connects for each client's stream. Any address is taken; a
    /// service elsewhere on the LAN may be published as well as one on this machine.
    /// </summary>
    internal static IPEndPoint? ParseTarget(string? text, out string? problem)
    {
        problem = $"'{text}' is not host:port: give the local service's IP address and port, such as 127.0.0.1:8080 ([::1]:8080 for IPv6; localhost means 127.0.0.1).";
        if (string.IsNullOrWhiteSpace(text)) return null;
        int colon = text.LastIndexOf(':');
        if (colon <= 0) return null;
        string host = text[..colon];
        if (!int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535) return null;
        IPAddress? address;
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) address = IPAddress.Loopback;
        else if (host.StartsWith('[') && host.EndsWith(']')) address = IPAddress.TryParse(host[1..^1], out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? v6 : null;
        else address = !host.Contains(':', StringComparison.Ordinal) && IPAddress.TryParse(host, out var v4) ? v4 : null;
        if (address is null) return null;
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
        {
            problem = $"{host} is where a server listens, not an address to connect to: give 127.0.0.1:{port} for a service on this machine.";
            return null;
        }
        problem = null;
        return new IPEndPoint(address, port);
    }

    private static Task NoSuchServiceAsync(HttpResponse response, string name) =>
        ErrorAsync(response, StatusCodes.Status404NotFound, $"No service named '{name}' is published here (quid services lists them).");

    private static Task JsonAsync(HttpContext context, int status, ServiceReport report) => JsonAsync(context, status, report, ControlJson.Default.ServiceReport);

    private static async Task JsonAsync<T>(HttpContext context, int status, T report, JsonTypeInfo<T> type)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=utf-8";
        await JsonSerializer.SerializeAsync(context.Response.Body, report, type, context.RequestAborted).ConfigureAwait(false);
    }
}
