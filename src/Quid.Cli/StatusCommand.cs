using System.CommandLine;
using Quid.Node.Control;
using Spectre.Console;

namespace Quid.Cli;

/// <summary><c>quid status</c>: what the running node is doing, with live rates; <c>--wait</c> follows it until it is ready.</summary>
internal static class StatusCommand
{
    public static Command Create()
    {
        var wait = new Option<bool>("--wait") { Description = "Show progress until the node is ready (linked, partnered, a circuit built), then the status; a node still starting is waited for too." };
        var timeout = new Option<int>("--timeout") { Description = "With --wait: give up after this many seconds (exit 1).", DefaultValueFactory = _ => 120 };
        // Commands are made once per run of quid, just before one of them is invoked.
        var invoked = DateTime.UtcNow;
        return ApiCommand.Create("status", "Show what the node is doing: progress, live rates, offer and request, links and circuits.",
            async (client, json, parse, cancellationToken) =>
            {
                var status = await client.GetAsync("/api/status", ControlJson.Default.StatusReport, cancellationToken).ConfigureAwait(false);
                if (parse.GetValue(wait) && status.Phase != NodePhase.Ready)
                {
                    // One timeout covers both waits: for a starting node to answer, and for it to be ready.
                    var deadline = invoked + TimeSpan.FromSeconds(parse.GetValue(timeout));
                    status = await WaitAsync(client, status, deadline, json, cancellationToken).ConfigureAwait(false);
                    if (status.Phase != NodePhase.Ready)
                    {
                        await Console.Error.WriteLineAsync($"quid status: not ready after {parse.GetValue(timeout)} s: {status.PhaseText}").ConfigureAwait(false);
                        return ExitCodes.Failed;
                    }
                }
                if (json) Render.Json(status, CliJson.Default.StatusReport);
                else Show(status);
                return ExitCodes.Ok;
            }, offline: null, patience: parse => parse.GetValue(wait) ? TimeSpan.FromSeconds(parse.GetValue(timeout)) : null, wait, timeout);
    }

    private static async Task<StatusReport> WaitAsync(ControlClient client, StatusReport status, DateTime deadline, bool json, CancellationToken cancellationToken)
    {
        async Task<StatusReport> PollAsync(Action<StatusReport> show)
        {
            while (status.Phase != NodePhase.Ready && DateTime.UtcNow < deadline)
            {
                await Task.Delay(500, cancellationToken).ConfigureAwait(false);
                status = await client.GetAsync("/api/status", ControlJson.Default.StatusReport, cancellationToken).ConfigureAwait(false);
                show(status);
            }
            return status;
        }

        // On a terminal a spinner; in a log or a pipe, one line per step, so the output reads as a record.
        if (json || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            var said = status.Phase;
            if (!json) Console.WriteLine(status.PhaseText);
            return await PollAsync(s =>
            {
                if (s.Phase == said) return;
                said = s.Phase;
                if (!json) Console.WriteLine(s.PhaseText);
            }).ConfigureAwait(false);
        }
        return await AnsiConsole.Status().StartAsync(Markup.Escape(status.PhaseText), context =>
            PollAsync(s => context.Status(Markup.Escape(s.PhaseText)))).ConfigureAwait(false);
    }

    private static void Show(StatusReport s)
    {
        string phase = s.Phase == NodePhase.Ready ? "[green]●[/]" : "[yellow]●[/]";
        AnsiConsole.MarkupLine($"[bold]Node {Render.Brief(s.Id)}[/] {Markup.Escape(s.Id[8..])} · {s.Role.ToLowerInvariant()} · up {Render.Age(TimeSpan.FromSeconds(s.UptimeSeconds))}");
        AnsiConsole.MarkupLine($"{phase} {Markup.Escape(s.PhaseText)}");
        AnsiConsole.WriteLine();

        var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        grid.AddRow("[bold]received[/]", $"{Render.Rate(s.Rates.ReceivedBytesPerSecond)}  [grey]({Render.Bytes(s.Rates.ReceivedBytes)} in all: what partners carried for you)[/]");
        grid.AddRow("[bold]given[/]", $"{Render.Rate(s.Rates.GivenBytesPerSecond)}  [grey]({Render.Bytes(s.Rates.GivenBytes)} in all: what you carried for partners)[/]");
        grid.AddRow("offer", $"{s.OfferKbps} kbps: {s.GrantedKbps} granted, {s.FreeKbps} free {OfferBar(s)}");
        grid.AddRow("request", s.RequestKbps is { } request
            ? $"{request} kbps: {(s.RequestMet ? "[green]met[/]" : "[yellow]not met yet[/]")}, partners grant you {s.ReceivedGrantKbps} kbps"
            : "none: a donor");
        grid.AddRow("links", $"{s.Neighbours} neighbours, {s.Agreements} agreements, {s.KnownPeers} nodes known");
        grid.AddRow("circuits", $"{s.Circuits} ready ({s.Hops} {(s.Hops == 1 ? "hop" : "hops")} each), {s.RelayedCircuits} carried for others, {s.Streams} streams open");
        grid.AddRow("listening", Markup.Escape($"links {s.Listen}, SOCKS {s.Socks ?? "off"}"));
        grid.AddRow("dialable", (s.Reachability.State == Reachability.Reachable ? "[green]●[/] " : s.Reachability.State == Reachability.Advertised ? "[yellow]●[/] " : "[grey]●[/] ")
            + Markup.Escape(s.Reachability.Text));
        AnsiConsole.Write(grid);
    }

    /// <summary>The offer's buddy blocks in a line: one character per block, granted filled, free hollow.</summary>
    private static string OfferBar(StatusReport s) =>
        "[grey][[[/]" + string.Concat(s.OfferBlocks.Select(b => b.State switch
        {
            OfferBlockState.Granted => "[green]■[/]",
            OfferBlockState.Reserved => "[yellow]▣[/]",
            _ => "[grey]□[/]",
        })) + "[grey]]][/]";
}
