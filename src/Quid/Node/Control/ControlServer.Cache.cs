using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Quid.Cache;

namespace Quid.Node.Control;

/// <summary>
/// The exit cache as its owner sees it: <c>GET /api/cache</c> (the figures and the entries, with
/// <c>q</c>, <c>type</c> and <c>host</c> filters), <c>GET /api/cache/KEY</c> and its
/// <c>/body</c>, <c>POST /api/cache/purge?pattern=P</c> and <c>POST /api/cache/wipe</c>. A body
/// is sent with a sandboxing policy: it is a stranger's content, never the dashboard's.
/// </summary>
public sealed partial class ControlServer
{
    private const string CachePath = "/api/cache";
    private const string CachePrefix = CachePath + "/";
    private const string PurgePath = CachePrefix + "purge";
    private const string WipePath = CachePrefix + "wipe";

    private static bool IsCachePath(string path) => path == CachePath || path.StartsWith(CachePrefix, StringComparison.Ordinal);

    private async Task CacheAsync(HttpContext context, string path)
    {
        var response = context.Response;
        var cache = _node.Cache;
        if (path == CachePath)
        {
            var query = context.Request.Query;
            await JsonAsync(context, StatusCodes.Status200OK, CacheViews.Report(cache, query["q"], query["type"], query["host"], CacheViews.MaxListed, DateTimeOffset.UtcNow),
                ControlJson.Default.CacheReport).ConfigureAwait(false);
            return;
        }
        if (cache is null)
        {
            await ErrorAsync(response, StatusCodes.Status404NotFound, "This node keeps no exit cache: start it with --cache 2GiB (or cache = \"2GiB\" in quid.toml).").ConfigureAwait(false);
            return;
        }
        if (path is PurgePath or WipePath)
        {
            string? pattern = context.Request.Query["pattern"];
            int removed = path == WipePath ? cache.Store.Purge(_ => true)
                : string.IsNullOrWhiteSpace(pattern) ? cache.Store.Purge(e => !CacheViews.Fresh(e, DateTimeOffset.UtcNow))
                : cache.Store.Purge(new CachePattern(pattern).Matches);
            await JsonAsync(context, StatusCodes.Status200OK, new CachePurgeReport(removed), ControlJson.Default.CachePurgeReport).ConfigureAwait(false);
            return;
        }
        string rest = path[CachePrefix.Length..];
        bool body = rest.EndsWith("/body", StringComparison.Ordinal);
        string key = body ? rest[..^"/body".Length] : rest;
        var entry = CacheViews.Find(cache.Store.Entries(), key, out string? problem);
        if (entry is null)
        {
            await ErrorAsync(response, StatusCodes.Status404NotFound, problem!).ConfigureAwait(false);
            return;
        }
        if (!body)
        {
            await JsonAsync(context, StatusCodes.Status200OK, CacheViews.Entry(entry, DateTimeOffset.UtcNow, withHead: true), ControlJson.Default.CacheEntryReport).ConfigureAwait(false);
            return;
        }
        await using var stream = cache.Store.OpenBody(entry);
        if (stream is null)
        {
            await ErrorAsync(response, StatusCodes.Status410Gone, $"The body of {entry.Url} was not whole any more, and is dropped.").ConfigureAwait(false);
            return;
        }
        response.ContentType = entry.Head.Values("Content-Type").FirstOrDefault() ?? "application/octet-stream";
        response.ContentLength = entry.BodySize;
        foreach (var coding in entry.Head.Values("Content-Encoding")) response.Headers.ContentEncoding = coding;
        // Shown to its owner, never run as the dashboard: no script, no requests, no frames.
        response.Headers.ContentSecurityPolicy = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'";
        await stream.CopyToAsync(response.Body, context.RequestAborted).ConfigureAwait(false);
    }
}
