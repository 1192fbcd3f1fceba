using System.Buffers;
using System.Text;
using Microsoft.Extensions.Logging;
using Quid.Wire.Http;

namespace Quid.Services.Share;

/// <summary>
/// The file server behind <c>quid share</c>: HTTP/1.1 over any duplex stream (a connection through
/// a circuit, or a loopback socket in the tests), for curl, wget and browsers.
/// GET and HEAD serve <see cref="SharedFiles"/>: folder listings (HTML, or JSON on
/// <c>Accept: application/json</c> or <c>?format=json</c>) and files streamed from disk, with
/// validators, conditional requests and single byte ranges so downloads resume. An
/// <see cref="UploadInbox"/> takes PUT (<c>curl -T</c>) and form uploads (POST, multipart).
/// </summary>
/// <remarks>
/// Whatever a client sends, <see cref="ServeAsync"/> answers or closes and returns: a malformed
/// request gets its 4xx and the connection ends; a slow one is timed out; nothing is read or
/// held beyond the limits in <see cref="ShareOptions"/>, and every file opened is closed by the
/// time the exchange ends.
/// </remarks>
public sealed class ShareServer
{
    /// <summary>Files go to the client in chunks of this, from a pooled buffer.</summary>
    public const int ChunkSize = 64 * 1024;

    private readonly ShareOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public ShareServer(ShareContent content, TimeProvider time, ILogger logger, ShareOptions? options = null)
    {
        Content = content;
        _time = time;
        _logger = logger;
        _options = options ?? new ShareOptions();
    }

    public ShareContent Content { get; }

    /// <summary>
    /// Serves requests on <paramref name="connection"/>, one after another, until the client
    /// closes, a request asks to close or must end the connection, a timeout passes, or
    /// <paramref name="cancellationToken"/> is cancelled. Returns then, without throwing; the caller closes the stream.
    /// </summary>
    public async Task ServeAsync(Stream connection, CancellationToken cancellationToken)
    {
        using var client = new ShareConnection(connection, _options, _time, cancellationToken);
        var parser = new RequestHeadParser(_options.MaxHeadSize, _options.MaxHeaderFields);
        try
        {
            for (int served = 1; ; served++)
            {
                if (await client.ReadHeadAsync(parser).ConfigureAwait(false) is not { } parse) return;
                if (parse.Head is not { } head)
                {
                    _logger.LogDebug("Share request refused ({Status}): {Reason}", parse.Status, parse.Error);
                    await client.SendErrorAsync(parse.Status, parse.Error!, headOnly: false, close: true).ConfigureAwait(false);
                    return;
                }
                bool keepAlive = head.WantsKeepAlive() && served < _options.MaxRequestsPerConnection;
                if (!await ExchangeAsync(client, head, keepAlive).ConfigureAwait(false)) return;
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The client went away, stalled, or the server is stopping: nothing left to say.
        }
    }

    /// <summary>Answers one request; true if the connection may carry another.</summary>
    private async Task<bool> ExchangeAsync(ShareConnection client, HttpRequestHead head, bool keepAlive)
    {
        bool headOnly = head.Method == "HEAD";
        try
        {
            var body = BodyReader.For(head, client);
            if (head.MinorVersion >= 1 && head.Values("Host").Count() != 1) throw new ShareRefusal(400, "An HTTP/1.1 request needs one Host field.");
            var target = RequestTarget.Parse(head.Target);
            switch (head.Method)
            {
                case "GET" or "HEAD":
                    // A body on a GET is never read: the connection cannot be reused after it.
                    return await GetAsync(client, head, target, headOnly, keepAlive && !body.IsPresent).ConfigureAwait(false);
                case "PUT" or "POST" when Content is UploadInbox inbox:
                    return await UploadAsync(client, head, target, body, inbox, keepAlive).ConfigureAwait(false);
                default:
                    var allow = Content is UploadInbox ? "GET, HEAD, PUT, POST" : "GET, HEAD";
                    keepAlive &= !body.IsPresent;
                    await client.SendAsync(new Response(405).Field("Allow", allow).Field("Content-Type", "text/plain; charset=utf-8"),
                        Encoding.UTF8.GetBytes($"405 Method Not Allowed: this share answers {allow}.\n"), headOnly, !keepAlive).ConfigureAwait(false);
                    return keepAlive;
            }
        }
        catch (ShareRefusal refusal)
        {
            _logger.LogDebug("Share request refused ({Status}): {Reason}", refusal.Status, refusal.Message);
            await client.SendErrorAsync(refusal.Status, refusal.Message, headOnly, close: true).ConfigureAwait(false);
            return false;
        }
    }

    private async Task<bool> GetAsync(ShareConnection client, HttpRequestHead head, RequestTarget target, bool headOnly, bool keepAlive)
    {
        SharedFiles files;
        bool fromInbox = false;
        if (Content is UploadInbox inbox)
        {
            if (target.Segments.Count == 0 && !WantsJson(head, target))
            {
                var listing = inbox.Listed ? Pages.Sorted(TryList(inbox.Files, inbox.Files.Find([])) ?? []) : null;
                string host = head.Values("Host").FirstOrDefault() is { Length: > 0 } given ? RequestHeads.Utf8(given) : "this-address";
                return await SendPageAsync(client, 200, Pages.HtmlType, Pages.UploadForm(host, inbox.MaxUploadBytes, listing), headOnly, keepAlive).ConfigureAwait(false);
            }
            if (!inbox.Listed) return await NotFoundAsync(client, headOnly, keepAlive).ConfigureAwait(false);
            files = inbox.Files;
            fromInbox = true;
        }
        else
        {
            files = (SharedFiles)Content;
        }
        if (files.Find(target.Segments) is not { } entry) return await NotFoundAsync(client, headOnly, keepAlive).ConfigureAwait(false);
        if (entry.Kind == ShareEntryKind.File) return await SendFileAsync(client, head, target, entry, fromInbox, headOnly, keepAlive).ConfigureAwait(false);
        if (!target.EndsWithSlash && target.Segments.Count > 0)
        {
            // A folder's links are relative to it, so its address ends with a slash.
            string location = target.Path + "/" + (target.Query.Length > 0 ? "?" + target.Query : "");
            await client.SendAsync(new Response(301).Field("Location", location).Field("Content-Type", "text/plain; charset=utf-8"),
                Encoding.UTF8.GetBytes("301 Moved Permanently: a folder's address ends with a slash.\n"), headOnly, !keepAlive).ConfigureAwait(false);
            return keepAlive;
        }
        if (TryList(files, entry) is not { } listed)
        {
            await client.SendErrorAsync(403, "This folder may not be read.", headOnly, !keepAlive).ConfigureAwait(false);
            return keepAlive;
        }
        var entries = Pages.Sorted(listed);
        return WantsJson(head, target)
            ? await SendPageAsync(client, 200, Pages.JsonType, Pages.ListingJson(target, entries), headOnly, keepAlive).ConfigureAwait(false)
            : await SendPageAsync(client, 200, Pages.HtmlType, Pages.ListingHtml(target, entries), headOnly, keepAlive).ConfigureAwait(false);
    }

    /// <summary>
    /// Streams a file from disk in <see cref="ChunkSize"/> pieces, the head in the first. A file
    /// from an inbox is sandboxed: what uploaders sent must not run as a page of this share.
    /// </summary>
    private static async Task<bool> SendFileAsync(ShareConnection client, HttpRequestHead head, RequestTarget target, ShareEntry entry, bool fromInbox, bool headOnly, bool keepAlive)
    {
        FileStream file;
        try
        {
            file = new FileStream(entry.RealPath, new FileStreamOptions
            {
                Mode = FileMode.Open,
                Access = FileAccess.Read,
                Share = FileShare.ReadWrite | FileShare.Delete,
                Options = FileOptions.SequentialScan,
                BufferSize = 0,
            });
        }
        catch (UnauthorizedAccessException)
        {
            await client.SendErrorAsync(403, "This file may not be read.", headOnly, !keepAlive).ConfigureAwait(false);
            return keepAlive;
        }
        catch (IOException)
        {
            return await NotFoundAsync(client, headOnly, keepAlive).ConfigureAwait(false);
        }
        using (file)
        {
            long length = file.Length;
            DateTimeOffset modified = File.GetLastWriteTimeUtc(file.SafeFileHandle);
            string etag = Validators.ETag(length, modified);
            var response = (int status) => new Response(status)
                .Field("ETag", etag)
                .Field("Last-Modified", Validators.HttpDate(modified))
                .Field("Accept-Ranges", "bytes");
            if (Validators.NotModified(head, etag, modified))
            {
                await client.SendAsync(response(304), default, headOnly: true, !keepAlive).ConfigureAwait(false);
                return keepAlive;
            }
            var (outcome, start, count) = Validators.RangeValid(head, etag, modified) ? Validators.Range(head, length) : (RangeOutcome.Whole, 0, length);
            if (outcome == RangeOutcome.Unsatisfiable)
            {
                await client.SendAsync(response(416).Field("Content-Range", $"bytes */{length}").Field("Content-Type", "text/plain; charset=utf-8"),
                    Encoding.UTF8.GetBytes($"416 Range Not Satisfiable: the file has {length} bytes.\n"), headOnly, !keepAlive).ConfigureAwait(false);
                return keepAlive;
            }
            var ok = response(outcome == RangeOutcome.Partial ? 206 : 200).Field("Content-Type", MediaTypes.For(target.Segments[^1]));
            if (outcome == RangeOutcome.Partial) ok.Field("Content-Range", $"bytes {start}-{start + count - 1}/{length}");
            if (target.QueryValue("download") == "1") ok.Field("Content-Disposition", Response.Attachment(target.Segments[^1]));
            if (fromInbox) ok.Field("Content-Security-Policy", "sandbox");
            return await CopyAsync(client, ok.Head(count, !keepAlive), file, start, headOnly ? 0 : count).ConfigureAwait(false) && keepAlive;
        }
    }

    /// <summary>Writes the head, then <paramref name="count"/> bytes of the file from <paramref name="start"/>; false if the file ended early (it shrank meanwhile).</summary>
    private static async Task<bool> CopyAsync(ShareConnection client, string head, FileStream file, long start, long count)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            int filled = Encoding.ASCII.GetBytes(head, buffer);
            file.Position = start;
            long remaining = count;
            while (true)
            {
                while (remaining > 0 && filled < ChunkSize)
                {
                    int read = await file.ReadAsync(buffer.AsMemory(filled, (int)Math.Min(ChunkSize - filled, remaining)), client.Token).ConfigureAwait(false);
                    if (read == 0) break;
                    filled += read;
                    remaining -= read;
                }
                await client.WriteAsync(buffer.AsMemory(0, filled)).ConfigureAwait(false);
                // Short of the promised length, the client can only learn of it by the connection closing.
                if (filled < ChunkSize) break;
                filled = 0;
            }
            await client.FlushAsync().ConfigureAwait(false);
            return remaining == 0;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Stores what a PUT or a form sends. Every file is written under a temporary name and only
    /// renamed once the whole request has arrived, so a request stores all its files or none.
    /// </summary>
    private async Task<bool> UploadAsync(ShareConnection client, HttpRequestHead head, RequestTarget target, BodyReader body, UploadInbox inbox, bool keepAlive)
    {
        var expect = head.Values("Expect").ToList();
        if (expect.Count > 0 && (expect is not [var only] || !only.Equals("100-continue", StringComparison.OrdinalIgnoreCase)))
            throw new ShareRefusal(417, "The only expectation understood here is 100-continue.");
        string? requestedName = null;
        string? boundary = null;
        long limit = inbox.MaxUploadBytes;
        if (head.Method == "PUT")
        {
            if (target.Segments.Count == 0 || target.EndsWithSlash) throw new ShareRefusal(400, "Name the file in the path: curl -T FILE http://address/ puts it at /FILE.");
            requestedName = target.Segments[^1];
        }
        else
        {
            if (target.Segments.Count > 0) return await NotFoundAsync(client, headOnly: false, keepAlive && !body.IsPresent).ConfigureAwait(false);
            boundary = MultipartReader.Boundary(head.Values("Content-Type").FirstOrDefault())
                ?? throw new ShareRefusal(415, "Upload files as multipart/form-data (curl -F file=@FILE), or PUT them (curl -T FILE).");
            limit += MultipartReader.MaxOtherBytes;
        }
        if (body.Length > limit) throw TooLarge(inbox);
        if (expect.Count > 0 && head.MinorVersion >= 1 && body.IsPresent) await client.SendAsync(new Response(100), default, headOnly: true, close: false).ConfigureAwait(false);

        var parts = new List<(string Path, string Name)>();
        try
        {
            if (requestedName is not null) await ReceivePutAsync(inbox, body, requestedName, parts, client.Token).ConfigureAwait(false);
            else await ReceiveFormAsync(inbox, body, boundary!, parts, client.Token).ConfigureAwait(false);
            if (parts.Count == 0) throw new ShareRefusal(400, "The form held no file.");
            var stored = new List<string>(parts.Count);
            try
            {
                foreach (var (path, name) in parts) stored.Add(inbox.Store(path, name));
            }
            catch (IOException e)
            {
                _logger.LogWarning("An upload could not be stored in {Folder}: {Reason}", inbox.Folder, e.Message);
                throw new ShareRefusal(500, "The upload could not be stored.");
            }
            foreach (var name in stored) _logger.LogInformation("Received {Name} in {Folder}", name, inbox.Folder);
            bool html = head.ListValues("Accept").Any(a => a.StartsWith("text/html", StringComparison.OrdinalIgnoreCase));
            var page = html ? Pages.Received(stored) : Encoding.UTF8.GetBytes(string.Concat(stored.Select(n => n + "\n")));
            keepAlive &= body.IsComplete;
            await client.SendAsync(new Response(201).Field("Content-Type", html ? Pages.HtmlType : "text/plain; charset=utf-8").Field("Content-Security-Policy", Pages.PagePolicy),
                page, headOnly: false, !keepAlive).ConfigureAwait(false);
            return keepAlive;
        }
        finally
        {
            // What was not stored (a refusal, a client gone mid-upload) leaves nothing behind; a stored part is gone from its temporary name already.
            foreach (var (path, _) in parts) File.Delete(path);
        }
    }

    private static async Task ReceivePutAsync(UploadInbox inbox, BodyReader body, string name, List<(string Path, string Name)> parts, CancellationToken cancellationToken)
    {
        using var file = CreatePart(inbox, name, parts);
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            long total = 0;
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(0, ChunkSize)).ConfigureAwait(false)) > 0)
            {
                if ((total += read) > inbox.MaxUploadBytes) throw TooLarge(inbox);
                await WriteToDiskAsync(file, buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task ReceiveFormAsync(UploadInbox inbox, BodyReader body, string boundary, List<(string Path, string Name)> parts, CancellationToken cancellationToken)
    {
        using var form = new MultipartReader(body, boundary);
        long left = inbox.MaxUploadBytes;
        while (await form.NextPartAsync().ConfigureAwait(false) is (true, var fileName))
        {
            if (fileName is null)
            {
                await form.CopyPartAsync(null, 0).ConfigureAwait(false);
                continue;
            }
            using var file = CreatePart(inbox, fileName, parts);
            // The form's files together are held to the limit, as one PUT is.
            left -= await form.CopyPartAsync(bytes => WriteToDiskAsync(file, bytes, cancellationToken), left).ConfigureAwait(false);
        }
    }

    /// <summary>A temporary file for an upload, listed in <paramref name="parts"/> at once so that it is deleted if the request fails.</summary>
    private static FileStream CreatePart(UploadInbox inbox, string requestedName, List<(string Path, string Name)> parts)
    {
        FileStream file;
        try
        {
            file = inbox.CreatePart();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ShareRefusal(500, "The inbox cannot be written to.");
        }
        parts.Add((file.Name, UploadInbox.SafeName(requestedName)));
        return file;
    }

    private static async ValueTask WriteToDiskAsync(FileStream file, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        try
        {
            await file.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException)
        {
            throw new ShareRefusal(507, "The upload could not be written: the inbox's disk may be full.");
        }
    }

    private static ShareRefusal TooLarge(UploadInbox inbox) => new(413, $"Uploads are limited to {Pages.Size(inbox.MaxUploadBytes)} at a time.");

    /// <summary>The folder's entries; null if it may not be read or is gone.</summary>
    private static List<ListingEntry>? TryList(SharedFiles files, ShareEntry? folder)
    {
        try
        {
            return folder is null ? null : files.List(folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool WantsJson(HttpRequestHead head, RequestTarget target) =>
        target.QueryValue("format") == "json" || head.ListValues("Accept").Any(a => a.StartsWith("application/json", StringComparison.OrdinalIgnoreCase));

    private static async Task<bool> SendPageAsync(ShareConnection client, int status, string contentType, byte[] page, bool headOnly, bool keepAlive)
    {
        var response = new Response(status).Field("Content-Type", contentType).Field("Cache-Control", "no-cache");
        if (contentType == Pages.HtmlType) response.Field("Content-Security-Policy", Pages.PagePolicy);
        await client.SendAsync(response, page, headOnly, !keepAlive).ConfigureAwait(false);
        return keepAlive;
    }

    private static async Task<bool> NotFoundAsync(ShareConnection client, bool headOnly, bool keepAlive)
    {
        await client.SendErrorAsync(404, "Nothing is shared under this name.", headOnly, !keepAlive).ConfigureAwait(false);
        return keepAlive;
    }
}
