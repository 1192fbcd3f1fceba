using System.CommandLine;
using Quid.Node.Control;
using Quid.Services;
using Spectre.Console;

namespace Quid.Cli;

/// <summary><c>quid services</c>: what the node publishes under session addresses; <c>quid services remove NAME</c> stops one.</summary>
internal static class ServicesCommand
{
    public static Command Create()
    {
        var command = ApiCommand.Create("services", "Show the services the node publishes (quid serve, quid share): addresses, introduction points, clients met.",
            async (client, json, _, cancellationToken) =>
            {
                var services = await client.GetAsync("/api/services", ControlJson.Default.IReadOnlyListServiceReport, cancellationToken).ConfigureAwait(false);
                if (json)
                {
                    Render.Json(services, CliJson.Default.IReadOnlyListServiceReport);
                    return ExitCodes.Ok;
                }
                if (services.Count == 0)
                {
                    AnsiConsole.MarkupLine("No services published: quid serve HOST:PORT or quid share PATH publishes one.");
                    return ExitCodes.Ok;
                }
                var table = new Table().Border(TableBorder.Rounded);
                table.AddColumn("name");
                table.AddColumn("kind");
                table.AddColumn(new TableColumn("address").NoWrap());
                table.AddColumns("published", "clients now", "met", "dropped", "for");
                foreach (var s in services)
                {
                    table.AddRow(Markup.Escape(s.Name), ServeCommand.KindWord(s.Kind), s.Address,
                        s.Published ? $"[green]●[/] {s.IntroductionPointsUp} of {HostedService.IntroductionPoints} introduction points" : "[yellow]●[/] not yet",
                        $"{s.OpenMeetings}", $"{s.Met}", $"{s.Dropped}", Render.Since(s.Started));
                }
                AnsiConsole.Write(table);
                if (services.Any(s => s.Kind == AddressKind.Moving))
                    AnsiConsole.MarkupLine("[grey]A moving service's address changes each day; its secret, for those who should follow it, is in quid services --json.[/]");
                return ExitCodes.Ok;
            });

        var name = new Argument<string>("NAME") { Description = "The service's name, as quid services lists it." };
        var remove = ApiCommand.Create("services remove", "Stop publishing a service, now and at later starts: its introduction points and clients' circuits close. A stable or moving service's key stays in the data directory.",
            async (client, json, parse, cancellationToken) =>
            {
                string service = parse.GetValue(name)!;
                await client.DeleteAsync($"/api/services/{Uri.EscapeDataString(service)}", cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(new ServiceRemoved(service), CliJson.Default.ServiceRemoved);
                else AnsiConsole.MarkupLine($"Stopped publishing {Markup.Escape(service)}.");
                return ExitCodes.Ok;
            });
        remove.Arguments.Add(name);
        command.Subcommands.Add(remove);
        return command;
    }

    /// <summary><c>quid access ADDRESS KEY</c>: gives the running node a private service's access key, so its proxies reach the service.</summary>
    public static Command CreateAccess()
    {
        var address = new Argument<string>("ADDRESS") { Description = "The private service's address, <56 characters>.quid." };
        var key = new Argument<string>("KEY") { Description = "Its access key, quid-secret-…, as its publisher printed it." };
        var command = ApiCommand.Create("access", "Let this node reach a private service: give it the service's access key. The node keeps it, across restarts, until quid access remove ADDRESS.",
            async (client, json, parse, cancellationToken) =>
            {
                var request = new AccessRequest(parse.GetValue(address), parse.GetValue(key));
                var added = await client.PostAsync("/api/access", request, ControlJson.Default.AccessRequest, ControlJson.Default.AccessReport,
                    ControlClient.Patience, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(added, ControlJson.Default.AccessReport);
                else AnsiConsole.MarkupLine($"This node now reaches [bold]{added.Address}[/] through its proxies (until quid access remove {added.Address}).");
                return ExitCodes.Ok;
            });
        command.Arguments.Add(address);
        command.Arguments.Add(key);

        var removed = new Argument<string>("ADDRESS") { Description = "The private service's address, <56 characters>.quid." };
        var remove = ApiCommand.Create("access remove", "Forget a private service's access key: this node's proxies no longer find it.",
            async (client, json, parse, cancellationToken) =>
            {
                string forgotten = parse.GetValue(removed)!;
                await client.DeleteAsync($"/api/access/{Uri.EscapeDataString(forgotten)}", cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(new ServiceRemoved(forgotten), CliJson.Default.ServiceRemoved);
                else AnsiConsole.MarkupLine($"Forgot the access key of {Markup.Escape(forgotten)}.");
                return ExitCodes.Ok;
            });
        remove.Arguments.Add(removed);
        command.Subcommands.Add(remove);
        return command;
    }
}

/// <summary>What <c>quid services remove --json</c> prints.</summary>
internal sealed record ServiceRemoved(string Removed);
