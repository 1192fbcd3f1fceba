using System.CommandLine;
using Quid.Node.Control;
using Spectre.Console;

namespace Quid.Cli;

/// <summary>
/// <c>quid mail box create|ls</c>, <c>quid mail send</c>, <c>quid mail fetch</c>: mail through the
/// seed's remailer, a program that runs on another node and keeps or forwards mail sealed to its owner.
/// </summary>
internal static class MailCommand
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(5);

    public static Command Create()
    {
        var command = new Command("mail", "Anonymous mail: mailboxes that run on other nodes, and remailers that unlink who sends from who receives.");
        var box = new Command("box", "Your mailboxes.");
        box.Subcommands.Add(CreateBox());
        box.Subcommands.Add(CreateBoxes());
        command.Subcommands.Add(box);
        command.Subcommands.Add(CreateSend());
        command.Subcommands.Add(CreateFetch());
        return command;
    }

    private static Command CreateBox()
    {
        var on = new Option<string>("--on") { Description = "The node to run the mailbox on (its id): one whose credits you hold.", Required = true };
        var credits = HostCommand.Credits("for its fuel");
        var postage = new Option<uint>("--postage") { Description = "Credits of its host each message must pay: set it to sell remailing, as seed 003's pre-paid cards do.", DefaultValueFactory = _ => 0 };
        var delay = new Option<uint>("--max-delay") { Description = "The longest it holds mail it forwards, in milliseconds: each waits a random time up to this.", DefaultValueFactory = _ => 30_000 };
        return ApiCommand.Create("mail box create", "Run a mailbox (which is also a remailer) on another node; prints its mail address.",
            async (client, json, parse, cancellationToken) =>
            {
                long amount = await HostCommand.CreditsAsync(client, parse.GetValue(credits)!, cancellationToken).ConfigureAwait(false);
                var report = await client.PostAsync("/api/mail/box", new MailboxRequest(parse.GetValue(on)!, amount, parse.GetValue(postage), parse.GetValue(delay)),
                    ControlJson.Default.MailboxRequest, ControlJson.Default.MailboxReport, Patience, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(report, ControlJson.Default.MailboxReport);
                else
                {
                    AnsiConsole.MarkupLine($"Mail to: [bold]{report.MailAddress}[/]");
                    AnsiConsole.MarkupLine($"[grey]As a remailer: --via {report.Address}. Program {report.Program[..12]} on {Render.Brief(report.Host)}; 'quid host status {report.Program[..12]}' shows its fuel.[/]");
                }
                return ExitCodes.Ok;
            }, (ApiCommand.Offline?)null, on, credits, postage, delay);
    }

    private static Command CreateBoxes() =>
        ApiCommand.Create("mail box ls", "List your mailboxes and their mail addresses.",
            async (client, json, parse, cancellationToken) =>
            {
                var boxes = await client.GetAsync("/api/mail/box", ControlJson.Default.IReadOnlyListMailboxReport, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(boxes, ControlJson.Default.IReadOnlyListMailboxReport);
                else if (boxes.Count == 0) AnsiConsole.MarkupLine("[grey]No mailboxes. 'quid mail box create --on NODE --credits 64' makes one.[/]");
                else foreach (var b in boxes) AnsiConsole.WriteLine($"{b.MailAddress}  (program {b.Program[..12]} on {Render.Brief(b.Host)})");
                return ExitCodes.Ok;
            });

    private static Command CreateSend()
    {
        var to = new Argument<string>("ADDRESS") { Description = "The mail address, KEY@ADDRESS.quid, as 'quid mail box create' printed it." };
        var via = new Option<string>("--via") { Description = "A remailer's session address: it forwards the mail after a random delay, so the mailbox's host never sees you." };
        var postage = new Option<long>("--postage") { Description = "Credits the remailer (or mailbox) asks per message, paid from your wallet.", DefaultValueFactory = _ => 0 };
        var issuer = new Option<string>("--issuer") { Description = "The node whose credits pay the postage: the remailer's host, as the card you were given names it." };
        var send = ApiCommand.Create("mail send", "Seal standard input to a mail address and send it, through a remailer with --via.",
            async (client, json, parse, cancellationToken) =>
            {
                using var input = new MemoryStream();
                await Console.OpenStandardInput().CopyToAsync(input, cancellationToken).ConfigureAwait(false);
                var request = new MailSendRequest(parse.GetValue(to)!, Convert.ToBase64String(input.ToArray()), parse.GetValue(via), parse.GetValue(postage), parse.GetValue(issuer));
                var sent = await client.PostAsync("/api/mail/send", request, ControlJson.Default.MailSendRequest, ControlJson.Default.MailSentReport, Patience, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(sent, ControlJson.Default.MailSentReport);
                else AnsiConsole.MarkupLine($"[grey]Sent {Render.Bytes(sent.Bytes)}{(sent.ThroughRemailer ? " to the remailer, which forwards it after its delay" : "")}.[/]");
                return ExitCodes.Ok;
            }, (ApiCommand.Offline?)null, via, postage, issuer);
        send.Arguments.Add(to);
        return send;
    }

    private static Command CreateFetch()
    {
        var output = new Option<string>("--output", "-o") { Description = "Write each message to a file in this folder (mail-1, mail-2 …) rather than to standard output." };
        return ApiCommand.Create("mail fetch", "Fetch, open and empty what waits in your mailboxes.",
            async (client, json, parse, cancellationToken) =>
            {
                var fetched = await client.PostAsync("/api/mail/fetch", ControlJson.Default.MailFetchReport, Patience, cancellationToken).ConfigureAwait(false);
                if (json)
                {
                    Render.Json(fetched, ControlJson.Default.MailFetchReport);
                    return ExitCodes.Ok;
                }
                string? folder = parse.GetValue(output);
                if (folder is not null) Directory.CreateDirectory(folder);
                await using var stdout = Console.OpenStandardOutput();
                for (int i = 0; i < fetched.Messages.Count; i++)
                {
                    byte[] message = Convert.FromBase64String(fetched.Messages[i]);
                    if (folder is not null) await File.WriteAllBytesAsync(Path.Combine(folder, $"mail-{i + 1}"), message, cancellationToken).ConfigureAwait(false);
                    else
                    {
                        await stdout.WriteAsync(message, cancellationToken).ConfigureAwait(false);
                        // Several letters on one output are told apart by a line after each, as a reader of mail expects.
                        if (fetched.Messages.Count > 1)
                            await stdout.WriteAsync(System.Text.Encoding.UTF8.GetBytes($"\n----- end of mail {i + 1} of {fetched.Messages.Count} -----\n"), cancellationToken).ConfigureAwait(false);
                    }
                }
                if (fetched.Messages.Count == 0 || folder is not null) await Console.Error.WriteLineAsync($"{fetched.Messages.Count} message(s).").ConfigureAwait(false);
                return ExitCodes.Ok;
            }, (ApiCommand.Offline?)null, output);
    }
}
