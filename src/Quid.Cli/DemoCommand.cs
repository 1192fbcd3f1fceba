using System.CommandLine;
using Microsoft.Extensions.Logging;
using Quid.Cli.Demo;
using Quid.Node;
using Spectre.Console;

namespace Quid.Cli;

/// <summary>
/// <c>quid demo</c>: a whole network on this machine, shown working. It waits for the
/// agreements, fetches a page directly and through Quid, shows which address the web server saw
/// each time, then leaves your node's proxies open for the reader to try, and its control API
/// for <c>quid status</c> and the dashboard to watch it.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var nodes = new Option<int>("--nodes") { Description = "How many nodes to start (2 to 8).", DefaultValueFactory = _ => 5 };
        var once = new Option<bool>("--once") { Description = "Exit after the check: 0 if traffic left from another node's address, 1 if not." };
        var socksPort = new Option<int>("--socks-port") { Description = "SOCKS port of your node (another free port is used if it is taken).", DefaultValueFactory = _ => NodeOptions.DefaultSocksPort };
        var httpPort = new Option<int>("--http-port") { Description = "HTTP proxy port of your node (another free port is used if it is taken).", DefaultValueFactory = _ => NodeOptions.DefaultHttpProxyPort };
        var verbose = new Option<bool>("--verbose") { Description = "Show the nodes' own logs." };
        var command = new Command("demo", "Start a small Quid network on this machine and show your traffic leaving from another node's address.")
        {
            nodes, once, socksPort, httpPort, verbose,
        };
        command.SetAction((parse, cancellationToken) =>
            RunAsync(parse.GetValue(nodes), parse.GetValue(once), parse.GetValue(socksPort), parse.GetValue(httpPort), parse.GetValue(verbose), cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(int nodeCount, bool once, int socksPort, int httpPort, bool verbose, CancellationToken cancellationToken)
    {
        using var loggers = CliDefaults.Loggers(verbose ? LogLevel.Information : LogLevel.Warning);
        // Ctrl-C at any moment stops the nodes and deletes the demo's temporary directory.
        using var shutdown = new ShutdownSignal(cancellationToken);
        AnsiConsole.MarkupLine("[bold]Quid demo[/]: a whole network on this machine, each node on its own loopback address.");
        DemoNetwork? network = null;
        try
        {
            network = await DemoNetwork.StartAsync(nodeCount, socksPort, httpPort, loggers, shutdown.Token).ConfigureAwait(false);
            if (!await ShowItWorksAsync(network, shutdown.Token).ConfigureAwait(false)) return ExitCodes.Failed;
            if (once) return ExitCodes.Ok;
            ShowWhatToTry(network);
            await shutdown.WaitAsync().ConfigureAwait(false);
            return ExitCodes.Ok;
        }
        catch (OperationCanceledException) when (shutdown.Requested)
        {
            return ExitCodes.Interrupted;
        }
        finally
        {
            if (shutdown.Requested) AnsiConsole.MarkupLine("Stopping…");
            if (network is not null) await network.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Waits for the agreements, then fetches the page directly and through Quid; true if the web server saw another node's address.</summary>
    private static async Task<bool> ShowItWorksAsync(DemoNetwork network, CancellationToken cancellationToken)
    {
        AnsiConsole.MarkupLine($"[green]✓[/] Web server on [link]{network.Web.BaseUrl}/[/]");
        AnsiConsole.MarkupLine($"[green]✓[/] Started {network.Nodes.Count} nodes: {string.Join(", ", network.Nodes.Select((n, i) => $"{Name(i)} {n.LinkEndPoint.Address}"))}");

        var deadline = TimeSpan.FromSeconds(60);
        var started = TimeProvider.System.GetTimestamp();
        bool matched = await AnsiConsole.Status().StartAsync("Finding partners…", async context =>
        {
            while (TimeProvider.System.GetElapsedTime(started) < deadline)
            {
                int done = await network.MatchedNodesAsync().ConfigureAwait(false);
                context.Status($"Nodes searching for partners and forming agreements: {done}/{network.Nodes.Count} have their request met");
                if (done == network.Nodes.Count) return true;
                await Task.Delay(200, cancellationToken).ConfigureAwait(false);
            }
            return (await network.Client.StatusAsync().ConfigureAwait(false)).RequestMet;
        }).ConfigureAwait(false);
        if (!matched)
        {
            AnsiConsole.MarkupLine("[red]✗[/] Your node found no partner within a minute; run with --verbose to see why.");
            return false;
        }
        await ShowAgreementsAsync(network).ConfigureAwait(false);

        // Agreements are made; your node's first circuit needs its partners' descriptors too, which
        // are a moment behind. Fetching before it is ready would only show a "no path yet" error.
        var building = TimeProvider.System.GetTimestamp();
        await AnsiConsole.Status().StartAsync("Building your first circuit…", async _ =>
        {
            while (network.Client.Pool.Circuits.Count == 0 && TimeProvider.System.GetElapsedTime(building) < TimeSpan.FromSeconds(30))
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }).ConfigureAwait(false);

        DemoFetch fetch;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            fetch = await network.FetchAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
        {
            // Stopped with Ctrl-C rather than failed.
            cancellationToken.ThrowIfCancellationRequested();
            AnsiConsole.MarkupLine($"[red]✗[/] Fetching through Quid failed: {Markup.Escape(e.Message)}");
            return false;
        }
        AnsiConsole.MarkupLine($"[green]✓[/] Fetched {network.Web.BaseUrl}/ directly: the web server saw [bold]{fetch.DirectSource}[/] (you).");
        string exit = fetch.ExitNodeNumber is { } n ? $"{Name(n - 1)}, the exit" : "not a Quid node?";
        bool hidden = !fetch.QuidSource.Equals(fetch.DirectSource) && fetch.ExitNodeNumber is > 1;
        AnsiConsole.MarkupLine($"{(hidden ? "[green]✓[/]" : "[red]✗[/]")} Fetched it through Quid: the web server saw [bold]{fetch.QuidSource}[/] ({exit}).");
        if (fetch.Path.Count > 0)
            AnsiConsole.MarkupLine($"  The circuit: you → {string.Join(" → ", fetch.Path.Select(p => Name(p - 1)))} → web server. " +
                "Each hop peels one layer of encryption; only the first sees your address, only the last your destination.");
        return hidden;
    }

    /// <summary>What to try by hand while the network runs: the proxies, and how to watch your node as you would a real one.</summary>
    private static void ShowWhatToTry(DemoNetwork network)
    {
        AnsiConsole.WriteLine();
        AnsiConsole.MarkupLine("Try it yourself; your traffic leaves from the exit's address:");
        ShowCommands(
            ($"curl --socks5-hostname {network.Client.SocksEndPoint} {network.Web.BaseUrl}/", "through your node's SOCKS proxy"),
            ($"curl --proxy http://{network.Client.HttpProxyEndPoint} {network.Web.BaseUrl}/", "through its HTTP proxy"));
        AnsiConsole.MarkupLine("Watch your node from another terminal as you would your own; its data directory is a temporary one, so each command names it:");
        string quid = CliDefaults.CommandName(), directory = CliDefaults.ShellWord(network.ClientDataDirectory);
        ShowCommands(
            ($"{quid} status --data-dir {directory}", "what it is doing: partners, live rates, circuits"),
            ($"{quid} dashboard --data-dir {directory}", "prints the link to its live dashboard:"));
        Console.WriteLine($"  {network.DashboardUrl}");
        AnsiConsole.MarkupLine("Press Ctrl-C to stop the network; its temporary directory goes with it.");
    }

    /// <summary>
    /// Commands to copy, each with what it does as a shell comment, so the whole line pastes. Not
    /// through Spectre, which would break a line wider than the terminal where the terminal would
    /// only wrap it.
    /// </summary>
    private static void ShowCommands(params (string Command, string What)[] commands)
    {
        int width = commands.Max(c => c.Command.Length);
        foreach (var (command, what) in commands) Console.WriteLine($"  {command.PadRight(width)}   # {what}");
    }

    private static string Name(int index) => index == 0 ? "you" : $"node {index + 1}";

    private static async Task ShowAgreementsAsync(DemoNetwork network)
    {
        var index = network.Nodes.Select((n, i) => (n.Id, i)).ToDictionary(p => p.Id, p => p.i);
        var table = new Table().Border(TableBorder.Rounded).Title("Agreements: each side grants the other its request, out of its offer");
        table.AddColumns("node", "address", "offer", "asks each partner", "free blocks left", "partners: we grant/they grant kbps");
        for (int i = 0; i < network.Nodes.Count; i++)
        {
            var status = await network.Nodes[i].StatusAsync().ConfigureAwait(false);
            string partners = string.Join(", ", status.Agreements.Select(a =>
                $"{(index.TryGetValue(a.Partner, out int p) ? Name(p) : a.Partner.Brief)} {a.WeGrant?.Kbps ?? 0}/{a.TheyGrant?.Kbps ?? 0}"));
            table.AddRow(Name(i), status.LinkEndPoint.Address.ToString(), status.Offer.ToString(), status.Request?.ToString() ?? "donor",
                status.FreeBlocks.Count == 0 ? "none: fully granted" : string.Join(" + ", status.FreeBlocks.Select(b => b.Kbps)),
                Markup.Escape(partners));
        }
        AnsiConsole.Write(table);
    }
}
