using System.CommandLine;
using Quid.Node.Control;
using Quid.Services;
using Spectre.Console;

namespace Quid.Cli;

/// <summary>
/// <c>quid follow NAME SECRET</c>: follow a moving service from its secret, so that this node's
/// proxies reach it as <c>NAME.quid</c> whatever its address is that day; <c>quid follows</c>
/// lists what the node follows, <c>quid follows remove NAME</c> stops.
/// </summary>
internal static class FollowCommand
{
    public static Command Create()
    {
        var name = new Argument<string>("NAME") { Description = $"A name to reach the service by, as NAME.quid: 1 to {FollowName.MaxLength} letters, digits and dashes." };
        var secret = new Argument<string>("SECRET") { Description = "The moving service's secret, quid-secret-…, as its publisher printed it." };
        var key = new Option<string?>("--key") { Description = "Its access key, quid-secret-…, if it is private." };
        var command = ApiCommand.Create("follow",
            "Follow a moving service from its secret: this node's proxies then reach it as NAME.quid, from day to day. The node keeps following it across restarts, until quid follows remove NAME.",
            async (client, json, parse, cancellationToken) =>
            {
                var request = new FollowRequest(parse.GetValue(name), parse.GetValue(secret), parse.GetValue(key));
                var followed = await client.PostAsync("/api/follows", request, ControlJson.Default.FollowRequest, ControlJson.Default.FollowReport,
                    ControlClient.Patience, cancellationToken).ConfigureAwait(false);
                if (json)
                {
                    Render.Json(followed, CliJson.Default.FollowReport);
                    return ExitCodes.Ok;
                }
                AnsiConsole.MarkupLine($"This node's proxies now reach the service as [bold]{Markup.Escape(followed.Host)}[/], whatever its address:");
                AnsiConsole.MarkupLine($"  today [bold]{followed.Address}[/], until {Render.Utc(followed.Until)}.");
                AnsiConsole.MarkupLine($"Reach it with, for example: [bold]curl --socks5-hostname 127.0.0.1:1080 http://{Markup.Escape(followed.Host)}/[/]");
                AnsiConsole.MarkupLine("[grey]The name stays on this node (applications may send it to the service, as a browser's Host header does); it never reaches the network.[/]");
                return ExitCodes.Ok;
            });
        command.Arguments.Add(name);
        command.Arguments.Add(secret);
        command.Options.Add(key);
        return command;
    }

    public static Command CreateList()
    {
        var command = ApiCommand.Create("follows", "Show the moving services this node follows (quid follow): the name each is reached by, and its address today.",
            async (client, json, _, cancellationToken) =>
            {
                var follows = await client.GetAsync("/api/follows", ControlJson.Default.IReadOnlyListFollowReport, cancellationToken).ConfigureAwait(false);
                if (json)
                {
                    Render.Json(follows, CliJson.Default.IReadOnlyListFollowReport);
                    return ExitCodes.Ok;
                }
                if (follows.Count == 0)
                {
                    AnsiConsole.MarkupLine("This node follows no moving service: quid follow NAME SECRET follows one.");
                    return ExitCodes.Ok;
                }
                var table = new Table().Border(TableBorder.Rounded);
                table.AddColumn("reached as");
                table.AddColumn(new TableColumn("address today").NoWrap());
                table.AddColumn("until");
                foreach (var f in follows) table.AddRow(Markup.Escape(f.Host), f.Address, Render.Utc(f.Until));
                AnsiConsole.Write(table);
                return ExitCodes.Ok;
            });

        var name = new Argument<string>("NAME") { Description = "The name the service is followed under, as quid follows lists it." };
        var remove = ApiCommand.Create("follows remove", "Stop following a moving service, now and at later starts.",
            async (client, json, parse, cancellationToken) =>
            {
                string followed = parse.GetValue(name)!;
                await client.DeleteAsync($"/api/follows/{Uri.EscapeDataString(followed)}", cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(new FollowRemoved(followed), CliJson.Default.FollowRemoved);
                else AnsiConsole.MarkupLine($"No longer following {Markup.Escape(followed)}.");
                return ExitCodes.Ok;
            });
        remove.Arguments.Add(name);
        command.Subcommands.Add(remove);
        return command;
    }
}

/// <summary>What <c>quid follows remove --json</c> prints.</summary>
internal sealed record FollowRemoved(string Removed);
