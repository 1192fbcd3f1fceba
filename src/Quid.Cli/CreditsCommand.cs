using System.CommandLine;
using Quid.Node.Control;
using Spectre.Console;

namespace Quid.Cli;

/// <summary>
/// <c>quid credits</c>: the credits this node holds, by issuer, and what it issues; <c>give</c>
/// writes a card (the seed's pre-paid card) to standard output, <c>take</c> reads one and makes
/// its credits ours by exchanging them at their issuer.
/// </summary>
internal static class CreditsCommand
{
    /// <summary>An exchange builds a circuit to the issuer: longer than a plain question takes.</summary>
    private static readonly TimeSpan ExchangePatience = TimeSpan.FromSeconds(90);

    public static Command Create()
    {
        var command = ApiCommand.Create("credits",
            "Show the credits you hold, by issuer (what they buy there, in MiB of disk kept for a day, and when they expire), and what this node issues to its partners for the disk it grants them.",
            async (client, json, parse, cancellationToken) =>
            {
                var report = await client.GetAsync("/api/credits", ControlJson.Default.CreditReport, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(report, ControlJson.Default.CreditReport);
                else Show(report);
                return ExitCodes.Ok;
            });
        command.Subcommands.Add(CreateGive());
        command.Subcommands.Add(CreateTake());
        return command;
    }

    private static Command CreateGive()
    {
        var issuer = new Argument<string>("ISSUER") { Description = "The node whose credits to give, as 'quid credits' lists it (its id in full)." };
        var amount = new Argument<long>("AMOUNT") { Description = "MiB·days to give." };
        var give = ApiCommand.Create("credits give",
            "Take credits out of your wallet as a card, printed on standard output (quid credits give ISSUER 64 > card.txt). Whoever holds the card can take them: hand it over privately.",
            async (client, json, parse, cancellationToken) =>
            {
                var card = await client.PostAsync("/api/credits/give", new CreditGiveRequest(parse.GetValue(issuer)!, parse.GetValue(amount)),
                    ControlJson.Default.CreditGiveRequest, ControlJson.Default.CreditCardReport, ExchangePatience, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(card, ControlJson.Default.CreditCardReport);
                else Console.Write(card.Card);
                await Console.Error.WriteLineAsync($"A card of {card.Amount} MiB·days: they are out of your wallet now.").ConfigureAwait(false);
                return ExitCodes.Ok;
            });
        give.Arguments.Add(issuer);
        give.Arguments.Add(amount);
        return give;
    }

    private static Command CreateTake()
    {
        var file = new Argument<string>("CARD") { Description = "The card's file, or - to read it from standard input." };
        var take = ApiCommand.Create("credits take",
            "Take a card's credits: they are exchanged at their issuer, through a circuit, for fresh ones only you hold, so the giver's copy is worth nothing after.",
            async (client, json, parse, cancellationToken) =>
            {
                string path = parse.GetValue(file)!;
                string text;
                try
                {
                    text = path == "-" ? await Console.In.ReadToEndAsync(cancellationToken).ConfigureAwait(false) : await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    await Console.Error.WriteLineAsync($"quid credits take: cannot read {path}: {e.Message}").ConfigureAwait(false);
                    return ExitCodes.Failed;
                }
                var taken = await client.PostAsync("/api/credits/take", new CreditTakeRequest(text), ControlJson.Default.CreditTakeRequest,
                    ControlJson.Default.CreditTakeReport, ExchangePatience, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(taken, ControlJson.Default.CreditTakeReport);
                else Console.WriteLine($"Took {taken.Taken} MiB·days of credits.");
                return ExitCodes.Ok;
            });
        take.Arguments.Add(file);
        return take;
    }

    private static void Show(CreditReport report)
    {
        if (report.Balances.Count == 0)
            AnsiConsole.MarkupLine(report.RequestDiskMiB is null && report.RequestCpuGfuel is null
                ? "[grey]You hold no credits. Ask partners for disk with --request-disk 256MiB or CPU with --request-cpu 64Gfuel, or take a card with 'quid credits take card.txt'.[/]"
                : "[grey]You hold no credits yet: partners that grant you disk or CPU issue them within a minute of the agreement.[/]");
        else
        {
            var table = new Table().Border(TableBorder.Rounded);
            table.AddColumn(new TableColumn("issuer").NoWrap());
            table.AddColumns("MiB·days", "credits", "soonest expiry");
            foreach (var b in report.Balances) table.AddRow(b.Issuer, $"{b.MiBDays}", $"{b.Credits}", Render.Utc(b.SoonestExpiry));
            AnsiConsole.Write(table);
        }
        AnsiConsole.MarkupLine(report.OfferDiskMiB > 0
            ? $"As an issuer: {report.OfferDiskMiB} MiB of disk offered, {report.FreeDiskMiB} MiB not granted; {report.IssuedMiBDays} MiB·days issued and {report.ExchangedMiBDays} exchanged since start; {report.SpentCredits} credits in the spent set."
            : $"As an issuer: no disk offered (--offer-disk 1GiB to offer some); {report.ExchangedMiBDays} MiB·days exchanged since start.");
        if (report.OfferCpuGfuel > 0)
            AnsiConsole.MarkupLine($"CPU: {report.OfferCpuGfuel} Gfuel a day offered, {report.FreeCpuGfuel} not granted; a credit buys {Quid.Wire.CpuBlock.FuelPerCredit >> 20} Mfuel of it.");
        AnsiConsole.MarkupLine($"[grey]Epoch {report.Epoch} ends {Render.Utc(report.EpochEnds)}; credits last to the end of the epoch after the one they were issued in.[/]");
    }
}
