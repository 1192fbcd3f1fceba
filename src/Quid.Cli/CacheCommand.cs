using System.CommandLine;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Cache;
using Quid.Node;
using Quid.Node.Configuration;
using Quid.Node.Control;
using Spectre.Console;

namespace Quid.Cli;

/// <summary>
/// <c>quid cache</c>: what the exit cache holds, with its figures; <c>show</c>, <c>save</c>,
/// <c>purge</c> and <c>wipe</c> act on its entries, named by a key as the listing prints it. Each
/// asks the running node; when none runs, each reads (purge and wipe change) the cache in the data
/// directory, so they work either way.
/// </summary>
internal static class CacheCommand
{
    public const string NoCache = "This node keeps no exit cache: start it with --cache 2GiB (or cache = \"2GiB\" in quid.toml).";

    /// <summary>How much of a key the listing prints: enough to be unique in any cache, short enough for a table.</summary>
    private const int ShownKey = 12;

    public static Command Create()
    {
        var search = new Option<string>("--search") { Description = "Only entries whose URL holds this text (case does not matter)." };
        var type = new Option<string>("--type") { Description = "Only entries whose type starts with this, such as image or text/html." };
        var host = new Option<string>("--host") { Description = "Only entries from hosts that end with this, such as example.org." };
        var command = ApiCommand.Create("cache",
            "Show what the exit cache holds: its figures (hit ratio, bytes saved) and its entries, with the keys that quid cache show, save and purge take.",
            async (client, json, parse, cancellationToken) =>
            {
                string query = Query(("q", parse.GetValue(search)), ("type", parse.GetValue(type)), ("host", parse.GetValue(host)));
                var report = await client.GetAsync("/api/cache" + query, ControlJson.Default.CacheReport, cancellationToken).ConfigureAwait(false);
                if (!report.Enabled) return NoCacheHere("cache");
                List(report, json, offlineDirectory: null);
                return ExitCodes.Ok;
            },
            offline: (settings, json, parse, _) => Task.FromResult(ListOffline(settings, json, parse.GetValue(search), parse.GetValue(type), parse.GetValue(host))),
            search, type, host);
        command.Subcommands.Add(CreateShow());
        command.Subcommands.Add(CreateSave());
        command.Subcommands.Add(CreatePurge());
        command.Subcommands.Add(CreateWipe());
        return command;
    }

    private static Argument<string> Key() => new("KEY") { Description = $"An entry's key, or its first {CacheViews.MinKeyPrefix} characters or more, as quid cache lists it." };

    private static Command CreateShow()
    {
        var key = Key();
        var show = ApiCommand.Create("cache show", "Show one entry: its URL, type, size, hits, age, whether it is fresh, and the head the origin sent with it.",
            async (client, json, parse, cancellationToken) =>
            {
                string name = parse.GetValue(key)!;
                if (KeyRefused("cache show", name)) return ExitCodes.Failed;
                Show(await client.GetRefusableAsync(EntryPath(name), ControlJson.Default.CacheEntryReport, cancellationToken).ConfigureAwait(false), json, offlineDirectory: null);
                return ExitCodes.Ok;
            },
            offline: (settings, json, parse, _) =>
            {
                string name = parse.GetValue(key)!;
                if (KeyRefused("cache show", name)) return Task.FromResult(ExitCodes.Failed);
                string directory = CacheDirectory(settings);
                if (FindOffline("cache show", settings, name) is not { } entry) return Task.FromResult(ExitCodes.Failed);
                Show(CacheViews.Entry(entry, DateTimeOffset.UtcNow, withHead: true), json, directory);
                return Task.FromResult(ExitCodes.Ok);
            });
        show.Arguments.Add(key);
        return show;
    }

    private static Command CreateSave()
    {
        var key = Key();
        var file = new Argument<string?>("FILE")
        {
            Arity = ArgumentArity.ZeroOrOne,
            Description = "Where to write the body. Without it, or with -, to standard output: redirected, or a terminal for a text body only.",
        };
        var save = ApiCommand.Create("cache save", "Write an entry's body as it is stored (compressed, if the origin sent it so) to a file or standard output.",
            async (client, json, parse, cancellationToken) =>
            {
                string name = parse.GetValue(key)!;
                if (KeyRefused("cache save", name)) return ExitCodes.Failed;
                var entry = await client.GetRefusableAsync(EntryPath(name), ControlJson.Default.CacheEntryReport, cancellationToken).ConfigureAwait(false);
                if (Target(parse.GetValue(file), entry) is not { } destination) return ExitCodes.Failed;
                using var response = await client.GetContentAsync(EntryPath(entry.Key) + "/body", cancellationToken).ConfigureAwait(false);
                var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                await using (body.ConfigureAwait(false))
                    return await WriteAsync(body, entry, destination, json, offlineDirectory: null, cancellationToken).ConfigureAwait(false);
            },
            offline: async (settings, json, parse, _) =>
            {
                string name = parse.GetValue(key)!;
                if (KeyRefused("cache save", name)) return ExitCodes.Failed;
                string directory = CacheDirectory(settings);
                if (FindOffline("cache save", settings, name) is not { } stored) return ExitCodes.Failed;
                var entry = CacheViews.Entry(stored, DateTimeOffset.UtcNow, withHead: true);
                if (Target(parse.GetValue(file), entry) is not { } destination) return ExitCodes.Failed;
                if (OpenWholeBody(directory, stored) is not { } body) return ExitCodes.Failed;
                await using (body.ConfigureAwait(false))
                    return await WriteAsync(body, entry, destination, json, directory, CancellationToken.None).ConfigureAwait(false);
            });
        save.Arguments.Add(key);
        save.Arguments.Add(file);
        return save;
    }

    private static Command CreatePurge()
    {
        var pattern = new Argument<string?>("PATTERN")
        {
            Arity = ArgumentArity.ZeroOrOne,
            Description = "A URL with * for any run of characters, with or without http://, such as 'example.org/*' or '*.jpg' (quoted, so the shell leaves the * alone). Without one, the stale entries.",
        };
        var purge = ApiCommand.Create("cache purge",
            "Remove the entries a pattern matches; without one, the stale entries (those a request would have to check with the origin first).",
            async (client, json, parse, cancellationToken) =>
            {
                string? glob = Pattern(parse.GetValue(pattern));
                var purged = await client.PostAsync("/api/cache/purge" + Query(("pattern", glob)), ControlJson.Default.CachePurgeReport, cancellationToken).ConfigureAwait(false);
                Purged(purged, glob, json, offlineDirectory: null);
                return ExitCodes.Ok;
            },
            offline: (settings, json, parse, reason) =>
            {
                string? glob = Pattern(parse.GetValue(pattern));
                Func<StoredResponse, bool> match = glob is null ? e => !CacheViews.Fresh(e, DateTimeOffset.UtcNow) : new CachePattern(glob).Matches;
                return Task.FromResult(ChangeOffline("cache purge", settings, reason, store => store.Purge(match),
                    (removed, directory) => Purged(new CachePurgeReport(removed), glob, json, directory)));
            });
        purge.Arguments.Add(pattern);
        return purge;
    }

    private static Command CreateWipe()
    {
        var wipe = ApiCommand.Create("cache wipe", "Remove every entry of the exit cache, at once and without asking. The cache stays on, and fills again.",
            async (client, json, _, cancellationToken) =>
            {
                Wiped(await client.PostAsync("/api/cache/wipe", ControlJson.Default.CachePurgeReport, cancellationToken).ConfigureAwait(false), json, offlineDirectory: null);
                return ExitCodes.Ok;
            },
            offline: (settings, json, _, reason) => Task.FromResult(ChangeOffline("cache wipe", settings, reason, store => store.Purge(_ => true),
                (removed, directory) => Wiped(new CachePurgeReport(removed), json, directory))));
        return wipe;
    }

    // ---- The listing ----

    private static int ListOffline(NodeSettings settings, bool json, string? search, string? type, string? host)
    {
        string directory = CacheDirectory(settings);
        if (ReadListing("cache", settings) is not { } entries) return ExitCodes.Failed;
        var report = CacheViews.Report(entries, settings.Node.Cache?.Quota ?? 0, CacheViews.OnDisk(directory), default, search, type, host,
            CacheViews.MaxListed, DateTimeOffset.UtcNow);
        List(report, json, directory);
        return ExitCodes.Ok;
    }

    private static void List(CacheReport report, bool json, string? offlineDirectory)
    {
        if (json)
        {
            Render.Json(report, CliJson.Default.CacheReport);
            return;
        }
        if (offlineDirectory is not null)
            AnsiConsole.MarkupLine($"[grey]The node is not running: this is the cache as it lies in {Markup.Escape(offlineDirectory)}.[/]");
        AnsiConsole.MarkupLine(Header(report, offline: offlineDirectory is not null));
        if (report.Entries == 0)
        {
            AnsiConsole.MarkupLine("The cache is empty: a response is stored once a second circuit has fetched it through this node.");
            return;
        }
        if (report.Matching == 0)
        {
            AnsiConsole.MarkupLine($"No entry matches; quid cache without --search, --type or --host lists all {report.Entries}.");
            return;
        }
        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn(new TableColumn("key").NoWrap());
        table.AddColumn(new TableColumn("host").NoWrap());
        table.AddColumn("path");
        table.AddColumn(new TableColumn("type").NoWrap());
        table.AddColumn(new TableColumn("size").RightAligned().NoWrap());
        table.AddColumn(new TableColumn("hits").RightAligned());
        table.AddColumn(new TableColumn("age").NoWrap());
        foreach (var e in report.Items)
        {
            table.AddRow(e.Key[..Math.Min(ShownKey, e.Key.Length)], Markup.Escape(e.Host), Markup.Escape(Shorten(e.Path, 60)),
                e.Type.Length == 0 ? "[grey]-[/]" : Markup.Escape(e.Type), Render.Bytes(e.Size), $"{e.Hits}",
                Render.Age(TimeSpan.FromSeconds(e.AgeSeconds)) + (e.Fresh ? "" : " [grey]stale[/]"));
        }
        AnsiConsole.Write(table);
        if (report.Matching > report.Items.Count)
            AnsiConsole.MarkupLine($"[grey]The {report.Items.Count} most recently stored of {report.Matching} entries: narrow the list with --search, --type or --host.[/]");
        AnsiConsole.MarkupLine("[grey]quid cache show KEY · quid cache save KEY FILE · quid cache purge 'example.org/*' · quid cache wipe[/]");
    }

    private static string Header(CacheReport r, bool offline)
    {
        string quota = r.Quota > 0 ? Render.Bytes(r.Quota) : "no quota (cache = off in the settings)";
        string entries = r.Entries == 1 ? "1 entry" : $"{r.Entries} entries";
        if (offline)
            return $"[bold]Exit cache[/]: {Render.Bytes(r.Used)} on disk of {quota} · {entries} · [grey]hit ratio, byte hit ratio and bytes saved are counted while the node runs[/]";
        return $"[bold]Exit cache[/]: {Render.Bytes(r.Used)} used of {quota} · {entries} · hit ratio {Percent(r.HitRatio)} ({r.Hits} of {r.Requests} requests)" +
            $" · byte hit ratio {Percent(r.ByteHitRatio)} · {Render.Bytes(r.BytesSaved)} saved";
    }

    // ---- One entry ----

    private static void Show(CacheEntryReport e, bool json, string? offlineDirectory)
    {
        if (json)
        {
            Render.Json(e, CliJson.Default.CacheEntryReport);
            return;
        }
        if (offlineDirectory is not null)
            AnsiConsole.MarkupLine($"[grey]The node is not running: this is the entry as it lies in {Markup.Escape(offlineDirectory)}.[/]");
        var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        grid.AddRow("[bold]key[/]", e.Key);
        grid.AddRow("[bold]url[/]", Markup.Escape(e.Url));
        grid.AddRow("type", $"{(e.Type.Length == 0 ? "none given" : Markup.Escape(e.Type))} · {Render.Bytes(e.Size)} · status {e.Status}");
        grid.AddRow("hits", $"{e.Hits}");
        grid.AddRow("stored", $"{Render.Utc(e.StoredAt)}, {Render.Age(TimeSpan.FromSeconds(e.AgeSeconds))} ago");
        grid.AddRow("fresh", e.Fresh
            ? "[green]yes[/]: it answers requests without asking the origin"
            : "[yellow]no[/]: the next request for it asks the origin first (quid cache purge, without a pattern, removes the stale entries)");
        AnsiConsole.Write(grid);
        AnsiConsole.WriteLine();
        AnsiConsole.MarkupLine("[bold]head[/] [grey](as the origin sent it, or as a revalidation updated it)[/]");
        // Written as they are, not as markup: a field may hold anything the origin chose.
        foreach (var line in e.Head ?? []) Console.WriteLine("  " + line);
    }

    /// <summary>Where <c>save</c> writes: a file, or null for standard output; nothing when a binary body would go to a terminal (said why).</summary>
    private static Destination? Target(string? file, CacheEntryReport entry)
    {
        if (file is not null && file != "-")
        {
            if (Directory.Exists(file))
            {
                Console.Error.WriteLine($"quid cache save: {file} is a folder: give the file to write, such as {Path.Combine(file, SuggestedName(entry))}.");
                return null;
            }
            return new Destination(Path.GetFullPath(file));
        }
        if (Console.IsOutputRedirected || Textual(entry)) return new Destination(null);
        Console.Error.WriteLine($"quid cache save: the body of {entry.Url} is {(Coding(entry) is { } coding ? $"{coding}-encoded " : "")}{(entry.Type.Length == 0 ? "of no given type" : entry.Type)} " +
            $"({Render.Bytes(entry.Size)}), which would garble a terminal: give a file (quid cache save {entry.Key[..ShownKey]} {SuggestedName(entry)}) " +
            $"or redirect it (quid cache save {entry.Key[..ShownKey]} > {SuggestedName(entry)}).");
        return null;
    }

    /// <summary>Writes the body to the destination whole, or not at all: a file appears only once every byte is in it.</summary>
    private static async Task<int> WriteAsync(Stream body, CacheEntryReport entry, Destination destination, bool json, string? offlineDirectory, CancellationToken cancellationToken)
    {
        if (destination.File is null)
        {
            var output = Console.OpenStandardOutput();
            await using (output.ConfigureAwait(false))
            {
                long sent = await CopyAsync(body, output, cancellationToken).ConfigureAwait(false);
                await output.FlushAsync(cancellationToken).ConfigureAwait(false);
                if (sent == entry.Size) return ExitCodes.Ok;
                await Console.Error.WriteLineAsync($"quid cache save: the body of {entry.Url} ended after {sent} of its {entry.Size} bytes.").ConfigureAwait(false);
                return ExitCodes.Failed;
            }
        }
        string file = destination.File;
        string partial = Path.Combine(Path.GetDirectoryName(file)!, $".{Path.GetFileName(file)}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}.part");
        try
        {
            long written;
            var target = new FileStream(partial, FileMode.CreateNew, FileAccess.Write);
            await using (target.ConfigureAwait(false))
                written = await CopyAsync(body, target, cancellationToken).ConfigureAwait(false);
            if (written != entry.Size)
            {
                File.Delete(partial);
                await Console.Error.WriteLineAsync($"quid cache save: the body of {entry.Url} ended after {written} of its {entry.Size} bytes; {file} was not written.").ConfigureAwait(false);
                return ExitCodes.Failed;
            }
            File.Move(partial, file, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            File.Delete(partial);
            await Console.Error.WriteLineAsync($"quid cache save: cannot write {file}: {e.Message}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }
        if (json)
        {
            Render.Json(new CacheSaved(entry.Key, entry.Url, file, entry.Size), CliJson.Default.CacheSaved);
            return ExitCodes.Ok;
        }
        string coding = Coding(entry) is { } c ? $", {c}-encoded as the origin sent it" : "";
        AnsiConsole.MarkupLine(Markup.Escape($"Saved {entry.Url} to {file}: {Render.Bytes(entry.Size)} of {(entry.Type.Length == 0 ? "no given type" : entry.Type)}{coding}.")
            + (offlineDirectory is null ? "" : $" [grey](read from {Markup.Escape(offlineDirectory)}: the node is not running)[/]"));
        return ExitCodes.Ok;
    }

    private static async Task<long> CopyAsync(Stream from, Stream to, CancellationToken cancellationToken)
    {
        var buffer = new byte[81920];
        long total = 0;
        int read;
        while ((read = await from.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            await to.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
            total += read;
        }
        return total;
    }

    /// <summary>Whether a terminal shows the body as text: a textual type, sent without a content coding.</summary>
    private static bool Textual(CacheEntryReport entry)
    {
        if (Coding(entry) is not null) return false;
        string type = entry.Type;
        return type.StartsWith("text/", StringComparison.Ordinal) || type.EndsWith("+json", StringComparison.Ordinal) || type.EndsWith("+xml", StringComparison.Ordinal)
            || type is "application/json" or "application/javascript" or "application/xml" or "application/x-javascript" or "application/ecmascript";
    }

    /// <summary>The content coding the origin applied (gzip, br…), or null for none.</summary>
    private static string? Coding(CacheEntryReport entry) =>
        (entry.Head ?? []).Where(l => l.StartsWith("Content-Encoding:", StringComparison.OrdinalIgnoreCase))
            .Select(l => l["Content-Encoding:".Length..].Trim().ToLowerInvariant())
            .FirstOrDefault(c => c.Length > 0 && c != "identity");

    /// <summary>A file name for the body, from the last segment of its path: something to suggest, never used unasked.</summary>
    private static string SuggestedName(CacheEntryReport entry)
    {
        string last = entry.Path.Split('?')[0].Split('/')[^1];
        return last.Length > 0 && last.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_') && last[0] != '.' ? last : "FILE";
    }

    // ---- Purge and wipe ----

    private static void Purged(CachePurgeReport purged, string? pattern, bool json, string? offlineDirectory)
    {
        if (json)
        {
            Render.Json(purged, CliJson.Default.CachePurgeReport);
            return;
        }
        if (offlineDirectory is not null)
            AnsiConsole.MarkupLine($"[grey]The node is not running: purged in {Markup.Escape(offlineDirectory)}.[/]");
        string entries = purged.Removed == 1 ? "1 entry" : $"{purged.Removed} entries";
        if (pattern is null)
            AnsiConsole.MarkupLine(purged.Removed == 0 ? "No entry is stale: nothing was removed." : $"Removed {entries} that had gone stale.");
        else if (purged.Removed > 0)
            AnsiConsole.MarkupLine($"Removed {entries} matching {Markup.Escape(pattern)}.");
        else
            AnsiConsole.MarkupLine($"No entry matches {Markup.Escape(pattern)}: nothing was removed." + (pattern.Contains('*', StringComparison.Ordinal)
                ? ""
                : $" A pattern matches whole URLs: '{Markup.Escape(pattern.TrimEnd('/'))}/*' matches everything under it."));
    }

    private static void Wiped(CachePurgeReport wiped, bool json, string? offlineDirectory)
    {
        if (json)
        {
            Render.Json(wiped, CliJson.Default.CachePurgeReport);
            return;
        }
        string where = offlineDirectory is null ? "" : $" in {Markup.Escape(offlineDirectory)} (the node is not running)";
        AnsiConsole.MarkupLine($"Wiped the exit cache{where}: removed {(wiped.Removed == 1 ? "1 entry" : $"{wiped.Removed} entries")}. It stays on, and fills again as partners' streams fetch through this node.");
    }

    /// <summary>
    /// Purges in the data directory, as the node would: only when no node can be running there, since
    /// a running node keeps its own index in memory and would go on listing what went.
    /// </summary>
    private static int ChangeOffline(string command, NodeSettings settings, ControlUnavailableException reason, Func<CacheStore, int> change, Action<int, string> report)
    {
        if (MayBeRunning(reason))
        {
            Console.Error.WriteLine($"quid {command}: {reason.Message} A node may be running with this data directory, so its cache is left alone: " +
                "try again once it answers, or stop it first.");
            return ExitCodes.Failed;
        }
        string directory = CacheDirectory(settings);
        if (!CacheStore.Exists(directory)) return NoCacheHere(command, settings);
        int removed;
        try
        {
            using var store = CacheStore.Open(directory, long.MaxValue / 2, TimeProvider.System, NullLogger.Instance);
            removed = change(store);
        }
        catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"quid {command}: cannot change the cache in {directory}: {e.Message}{PermissionHint(e)}");
            return ExitCodes.Failed;
        }
        report(removed, directory);
        return ExitCodes.Ok;
    }

    /// <summary>
    /// Whether something answered, or may yet, where the node listens: a connection that was made and
    /// then closed, a timeout, an answer that was not the one expected. Nothing listening, no address
    /// to ask, or a cookie refused by whatever listens now all mean no node of this data directory answers.
    /// </summary>
    private static bool MayBeRunning(ControlUnavailableException reason) => reason.InnerException switch
    {
        HttpRequestException { InnerException: SocketException } => false,
        HttpRequestException or IOException or TaskCanceledException or JsonException => true,
        _ => false,
    };

    // ---- The data directory ----

    private static string CacheDirectory(NodeSettings settings) => Path.Combine(settings.DataDirectory, "cache");

    /// <summary>The entries as the cache's index lists them, or null after saying why there are none to read.</summary>
    private static IReadOnlyList<StoredResponse>? ReadListing(string command, NodeSettings settings)
    {
        string directory = CacheDirectory(settings);
        try
        {
            if (CacheStore.ReadListing(directory) is { } entries) return entries;
        }
        catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"quid {command}: cannot read the cache in {directory}: {e.Message}{PermissionHint(e)}");
            return null;
        }
        NoCacheHere(command, settings);
        return null;
    }

    private static StoredResponse? FindOffline(string command, NodeSettings settings, string key)
    {
        if (ReadListing(command, settings) is not { } entries) return null;
        if (CacheViews.Find(entries, key, out string? problem) is { } entry) return entry;
        Console.Error.WriteLine($"quid {command}: {problem}");
        return null;
    }

    /// <summary>The stored body, checked whole against its SHA-256 as the node checks it before each use; null after saying why not.</summary>
    private static FileStream? OpenWholeBody(string directory, StoredResponse entry)
    {
        string path = Path.Combine(directory, "bodies", entry.Id);
        FileStream? body = null;
        try
        {
            body = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 64 * 1024);
            if (body.Length == entry.BodySize && SHA256.HashData(body).AsSpan().SequenceEqual(entry.Sha256))
            {
                body.Position = 0;
                return body;
            }
            Console.Error.WriteLine($"quid cache save: the stored body of {entry.Url} is not whole (it does not match its checksum), so it is not saved; the node drops it when it next starts.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"quid cache save: cannot read the body of {entry.Url} ({path}): {e.Message}{PermissionHint(e)}");
        }
        body?.Dispose();
        return null;
    }

    private static int NoCacheHere(string command, NodeSettings? settings = null)
    {
        if (settings is not null && !File.Exists(Path.Combine(settings.DataDirectory, NodeDatabase.FileName)))
            Console.Error.WriteLine($"quid {command}: no node has run with data directory {settings.DataDirectory} yet (use --data-dir).");
        else
            Console.Error.WriteLine($"quid {command}: {NoCache}");
        return ExitCodes.Failed;
    }

    private static string PermissionHint(Exception e) =>
        e is UnauthorizedAccessException ? ": run this as the node's user (for the system service: sudo -u quid quid …)." : "";

    // ---- Small things ----

    private static bool KeyRefused(string command, string key)
    {
        if (CacheViews.KeyProblem(key) is not { } problem) return false;
        Console.Error.WriteLine($"quid {command}: {problem}");
        return true;
    }

    private static string EntryPath(string key) => $"/api/cache/{Uri.EscapeDataString(key)}";

    /// <summary>A glob as purge takes it: null for none (the stale entries).</summary>
    private static string? Pattern(string? pattern) => string.IsNullOrWhiteSpace(pattern) ? null : pattern.Trim();

    private static string Query(params (string Name, string? Value)[] parameters)
    {
        var given = parameters.Where(p => !string.IsNullOrEmpty(p.Value)).Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value!)}").ToList();
        return given.Count == 0 ? "" : "?" + string.Join('&', given);
    }

    private static string Percent(double ratio) => $"{ratio * 100:0}%";

    private static string Shorten(string text, int most) => text.Length <= most ? text : text[..(most - 1)] + "…";
}

/// <summary>Where <c>quid cache save</c> writes: <paramref name="File"/>, or standard output when it is null.</summary>
internal sealed record Destination(string? File);

/// <summary>What <c>quid cache save KEY FILE --json</c> prints.</summary>
internal sealed record CacheSaved(string Key, string Url, string File, long Bytes);
