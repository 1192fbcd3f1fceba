using System.CommandLine;
using Quid.Node.Control;
using Spectre.Console;

namespace Quid.Cli;

/// <summary><c>quid circuits</c>: the node's own circuits as paths, and how many it carries for others.</summary>
internal static class CircuitsCommand
{
    public static Command Create() => ApiCommand.Create("circuits", "Show your circuits as paths through the network, and how many circuits you carry for others.",
        async (client, json, _, cancellationToken) =>
        {
            var report = await client.GetAsync("/api/circuits", ControlJson.Default.CircuitsReport, cancellationToken).ConfigureAwait(false);
            if (json)
            {
                Render.Json(report, CliJson.Default.CircuitsReport);
                return ExitCodes.Ok;
            }
            if (report.Circuits.Count == 0)
            {
                AnsiConsole.MarkupLine("None of your own circuits is open: quid status says what the node is waiting for.");
            }
            else
            {
                var table = new Table().Border(TableBorder.Rounded);
                table.AddColumns("path", "age", "streams");
                foreach (var c in report.Circuits)
                {
                    string path = string.Join(" [grey]→[/] ", ["you", .. c.Path.Select((h, i) => i == c.Path.Count - 1 ? $"[bold]{Render.Brief(h)}[/] [grey](exit)[/]" : Render.Brief(h))]);
                    table.AddRow(path, Render.Since(c.Created), $"{c.Streams}");
                }
                AnsiConsole.Write(table);
            }
            AnsiConsole.MarkupLine($"Carrying for others: {report.Relayed} circuits as a middle hop, {report.Exiting} as the exit, {report.CarriedStreams} streams. " +
                "[grey]Who built them is not shown: a relay does not tell.[/]");
            return ExitCodes.Ok;
        });
}
