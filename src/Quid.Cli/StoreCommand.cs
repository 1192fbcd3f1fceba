using System.CommandLine;
using Quid.Node.Control;
using Spectre.Console;

namespace Quid.Cli;

/// <summary>
/// <c>quid store put|get|ls|renew|rm|check</c>: files sealed here and kept on other nodes, paid in
/// their credits; and <c>quid hosted</c>: what this node keeps for others, which it cannot read.
/// </summary>
internal static class StoreCommand
{
    /// <summary>A put seals, pays and uploads every copy through circuits: minutes for a large file.</summary>
    private static readonly TimeSpan TransferPatience = TimeSpan.FromMinutes(30);

    public static Command Create()
    {
        var command = new Command("store", "Keep files on other nodes: sealed here (hosts never see their content or name), paid in the hosts' credits, audited and repaired.");
        command.Subcommands.Add(CreatePut());
        command.Subcommands.Add(CreateGet());
        command.Subcommands.Add(List("ls", "List the files you stored: id, name, size, and each copy's host, paid-until and state.", "/api/store", post: false));
        command.Subcommands.Add(CreateRenew());
        command.Subcommands.Add(CreateRemove());
        command.Subcommands.Add(List("check", "Audit every copy now: a host that lost one is replaced from another copy; one paid for less than a day more is renewed.", "/api/store/check", post: true));
        return command;
    }

    private static Argument<string> Id() => new("ID") { Description = "The file's id, or its first 8 characters or more, as quid store ls lists it." };

    private static Command CreatePut()
    {
        var file = new Argument<string>("FILE") { Description = "The file to store." };
        var days = new Option<int>("--days") { Description = "Days to pay for (each costs the file's size in MiB, per copy).", DefaultValueFactory = _ => 7 };
        var copies = new Option<int>("--copies") { Description = "Copies, each on another host.", DefaultValueFactory = _ => 3 };
        var put = ApiCommand.Create("store put", "Seal a file and store copies of it on hosts whose credits you hold.",
            async (client, json, parse, cancellationToken) =>
            {
                var request = new StoreRequest(Path.GetFullPath(parse.GetValue(file)!), parse.GetValue(days), parse.GetValue(copies));
                var stored = await client.PostAsync("/api/store", request, ControlJson.Default.StoreRequest, ControlJson.Default.StoredReport, TransferPatience, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(stored, ControlJson.Default.StoredReport);
                else Show([stored]);
                return ExitCodes.Ok;
            }, (ApiCommand.Offline?)null, days, copies);
        put.Arguments.Add(file);
        return put;
    }

    private static Command CreateGet()
    {
        var id = Id();
        var output = new Option<string>("--output", "-o") { Description = "Write the file here rather than to standard output." };
        var get = ApiCommand.Create("store get", "Fetch a stored file from the first copy that reads back whole, and check it.",
            async (client, json, parse, cancellationToken) =>
            {
                using var response = await client.GetContentAsync("/api/store/" + Uri.EscapeDataString(parse.GetValue(id)!), TransferPatience, cancellationToken).ConfigureAwait(false);
                await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                string? path = parse.GetValue(output);
                await using var target = path is null ? Console.OpenStandardOutput() : File.Create(path);
                await body.CopyToAsync(target, cancellationToken).ConfigureAwait(false);
                return ExitCodes.Ok;
            }, (ApiCommand.Offline?)null, output);
        get.Arguments.Add(id);
        return get;
    }

    private static Command CreateRenew()
    {
        var id = Id();
        var days = new Option<int>("--days") { Description = "Days more to pay for, at every copy.", DefaultValueFactory = _ => 7 };
        var renew = ApiCommand.Create("store renew", "Pay every copy's host for more days.",
            async (client, json, parse, cancellationToken) =>
            {
                var stored = await client.PostAsync("/api/store/" + Uri.EscapeDataString(parse.GetValue(id)!) + "/renew", new RenewRequest(parse.GetValue(days)),
                    ControlJson.Default.RenewRequest, ControlJson.Default.StoredReport, TransferPatience, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(stored, ControlJson.Default.StoredReport);
                else Show([stored]);
                return ExitCodes.Ok;
            }, (ApiCommand.Offline?)null, days);
        renew.Arguments.Add(id);
        return renew;
    }

    private static Command CreateRemove()
    {
        var id = Id();
        var remove = ApiCommand.Create("store rm", "Remove a stored file from every host, and forget it.",
            async (client, json, parse, cancellationToken) =>
            {
                await client.DeleteAsync("/api/store/" + Uri.EscapeDataString(parse.GetValue(id)!), TransferPatience, cancellationToken).ConfigureAwait(false);
                return ExitCodes.Ok;
            });
        remove.Arguments.Add(id);
        return remove;
    }

    private static Command List(string name, string description, string path, bool post) =>
        ApiCommand.Create("store " + name, description,
            async (client, json, parse, cancellationToken) =>
            {
                var files = post
                    ? await client.PostAsync(path, ControlJson.Default.IReadOnlyListStoredReport, TransferPatience, cancellationToken).ConfigureAwait(false)
                    : await client.GetAsync(path, ControlJson.Default.IReadOnlyListStoredReport, cancellationToken).ConfigureAwait(false);
                if (json) Render.Json(files, ControlJson.Default.IReadOnlyListStoredReport);
                else if (files.Count == 0) AnsiConsole.MarkupLine("[grey]No stored files. 'quid store put FILE' stores one.[/]");
                else Show(files);
                return ExitCodes.Ok;
            });

    private static void Show(IReadOnlyList<StoredReport> files)
    {
        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn(new TableColumn("id").NoWrap());
        table.AddColumns("name", "size", "copies");
        foreach (var f in files)
        {
            string copies = string.Join("\n", f.Copies.Select(c => $"{Render.Brief(c.Host)} {c.State.ToLowerInvariant()}, paid until {Render.Utc(c.PaidUntil)}, {c.AuditsLeft} audits left"));
            table.AddRow(f.Id[..12], Markup.Escape(f.Name), Render.Bytes(f.Size), $"{f.Copies.Count(c => c.State is "Held" or "Expiring")} of {f.CopiesWanted}\n{Markup.Escape(copies)}");
        }
        AnsiConsole.Write(table);
    }

    public static Command CreateHosted() =>
        ApiCommand.Create("hosted", "Show what this node keeps and runs for others: sizes, fuel and dates only; it never learns whose they are.",
            async (client, json, parse, cancellationToken) =>
            {
                var report = await client.GetAsync("/api/hosted", ControlJson.Default.HostedReport, cancellationToken).ConfigureAwait(false);
                if (json)
                {
                    Render.Json(report, ControlJson.Default.HostedReport);
                    return ExitCodes.Ok;
                }
                if (report.Quota == 0)
                    AnsiConsole.MarkupLine("[grey]This node offers no disk: start it with --offer-disk 1GiB to keep others' files, paid in its credits.[/]");
                else
                {
                    AnsiConsole.MarkupLine($"{Render.Bytes(report.Used)} of {Render.Bytes(report.Quota)} offered, in {report.Objects.Count} object(s).");
                    if (report.Objects.Count > 0)
                    {
                        var table = new Table().Border(TableBorder.Rounded);
                        table.AddColumns("id", "size", "paid until", "stored", "owner warned");
                        foreach (var o in report.Objects)
                            table.AddRow(o.Id[..12], Render.Bytes(o.Size), Render.Utc(o.PaidUntil), Render.Utc(o.StoredAt), o.WarnedAt is { } w ? Render.Utc(w) : "-");
                        AnsiConsole.Write(table);
                    }
                }
                var programs = report.Programs ?? [];
                if (report.OfferCpuGfuel == 0)
                {
                    AnsiConsole.MarkupLine("[grey]This node offers no CPU: start it with --offer-cpu 1Tfuel to run others' programs, paid in its credits.[/]");
                    return ExitCodes.Ok;
                }
                AnsiConsole.MarkupLine($"{report.OfferCpuGfuel} Gfuel a day offered; {programs.Count} program(s) running or paused.");
                if (programs.Count == 0) return ExitCodes.Ok;
                var running = new Table().Border(TableBorder.Rounded);
                running.AddColumns("program", "state", "fuel", "memory", "store", "postage", "deleted");
                foreach (var p in programs)
                    running.AddRow(p.Id[..12], p.State.ToLowerInvariant() + (p.Low ? ", low" : ""), $"{p.Fuel:N0}", Render.Bytes(p.MemoryBytes), Render.Bytes(p.StoredBytes),
                        $"{p.Postage}", p.DeleteAt is { } at ? Render.Utc(at) : "-");
                AnsiConsole.Write(running);
                return ExitCodes.Ok;
            });
}
