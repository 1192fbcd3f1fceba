using System.CommandLine;
using Quid.Node.Control;
using Spectre.Console;

namespace Quid.Cli;

/// <summary><c>quid peers</c>: the node's neighbours, with what crossed each link and what each agreement grants.</summary>
internal static class PeersCommand
{
    public static Command Create() => ApiCommand.Create("peers", "Show the neighbours: links, bytes each way, grants and verdicts.",
        async (client, json, _, cancellationToken) =>
        {
            var peers = await client.GetAsync("/api/peers", ControlJson.Default.IReadOnlyListPeerReport, cancellationToken).ConfigureAwait(false);
            if (json)
            {
                Render.Json(peers, CliJson.Default.IReadOnlyListPeerReport);
                return ExitCodes.Ok;
            }
            if (peers.Count == 0)
            {
                AnsiConsole.MarkupLine("No neighbours yet: the node is still joining (see quid status).");
                return ExitCodes.Ok;
            }
            var table = new Table().Border(TableBorder.Rounded);
            table.AddColumn(new TableColumn("neighbour").NoWrap());
            table.AddColumns("role", "link", "for", "sent / received", "queued", "we grant / it grants", "verdict");
            foreach (var p in peers)
            {
                table.AddRow(Render.Brief(p.Id), p.Ultrapeer ? "ultrapeer" : "leaf", Markup.Escape($"{(p.Outbound ? "to" : "from")} {p.Remote}"), Render.Since(p.Since),
                    $"{Render.Bytes(p.BytesSent)} / {Render.Bytes(p.BytesReceived)}", Render.Bytes(p.QueuedBytes), $"{Render.Kbps(p.WeGrantKbps)} / {Render.Kbps(p.TheyGrantKbps)}{(p.PrivateAgreement ? " (private: your circuits start here)" : "")}",
                    LedgerCommand.Verdict(p.Verdict, null));
            }
            AnsiConsole.Write(table);
            return ExitCodes.Ok;
        });
}
