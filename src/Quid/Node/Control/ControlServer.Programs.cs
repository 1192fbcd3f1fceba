using Microsoft.AspNetCore.Http;
using Quid.Credits;
using Quid.Crypto;
using Quid.Programs;
using Quid.Services;

namespace Quid.Node.Control;

/// <summary>
/// Hosted programs and mail: <c>GET /api/programs</c> (ours, as last checked),
/// <c>POST /api/programs</c> ({path, on, credits, postage, name}), <c>GET /api/programs/ID</c>
/// (asks its host now), <c>POST /api/programs/ID/topup</c> ({credits}), <c>DELETE /api/programs/ID</c>;
/// <c>GET|POST /api/mail/box</c> (our mailboxes; {on, credits, postage, maxDelayMs} makes one),
/// <c>POST /api/mail/send</c> ({to, message, via, postage, issuer}), <c>POST /api/mail/fetch</c>.
/// </summary>
public sealed partial class ControlServer
{
    private const string ProgramsPath = "/api/programs";
    private const string ProgramsPrefix = ProgramsPath + "/";
    private const string TopUpSuffix = "/topup";
    private const string MailPrefix = "/api/mail/";
    private const string BoxPath = MailPrefix + "box";
    private const string SendPath = MailPrefix + "send";
    private const string FetchPath = MailPrefix + "fetch";

    private static bool IsProgramsPath(string path) => path == ProgramsPath || path.StartsWith(ProgramsPrefix, StringComparison.Ordinal) || path.StartsWith(MailPrefix, StringComparison.Ordinal);

    private async Task ProgramsAsync(HttpContext context, string path)
    {
        var request = context.Request;
        var response = context.Response;
        try
        {
            if (path == ProgramsPath && HttpMethods.IsPost(request.Method))
            {
                if (await ReadBodyAsync(context, ControlJson.Default.DeployRequest, "{\"path\": \"/home/me/remailer.wasm\", \"on\": \"NODE-ID\", \"credits\": 64}").ConfigureAwait(false) is not { } deploy) return;
                if (await HostAsync(response, deploy.On).ConfigureAwait(false) is not { } host) return;
                byte[] wasm;
                try
                {
                    wasm = HostedProgram.ReadModule(deploy.Path);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ProgramException)
                {
                    await ErrorAsync(response, StatusCodes.Status400BadRequest, $"Cannot read {deploy.Path}: {e.Message}").ConfigureAwait(false);
                    return;
                }
                var deployed = await _node.DeployAsync(host, wasm, deploy.Name ?? Path.GetFileNameWithoutExtension(deploy.Path), deploy.Credits, deploy.Postage, CancellationToken.None).ConfigureAwait(false);
                await JsonAsync(context, StatusCodes.Status200OK, Report(deployed), ControlJson.Default.DeployedReport).ConfigureAwait(false);
                return;
            }
            if (path == ProgramsPath)
            {
                await JsonAsync(context, StatusCodes.Status200OK, _node.DeployedPrograms().Select(Report).ToList(), ControlJson.Default.IReadOnlyListDeployedReport).ConfigureAwait(false);
                return;
            }
            if (path.StartsWith(MailPrefix, StringComparison.Ordinal))
            {
                await MailAsync(context, path).ConfigureAwait(false);
                return;
            }
            bool topUp = path.EndsWith(TopUpSuffix, StringComparison.Ordinal);
            string id = topUp ? path[ProgramsPrefix.Length..^TopUpSuffix.Length] : path[ProgramsPrefix.Length..];
            var program = _node.FindDeployed(id);
            // Anyone holding a program's id may keep it alive: one not ours is topped up at the host the request names.
            if (program is null && topUp && await TopUpTheirsAsync(context, id).ConfigureAwait(false)) return;
            if (program is null)
            {
                await ErrorAsync(response, StatusCodes.Status404NotFound, $"No program of yours has an id starting with '{id}' (give 8 characters or more, as 'quid host ls' lists them).").ConfigureAwait(false);
                return;
            }
            if (topUp)
            {
                if (await ReadBodyAsync(context, ControlJson.Default.TopUpRequest, "{\"credits\": 64}").ConfigureAwait(false) is not { } more) return;
                program = await _node.TopUpAsync(program, more.Credits, CancellationToken.None).ConfigureAwait(false);
            }
            else if (HttpMethods.IsDelete(request.Method))
            {
                await _node.StopAsync(program, CancellationToken.None).ConfigureAwait(false);
                response.StatusCode = StatusCodes.Status204NoContent;
                return;
            }
            else
            {
                program = await _node.CheckAsync(program, context.RequestAborted).ConfigureAwait(false);
            }
            await JsonAsync(context, StatusCodes.Status200OK, Report(program), ControlJson.Default.DeployedReport).ConfigureAwait(false);
        }
        catch (Exception e) when (e is CreditException or ProgramPostException or FormatException or Circuits.StreamException or Wire.WireException or IOException)
        {
            await ErrorAsync(response, StatusCodes.Status409Conflict, e.Message).ConfigureAwait(false);
        }
        catch (ArgumentException e)
        {
            // What was asked is out of range: a letter too long for mail, credits under a deploy's least.
            await ErrorAsync(response, StatusCodes.Status400BadRequest, e.Message).ConfigureAwait(false);
        }
    }

    private async Task MailAsync(HttpContext context, string path)
    {
        var response = context.Response;
        if (path == BoxPath && HttpMethods.IsPost(context.Request.Method))
        {
            if (await ReadBodyAsync(context, ControlJson.Default.MailboxRequest, "{\"on\": \"NODE-ID\", \"credits\": 64}").ConfigureAwait(false) is not { } box) return;
            if (await HostAsync(response, box.On).ConfigureAwait(false) is not { } host) return;
            var (program, mail) = await _node.CreateMailboxAsync(host, box.Credits, box.Postage, box.MaxDelayMs, CancellationToken.None).ConfigureAwait(false);
            await JsonAsync(context, StatusCodes.Status200OK, new MailboxReport(mail, program.Address, program.Key, program.Host.ToString()), ControlJson.Default.MailboxReport).ConfigureAwait(false);
        }
        else if (path == BoxPath)
        {
            var boxes = _node.Mailboxes().Select(b => new MailboxReport(b.MailAddress, b.Program.Address, b.Program.Key, b.Program.Host.ToString())).ToList();
            await JsonAsync(context, StatusCodes.Status200OK, boxes, ControlJson.Default.IReadOnlyListMailboxReport).ConfigureAwait(false);
        }
        else if (path == SendPath)
        {
            // A message of up to 64 KiB, in base64.
            if (await ReadBodyAsync(context, ControlJson.Default.MailSendRequest, "{\"to\": \"KEY@ADDRESS.quid\", \"message\": \"BASE64\"}", maxBytes: 128 << 10).ConfigureAwait(false) is not { } send) return;
            NodeId? issuer = null;
            if (send.Postage > 0)
            {
                if (send.Issuer is null || !NodeId.TryParse(send.Issuer, out var parsed))
                {
                    await ErrorAsync(response, StatusCodes.Status400BadRequest, "Postage is paid in the remailer's host's credits: name that node with --issuer NODE-ID ('quid credits' lists those you hold).").ConfigureAwait(false);
                    return;
                }
                issuer = parsed;
            }
            byte[] message;
            try
            {
                message = Convert.FromBase64String(send.Message);
            }
            catch (FormatException)
            {
                await ErrorAsync(response, StatusCodes.Status400BadRequest, "The message is not base64.").ConfigureAwait(false);
                return;
            }
            var postage = issuer is { } node ? await _node.PostageAsync(node, send.Postage, CancellationToken.None).ConfigureAwait(false) : [];
            await _node.SendMailAsync(send.To, message, send.Via, postage, CancellationToken.None).ConfigureAwait(false);
            await JsonAsync(context, StatusCodes.Status200OK, new MailSentReport(message.Length, send.Via is not null), ControlJson.Default.MailSentReport).ConfigureAwait(false);
        }
        else if (path == FetchPath)
        {
            var messages = await _node.FetchMailAsync(CancellationToken.None).ConfigureAwait(false);
            await JsonAsync(context, StatusCodes.Status200OK, new MailFetchReport([.. messages.Select(Convert.ToBase64String)]), ControlJson.Default.MailFetchReport).ConfigureAwait(false);
        }
        else
        {
            await ErrorAsync(response, StatusCodes.Status404NotFound, $"No such endpoint: {path}. Try {BoxPath}, {SendPath} or {FetchPath}.").ConfigureAwait(false);
        }
    }

    /// <summary>Tops up a program that is not ours, given its whole id and its host; false when the request names no host, and is then not about such a program.</summary>
    private async Task<bool> TopUpTheirsAsync(HttpContext context, string id)
    {
        if (await ReadBodyAsync(context, ControlJson.Default.TopUpRequest, "{\"credits\": 64, \"on\": \"NODE-ID\"}").ConfigureAwait(false) is not { } more) return true;
        if (more.On is null) return false;
        if (await HostAsync(context.Response, more.On).ConfigureAwait(false) is not { } host) return true;
        if (id.Length != 2 * Wire.DeskCodec.ObjectSize || !id.All(Uri.IsHexDigit))
        {
            await ErrorAsync(context.Response, StatusCodes.Status400BadRequest, $"'{id}' is not a program's id: give all {2 * Wire.DeskCodec.ObjectSize} hex digits of the id you were given.").ConfigureAwait(false);
            return true;
        }
        var topped = await _node.TopUpAsync(host, Convert.FromHexString(id), more.Credits, CancellationToken.None).ConfigureAwait(false);
        var now = DateTimeOffset.UtcNow;
        await JsonAsync(context, StatusCodes.Status200OK, new DeployedReport(id.ToLowerInvariant(), "(not ours)", host.ToString(), new SessionAddress(topped.AddressKey).ToString(), now,
            topped.State.ToString(), (long)topped.Fuel, topped.Low, topped.DeleteAt == 0 ? null : DateTimeOffset.FromUnixTimeSeconds((long)topped.DeleteAt), now),
            ControlJson.Default.DeployedReport).ConfigureAwait(false);
        return true;
    }

    private static async Task<NodeId?> HostAsync(HttpResponse response, string text)
    {
        if (NodeId.TryParse(text, out var host)) return host;
        await ErrorAsync(response, StatusCodes.Status400BadRequest, $"'{text}' is not a node id; 'quid credits' lists the nodes whose credits you hold.").ConfigureAwait(false);
        return null;
    }

    private static DeployedReport Report(DeployedProgram program) => new(program.Key, program.Name, program.Host.ToString(), program.Address, program.Deployed,
        program.State.ToString(), program.Fuel, program.Low, program.DeleteAt, program.CheckedAt);

    private static IReadOnlyList<HostedProgramReport> HostedPrograms(ProgramHost? programs) => programs is null ? [] :
        [.. programs.Programs().Select(p => new HostedProgramReport(p.Key, p.State.ToString(), p.Fuel, p.MemoryBytes, p.StoredBytes, p.Postage, p.Deployed, p.DeleteAt, p.WarnedAt, p.Low,
            new SessionAddress(p.AddressKey).ToString()))];
}
