using System.CommandLine;
using Quid.Node;
using Quid.Node.Configuration;
using Quid.Node.Control;
using Spectre.Console;

namespace Quid.Cli;

/// <summary>
/// <c>quid ledger</c>: every partner this node has had, with the bytes given and received, the
/// rates promised and delivered, and the verdict. It asks the running node, whose counters are up
/// to the second; when no node runs it reads the database, so it works either way.
/// </summary>
internal static class LedgerCommand
{
    public static Command Create() => ApiCommand.Create("ledger", "Show partners: bandwidth given and received, promised and delivered rates, and verdicts.",
        async (client, json, _, cancellationToken) =>
        {
            Show(await client.GetAsync("/api/ledger", ControlJson.Default.IReadOnlyListLedgerRow, cancellationToken).ConfigureAwait(false), json);
            return ExitCodes.Ok;
        },
        offline: (settings, json, _) => Task.FromResult(FromDatabase(settings, json)));

    private static int FromDatabase(NodeSettings settings, bool json)
    {
        string directory = settings.DataDirectory;
        if (!File.Exists(Path.Combine(directory, NodeDatabase.FileName)))
        {
            Console.Error.WriteLine($"quid ledger: no node has run with data directory {directory} yet (use --data-dir).");
            return ExitCodes.Failed;
        }
        IReadOnlyList<LedgerEntry> entries;
        try
        {
            using var database = NodeDatabase.OpenReadOnly(directory);
            entries = database.ReadLedger();
        }
        catch (NodeStateException e)
        {
            Console.Error.WriteLine($"quid ledger: {e.Message}");
            return ExitCodes.BadConfiguration;
        }
        if (!json) AnsiConsole.MarkupLine("[grey]The node is not running: this is the ledger as it was last saved.[/]");
        Show([.. entries.Select(LedgerRow.From)], json);
        return ExitCodes.Ok;
    }

    private static void Show(IReadOnlyList<LedgerRow> rows, bool json)
    {
        if (json)
        {
            Render.Json(rows, CliJson.Default.IReadOnlyListLedgerRow);
            return;
        }
        if (rows.Count == 0)
        {
            AnsiConsole.MarkupLine("No partners yet.");
            return;
        }
        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn(new TableColumn("partner").NoWrap());
        table.AddColumns("verdict", "we grant", "promised", "delivered", "given", "received", "agreements");
        foreach (var e in rows)
        {
            table.AddRow(Render.Brief(e.Partner), Verdict(e.Verdict, e.ShunnedUntil), Render.Kbps(e.WeGrantKbps), Render.Kbps(e.PromisedKbps),
                e.DeliveredKbps is { } d ? $"{d:0} kbps" : "not probed", Render.Bytes(e.BytesGiven), Render.Bytes(e.BytesReceived),
                $"{e.ActiveAgreements} active, {e.PastAgreements} past");
        }
        AnsiConsole.Write(table);
    }

    public static string Verdict(string? verdict, DateTimeOffset? shunnedUntil) => verdict switch
    {
        null => "[grey]-[/]",
        "Good" => "[green]good[/]",
        "Underdelivering" => "[yellow]under-delivering[/]",
        _ => $"[red]shunned[/]{(shunnedUntil is { } until ? $" until {until.ToLocalTime():HH:mm}" : "")}",
    };
}
