using System.CommandLine;
using Quid.Node.Control;
using Spectre.Console;

namespace Quid.Cli;

/// <summary>
/// <c>quid host deploy|ls|status|topup|stop</c>: programs run on other nodes, paid in their
/// credits, deployed through a circuit so that their host never learns whose they are.
/// </summary>
internal static class HostCommand
{
    /// <summary>A deploy pays, then sends the module through a circuit to the host's desk.</summary>
    private static readonly TimeSpan DeskPatience = TimeSpan.FromMinutes(5);

    public static Command Create()
    {
        var command = new Command("host", "Run programs (WebAssembly) on other nodes, paid in their credits; they run while their fuel lasts and are deleted when it is gone.");
        command.Subcommands.Add(CreateCheck());
        command.Subcommands.Add(CreateDeploy());
        command.Subcommands.Add(CreateList());
        command.Subcommands.Add(CreateStatus());
        command.Subcommands.Add(CreateTopUp());
        command.Subcommands.Add(CreateStop());
        return command;
    }

    internal static Option<string> Credits(string what) => new("--credits")
    {
        Description = $"What to pay {what}: a number of the host's credits from your wallet, or a card file ('quid credits give' makes one) taken first.",
        Required = true,
    };

    /// <summary>The credits <paramref name="value"/> names: a number, or a card file taken into the wallet first.</summary>
    internal static async Task<long> CreditsAsync(ControlClient client, string value, CancellationToken cancellationToken)
    {
        if (long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long amount)) return amount;
        string card;
        try
        {
            card = await File.ReadAllTextAsync(value, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Said as the node's refusals are: the user's to change.
            throw new ControlRefusedException(400, $"--credits {value} is neither a number of credits nor a card file that can be read: {e.Message}");
        }
        var taken = await client.PostAsync("/api/credits/take", new CreditTakeRequest(card), ControlJson.Default.CreditTakeRequest, ControlJson.Default.CreditTakeReport,
            DeskPatience, cancellationToken).ConfigureAwait(false);
        return taken.Taken;
    }

    private static Argument<string> Id() => new("ID") { Description = "The program's id, or its first 8 characters or more, as quid host ls lists it." };

    /// <summary>
    /// Runs a module here as a host would before anyone pays for it: checked against the host
    /// interface and the limits, started, and handed a message if asked, in the same sandbox.
    /// </summary>
    private static Command CreateCheck()
    {
        var file = new Argument<string>("PROGRAM") { Description = "The WebAssembly module to check: binary (.wasm) or text (.wat)." };
        var message = new Option<string>("--message") { Description = "A message (text) to hand it once started: what it sends back is shown." };
        var check = new Command("check", "Check a program here, in the sandbox a host runs it in, before you pay to deploy it: what a host would refuse, and what its start and a message cost in fuel.");
        check.Arguments.Add(file);
        check.Options.Add(message);
        check.SetAction(parse =>
        {
            const long Fuel = Quid.Wire.CpuBlock.FuelPerGfuel;
            using var engine = new Quid.Programs.ProgramEngine(TimeProvider.System);
            try
            {
                using var program = Quid.Programs.HostedProgram.Load(engine, Quid.Programs.HostedProgram.ReadModule(parse.GetValue(file)!), new Quid.Programs.ProgramLimits(), Fuel);
                AnsiConsole.MarkupLine($"A host would take it: its start took {Fuel - program.Fuel:N0} fuel; it holds {Render.Bytes(program.MemoryBytes)} of memory.");
                if (parse.GetValue(message) is { } text)
                {
                    long before = program.Fuel;
                    program.Deliver(System.Text.Encoding.UTF8.GetBytes(text));
                    var sent = program.TakeOutbox();
                    AnsiConsole.MarkupLine($"The message took {before - program.Fuel:N0} fuel; it sent {sent.Count} message(s){(program.WakeAfter is { } wake ? $" and asked to be woken in {wake.TotalMilliseconds:0} ms" : "")}.");
                    foreach (var m in sent)
                        AnsiConsole.MarkupLine(Markup.Escape($"  to {(m.To.AsSpan().SequenceEqual(Quid.Programs.ProgramHost.ReplyAddress) ? "the poster" : System.Text.Encoding.ASCII.GetString(m.To))}: {m.Body.Length} bytes, {Convert.ToHexString(m.Body.AsSpan(0, Math.Min(16, m.Body.Length)))}…"));
                }
                return ExitCodes.Ok;
            }
            catch (Quid.Programs.ProgramException e)
            {
                AnsiConsole.MarkupLine($"[red]{Markup.Escape(e.Error.ToString())}[/]: {Markup.Escape(e.Message)}");
                return ExitCodes.Failed;
            }
            catch (IOException e)
            {
                AnsiConsole.MarkupLine($"[red]Cannot read it[/]: {Markup.Escape(e.Message)}");
                return ExitCodes.Failed;
            }
        });
        return check;
    }

    private static Command CreateDeploy()
    {
        var file = new Argument<string>("PROGRAM") { Description = "The WebAssembly module to run: binary (.wasm) or text (.wat), compiled here." };
        var on = new Option<string>("--on") { Description = "The node to run it on (its id): one whose credits you hold.", Required = true };
        var credits = Credits("for its fuel (each credit is 64 Mfuel; at least 16)");
        var postage = new Option<uint>("--postage") { Description = "Credits of its host each message to it must pay, which become its fuel; 0 for free.", DefaultValueFactory = _ => 0 };
        var deploy = ApiCommand.Create("host deploy", "Run a program on another node; prints its id and its session address.",
            async (client, json, parse, cancellationToken) =>
            {
                long amount = await CreditsAsync(client, parse.GetValue(credits)!, cancellationToken).ConfigureAwait(false);
                var request = new DeployRequest(Path.GetFullPath(parse.GetValue(file)!), parse.GetValue(on)!, amount, parse.GetValue(postage));
                var deployed = await client.PostAsync("/api/programs", request, ControlJson.Default.DeployRequest, ControlJson.Default.DeployedReport, DeskPatience, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(deployed, ControlJson.Default.DeployedReport);
                else Show([deployed]);
                return ExitCodes.Ok;
            }, (ApiCommand.Offline?)null, on, credits, postage);
        deploy.Arguments.Add(file);
        return deploy;
    }

    private static Command CreateList() =>
        ApiCommand.Create("host ls", "List the programs you run on other nodes, as their hosts said at the last check.",
            async (client, json, parse, cancellationToken) =>
            {
                var programs = await client.GetAsync("/api/programs", ControlJson.Default.IReadOnlyListDeployedReport, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(programs, ControlJson.Default.IReadOnlyListDeployedReport);
                else if (programs.Count == 0) AnsiConsole.MarkupLine("[grey]No programs. 'quid host deploy PROGRAM.wasm --on NODE --credits 64' runs one.[/]");
                else Show(programs);
                return ExitCodes.Ok;
            });

    private static Command CreateStatus()
    {
        var id = Id();
        var status = ApiCommand.Create("host status", "Ask a program's host how it is now: fuel, state, and when it would be deleted.",
            async (client, json, parse, cancellationToken) =>
            {
                var program = await client.GetRefusableAsync("/api/programs/" + Uri.EscapeDataString(parse.GetValue(id)!), ControlJson.Default.DeployedReport, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(program, ControlJson.Default.DeployedReport);
                else Show([program]);
                return ExitCodes.Ok;
            });
        status.Arguments.Add(id);
        return status;
    }

    private static Command CreateTopUp()
    {
        var id = Id();
        var credits = Credits("for more fuel");
        var on = new Option<string>("--on") { Description = "Its host (node id), for a program that is not yours: anyone holding a program's whole id may top it up." };
        var topUp = ApiCommand.Create("host topup", "Add fuel to a program; a paused one runs again.",
            async (client, json, parse, cancellationToken) =>
            {
                long amount = await CreditsAsync(client, parse.GetValue(credits)!, cancellationToken).ConfigureAwait(false);
                var program = await client.PostAsync("/api/programs/" + Uri.EscapeDataString(parse.GetValue(id)!) + "/topup", new TopUpRequest(amount, parse.GetValue(on)),
                    ControlJson.Default.TopUpRequest, ControlJson.Default.DeployedReport, DeskPatience, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(program, ControlJson.Default.DeployedReport);
                else Show([program]);
                return ExitCodes.Ok;
            }, (ApiCommand.Offline?)null, credits, on);
        topUp.Arguments.Add(id);
        return topUp;
    }

    private static Command CreateStop()
    {
        var id = Id();
        var stop = ApiCommand.Create("host stop", "Stop a program for good: its host deletes it and all it kept.",
            async (client, json, parse, cancellationToken) =>
            {
                await client.DeleteAsync("/api/programs/" + Uri.EscapeDataString(parse.GetValue(id)!), DeskPatience, cancellationToken).ConfigureAwait(false);
                return ExitCodes.Ok;
            });
        stop.Arguments.Add(id);
        return stop;
    }

    private static void Show(IReadOnlyList<DeployedReport> programs)
    {
        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn(new TableColumn("id").NoWrap());
        table.AddColumns("name", "host", "state", "fuel", "address");
        foreach (var p in programs)
        {
            string state = p.State.ToLowerInvariant() + (p.Low ? ", [yellow]low[/]" : "") + (p.DeleteAt is { } at ? $"\ndeleted {Render.Utc(at)}" : "");
            table.AddRow(p.Id[..12], Markup.Escape(p.Name), Render.Brief(p.Host), state, $"{p.Fuel:N0}", p.Address);
        }
        AnsiConsole.Write(table);
    }
}
