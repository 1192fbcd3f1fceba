using Microsoft.AspNetCore.Http;
using Quid.Credits;
using Quid.Storage;

namespace Quid.Node.Control;

/// <summary>
/// Storage: <c>GET /api/store</c> (our stored files), <c>POST /api/store</c> ({path, days,
/// copies}), <c>GET /api/store/ID</c> (the file, checked), <c>DELETE /api/store/ID</c>,
/// <c>POST /api/store/ID/renew</c> ({days}), <c>POST /api/store/check</c> (audit every copy now),
/// and <c>GET /api/hosted</c> (what this node holds for others).
/// </summary>
public sealed partial class ControlServer
{
    private const string StorePath = "/api/store";
    private const string StorePrefix = StorePath + "/";
    private const string CheckPath = StorePrefix + "check";
    private const string RenewSuffix = "/renew";
    private const string HostedPath = "/api/hosted";

    private async Task StoreAsync(HttpContext context, string path)
    {
        var request = context.Request;
        var response = context.Response;
        try
        {
            if (path == HostedPath)
            {
                await JsonAsync(context, StatusCodes.Status200OK, Hosted(_node.Storage) with { OfferCpuGfuel = _node.Options.OfferCpuGfuel, Programs = HostedPrograms(_node.Programs) },
                    ControlJson.Default.HostedReport).ConfigureAwait(false);
                return;
            }
            if (path == StorePath && HttpMethods.IsPost(request.Method))
            {
                if (await ReadBodyAsync(context, ControlJson.Default.StoreRequest, "{\"path\": \"/home/me/backup.tar\", \"days\": 7, \"copies\": 3}").ConfigureAwait(false) is not { } put) return;
                // Not cancelled with the request: half a put would pay hosts for copies never recorded.
                var stored = await _node.PutAsync(put.Path, put.Days, put.Copies, CancellationToken.None).ConfigureAwait(false);
                await JsonAsync(context, StatusCodes.Status200OK, Report(stored), ControlJson.Default.StoredReport).ConfigureAwait(false);
                return;
            }
            if (path == StorePath)
            {
                await JsonAsync(context, StatusCodes.Status200OK, _node.StoredFiles().Select(Report).ToList(), ControlJson.Default.IReadOnlyListStoredReport).ConfigureAwait(false);
                return;
            }
            if (path == CheckPath)
            {
                await _node.AuditStoredAsync(CancellationToken.None).ConfigureAwait(false);
                await JsonAsync(context, StatusCodes.Status200OK, _node.StoredFiles().Select(Report).ToList(), ControlJson.Default.IReadOnlyListStoredReport).ConfigureAwait(false);
                return;
            }
            bool renew = path.EndsWith(RenewSuffix, StringComparison.Ordinal);
            string id = renew ? path[StorePrefix.Length..^RenewSuffix.Length] : path[StorePrefix.Length..];
            if (_node.FindStored(id) is not { } file)
            {
                await ErrorAsync(response, StatusCodes.Status404NotFound, $"No stored file has an id starting with '{id}' (give 8 characters or more, as 'quid store ls' lists them).").ConfigureAwait(false);
                return;
            }
            if (renew)
            {
                if (await ReadBodyAsync(context, ControlJson.Default.RenewRequest, "{\"days\": 7}").ConfigureAwait(false) is not { } more) return;
                await JsonAsync(context, StatusCodes.Status200OK, Report(await _node.RenewAsync(file, more.Days, CancellationToken.None).ConfigureAwait(false)),
                    ControlJson.Default.StoredReport).ConfigureAwait(false);
            }
            else if (HttpMethods.IsDelete(request.Method))
            {
                await _node.RemoveAsync(file, CancellationToken.None).ConfigureAwait(false);
                response.StatusCode = StatusCodes.Status204NoContent;
            }
            else
            {
                // GetAsync checks the file whole before it writes a byte: a failure is still an error reply.
                response.OnStarting(() =>
                {
                    response.ContentType = "application/octet-stream";
                    response.ContentLength = file.Size;
                    response.Headers.ContentDisposition = $"attachment; filename=\"{file.Name.Replace("\"", "", StringComparison.Ordinal)}\"";
                    return Task.CompletedTask;
                });
                await _node.GetAsync(file, response.Body, context.RequestAborted).ConfigureAwait(false);
            }
        }
        catch (CreditException e)
        {
            await ErrorAsync(response, StatusCodes.Status409Conflict, e.Message).ConfigureAwait(false);
        }
    }

    private static StoredReport Report(StoredFile file) => new(file.Key32, file.Name, file.Size, file.Days, file.CopiesWanted, file.Created,
        [.. file.Copies.Select(c => new StoredCopyReport(c.Host.ToString(), c.PaidUntil, c.State.ToString(), c.AuditsLeft))]);

    private static HostedReport Hosted(StorageHost? storage) => storage is null
        ? new HostedReport(0, 0, [])
        : new HostedReport(storage.Quota, storage.Used, [.. storage.Objects().Select(o => new HostedObjectReport(o.Key, o.Size, o.PaidUntil, o.StoredAt, o.WarnedAt))]);
}
