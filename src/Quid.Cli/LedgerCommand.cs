using System.CommandLine;
using System.Text.Json;
using Quid.Exchange;
using Quid.Node;
using Spectre.Console;

namespace Quid.Cli;

/// <summary>
/// <c>quid ledger</c>: every partner this node has had, with the bytes given and received, the
/// rates promised and delivered, and the verdict. It reads the node's database, so it works
/// whether or not the node is running.
/// </summary>
internal static class LedgerCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string>("--data-dir") { Description = "The node's data directory.", DefaultValueFactory = _ => CliDefaults.DataDirectory };
        var json = new Option<bool>("--json") { Description = "Print JSON, for scripts." };
        var command = new Command("ledger", "Show partners: bandwidth given and received, promised and delivered rates, and verdicts.") { dataDir, json };
        command.SetAction(parse =>
        {
            string directory = parse.GetValue(dataDir)!;
            if (!File.Exists(Path.Combine(directory, NodeDatabase.FileName)))
            {
                Console.Error.WriteLine($"quid ledger: no node has run with data directory {directory} yet (use --data-dir).");
                return 1;
            }
            IReadOnlyList<LedgerEntry> entries;
            using (var database = new NodeDatabase(directory, readOnly: true)) entries = database.ReadLedger();
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(entries.Select(e => new
                {
                    partner = e.Partner.ToString(),
                    verdict = e.Verdict.ToString(),
                    weGrantKbps = e.WeGrantKbps,
                    promisedKbps = e.TheyGrantKbps,
                    deliveredKbps = e.DeliveredKbps,
                    bytesGiven = e.BytesGiven,
                    bytesReceived = e.BytesReceived,
                    activeAgreements = e.ActiveAgreements,
                    pastAgreements = e.PastAgreements,
                    shunnedUntil = e.ShunnedUntil,
                    lastProbe = e.LastProbe,
                })));
                return 0;
            }
            if (entries.Count == 0)
            {
                AnsiConsole.MarkupLine("No partners yet.");
                return 0;
            }
            var table = new Table().Border(TableBorder.Rounded);
            table.AddColumns("partner", "verdict", "we grant", "promised", "delivered", "given", "received", "agreements");
            foreach (var e in entries)
            {
                string verdict = e.Verdict switch
                {
                    Verdict.Good => "[green]good[/]",
                    Verdict.Underdelivering => "[yellow]under-delivering[/]",
                    _ => $"[red]shunned[/]{(e.ShunnedUntil is { } until ? $" until {until.ToLocalTime():HH:mm}" : "")}",
                };
                table.AddRow(e.Partner.Brief, verdict, Kbps(e.WeGrantKbps), Kbps(e.TheyGrantKbps),
                    e.DeliveredKbps is { } d ? $"{d:0} kbps" : "not probed", Bytes(e.BytesGiven), Bytes(e.BytesReceived),
                    $"{e.ActiveAgreements} active, {e.PastAgreements} past");
            }
            AnsiConsole.Write(table);
            return 0;
        });
        return command;
    }

    private static string Kbps(long kbps) => kbps == 0 ? "-" : $"{kbps} kbps";

    private static string Bytes(long bytes) => bytes switch
    {
        >= 1 << 30 => $"{bytes / (double)(1 << 30):0.0} GiB",
        >= 1 << 20 => $"{bytes / (double)(1 << 20):0.0} MiB",
        >= 1 << 10 => $"{bytes / 1024.0:0.0} KiB",
        _ => $"{bytes} B",
    };
}
