using System.CommandLine;
using System.Globalization;
using System.Text;
using Quid.Node.Control;
using Quid.Services;
using QRCoder;
using Spectre.Console;

namespace Quid.Cli;

/// <summary>
/// <c>quid serve</c> and <c>quid share</c>: ask the running node to publish a local service, or
/// files, under a session address (<c>&lt;56 characters&gt;.quid</c>), print the address and what
/// its kind means, and exit. The node keeps publishing until <c>quid services remove NAME</c>, a
/// stable or moving service across restarts too.
/// </summary>
internal static class ServeCommand
{
    private const string Afterwards =
        "The node publishes it until 'quid services remove NAME'. A stable or moving service is published again, at the same address, each time " +
        "the node starts (its key is in the data directory, under services/); an ephemeral one ends when the node stops.";

    public static Command Create()
    {
        var target = new Argument<string>("HOST:PORT") { Description = "The local TCP service to publish, such as 127.0.0.1:8080 (localhost means 127.0.0.1)." };
        var kind = KindOption();
        var isPrivate = PrivateOption();
        var name = new Option<string?>("--name") { Description = "A name for the service, letters, digits and dashes; a stable or moving service keeps its key under it. Default: serve-PORT." };
        var command = ApiCommand.Create("serve", $"Publish a local TCP service under a .quid address, print the address, and exit. {Afterwards}",
            async (client, json, parse, cancellationToken) =>
            {
                string to = parse.GetValue(target)!;
                var request = new ServiceRequest(parse.GetValue(name) ?? DefaultName(to), to, parse.GetValue(kind), parse.GetValue(isPrivate));
                var service = await WaitingAsync(json, () => client.PostAsync("/api/services", request, ControlJson.Default.ServiceRequest, ControlJson.Default.ServiceReport,
                    ControlClient.PublishPatience, cancellationToken)).ConfigureAwait(false);
                if (json) Render.Json(service, CliJson.Default.ServiceReport);
                else Show(service, $"{service.Name} → {to}", qrCode: false, receiving: false);
                return ExitCodes.Ok;
            }, offline: null, patience: null, kind, isPrivate, name);
        command.Arguments.Add(target);
        return command;
    }

    public static Command CreateShare()
    {
        var paths = new Argument<string[]>("PATH") { Description = "Files and folders to share (one folder is shared as the root).", Arity = ArgumentArity.ZeroOrMore };
        var receive = new Option<string?>("--receive") { Description = "Take uploads into this folder (made if missing) instead of sharing files: 'curl -T FILE' or a browser's form." };
        var kind = KindOption();
        var isPrivate = PrivateOption();
        var name = new Option<string?>("--name") { Description = "A name for the share, letters, digits and dashes. Default: share-FOLDER, after the first path's name." };
        var command = ApiCommand.Create("share", $"Publish files and folders (or an upload folder) under a .quid address, print it with a QR code, and exit. {Afterwards}",
            async (client, json, parse, cancellationToken) =>
            {
                // The node does not know this shell's working directory.
                var given = (parse.GetValue(paths) ?? []).Select(Path.GetFullPath).ToList();
                string? inbox = parse.GetValue(receive) is { } folder ? Path.GetFullPath(folder) : null;
                string first = inbox ?? given.FirstOrDefault() ?? "";
                var request = new ShareRequest(parse.GetValue(name) ?? DefaultShareName(first, inbox is not null), given, inbox, parse.GetValue(kind), parse.GetValue(isPrivate));
                var service = await WaitingAsync(json, () => client.PostAsync("/api/shares", request, ControlJson.Default.ShareRequest, ControlJson.Default.ServiceReport,
                    ControlClient.PublishPatience, cancellationToken)).ConfigureAwait(false);
                if (json) Render.Json(service, CliJson.Default.ServiceReport);
                else Show(service, inbox is null ? $"{service.Name}: {Describe(given)}" : $"{service.Name}: uploads into {inbox}", qrCode: true, receiving: inbox is not null);
                return ExitCodes.Ok;
            }, offline: null, patience: null, receive, kind, isPrivate, name);
        command.Arguments.Add(paths);
        return command;
    }

    /// <summary>On a terminal, a spinner while the node waits for an introduction point (up to half a minute).</summary>
    private static Task<ServiceReport> WaitingAsync(bool json, Func<Task<ServiceReport>> publish) =>
        json || !AnsiConsole.Profile.Capabilities.Interactive
            ? publish()
            : AnsiConsole.Status().StartAsync("Publishing: waiting for an introduction point to take it (up to 30 s)…", _ => publish());

    private static Option<bool> PrivateOption() => new("--private")
    {
        Description = "Only those given its access key (printed) can find it: to anyone else the address leads nowhere, exactly like one nobody publishes. " +
            "They add the key to their node with 'quid access ADDRESS KEY'.",
    };

    private static Option<string> KindOption()
    {
        var kind = new Option<string>("--kind")
        {
            Description = "ephemeral: a new address each time, gone when the service or the node stops; stable: one address for good; " +
                "moving: a new address each day, which only those given its secret can follow.",
            DefaultValueFactory = _ => "ephemeral",
        };
        kind.AcceptOnlyFromAmong("ephemeral", "stable", "moving");
        return kind;
    }

    /// <summary>serve-PORT, after the target's port; serve when there is none (the node then says what is wrong with the target).</summary>
    internal static string DefaultName(string target)
    {
        int colon = target.LastIndexOf(':');
        return colon >= 0 && int.TryParse(target.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) ? $"serve-{port}" : "serve";
    }

    /// <summary>share-NAME (receive-NAME for an upload folder), after the path's last name in letters, digits and dashes.</summary>
    internal static string DefaultShareName(string path, bool receiving)
    {
        string prefix = receiving ? "receive" : "share";
        string last = Path.GetFileName(Path.TrimEndingDirectorySeparator(path));
        var word = new StringBuilder();
        foreach (char c in last)
        {
            if (char.IsAsciiLetterOrDigit(c)) word.Append(char.ToLowerInvariant(c));
            else if (word.Length > 0 && word[^1] != '-') word.Append('-');
        }
        string name = word.ToString().Trim('-');
        if (name.Length == 0) return prefix;
        string full = $"{prefix}-{name}";
        return full.Length <= 64 ? full : full[..64].TrimEnd('-');
    }

    private static string Describe(IReadOnlyList<string> paths) => paths.Count switch
    {
        0 => "nothing",
        1 => paths[0],
        _ => $"{paths[0]} and {paths.Count - 1} more",
    };

    private static void Show(ServiceReport service, string what, bool qrCode, bool receiving)
    {
        string url = $"http://{service.Address}/";
        AnsiConsole.MarkupLine($"Publishing {Markup.Escape(what)} ({KindWord(service.Kind)}) at");
        AnsiConsole.WriteLine();
        AnsiConsole.MarkupLine($"  [bold green]{service.Address}[/]");
        AnsiConsole.WriteLine();
        if (qrCode)
        {
            // Half blocks, two rows of modules to a line, with the quiet zone around that readers need.
            using var generator = new QRCodeGenerator();
            using var data = generator.CreateQrCode(url, QRCodeGenerator.ECCLevel.L);
            Console.WriteLine(new AsciiQRCode(data).GetGraphicSmall());
            AnsiConsole.MarkupLine($"[grey]{url}[/]");
            AnsiConsole.WriteLine();
        }
        AnsiConsole.MarkupLine(service.Published
            ? $"[green]●[/] Published: {service.IntroductionPointsUp} introduction {(service.IntroductionPointsUp == 1 ? "point is" : "points are")} up, so clients can find it."
            : "[yellow]●[/] Not published yet: no introduction point has taken it so far (is the node partnered yet? quid status says). The node keeps trying; quid services shows when it is.");
        switch (service.Kind)
        {
            case AddressKind.Ephemeral:
                AnsiConsole.MarkupLine("Ephemeral: the address dies with the service. Once it is removed or the node stops, nobody reaches it there again.");
                break;
            case AddressKind.Stable:
                AnsiConsole.MarkupLine($"Stable: the same address whenever {Markup.Escape(service.Name)} is published. Its key, services/{Markup.Escape(service.Name)}.stable.key " +
                    "in the node's data directory, is the address: back it up, and keep it secret.");
                break;
            case AddressKind.Moving:
                AnsiConsole.MarkupLine($"Moving: this address holds until {service.AddressUntil?.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} UTC; then the next day's takes over.");
                AnsiConsole.MarkupLine($"  Secret: [bold]{Markup.Escape(service.Secret ?? "")}[/]");
                AnsiConsole.MarkupLine("  Give it only to those who should follow the service: from it they work out each day's address, which nobody without it can link to the last.");
                break;
        }
        if (service.AccessKey is { } key)
        {
            // The key on a line of its own, like the address: a terminal that wraps a long line must not split it.
            AnsiConsole.MarkupLine("Private: only those who hold its access key find it; to anyone else the address leads nowhere. The key:");
            AnsiConsole.MarkupLine($"  [bold]{Markup.Escape(key)}[/]");
            AnsiConsole.MarkupLine("Give it with the address. A client adds it to its node with: [bold]quid access ADDRESS KEY[/]");
        }
        string how = receiving ? $"curl --socks5-hostname 127.0.0.1:1080 -T FILE {url}" : $"curl --socks5-hostname 127.0.0.1:1080 {url}";
        AnsiConsole.MarkupLine($"Reach it through a Quid node's proxy: [bold]{Markup.Escape(how)}[/]");
        AnsiConsole.MarkupLine($"[grey]Stop publishing: quid services remove {Markup.Escape(service.Name)}." +
            (service.Kind == AddressKind.Ephemeral ? "" : " Until then the node publishes it again each time it starts.") + "[/]");
    }

    internal static string KindWord(AddressKind kind) => kind.ToString().ToLowerInvariant();
}
