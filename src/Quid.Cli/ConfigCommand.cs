using System.CommandLine;
using Quid.Node.Configuration;
using Spectre.Console;

namespace Quid.Cli;

/// <summary>
/// <c>quid config</c>: the configuration <c>quid run</c> would start with, given the same flags,
/// environment and quid.toml, and where each value came from. A bad value is reported as run
/// would report it, and the exit code says so.
/// </summary>
internal static class ConfigCommand
{
    public static Command Create()
    {
        var flags = new NodeFlags();
        var json = new Option<bool>("--json") { Description = "Print JSON, for scripts." };
        var command = new Command("config", "Print the effective configuration and where each value comes from (quid.toml, QUID_ variables, flags, defaults).") { json };
        flags.AddTo(command);
        command.SetAction(parse =>
        {
            if (flags.Load(parse, "config") is not { } settings) return ExitCodes.BadConfiguration;
            if (parse.GetValue(json))
            {
                Render.Json(new ConfigReport(settings.ConfigFile, settings.ConfigFileExists,
                    [.. settings.Values.Select(v => new ConfigValue(v.Key, v.Value, v.Origin.Source.ToString().ToLowerInvariant(), v.Origin.ToString()))],
                    settings.Warnings), CliJson.Default.ConfigReport);
                return ExitCodes.Ok;
            }
            AnsiConsole.MarkupLine(Markup.Escape(settings.ConfigFileExists ? $"Configuration file: {settings.ConfigFile}" : $"Configuration file: {settings.ConfigFile} (none; optional)"));
            var table = new Table().Border(TableBorder.Rounded);
            table.AddColumns("key", "value", "from");
            foreach (var value in settings.Values)
            {
                string from = value.Origin.Source == SettingSource.Default ? "[grey]default[/]" : Markup.Escape(value.Origin.ToString());
                table.AddRow(Markup.Escape(value.Key), Markup.Escape(value.Value), from);
            }
            AnsiConsole.Write(table);
            foreach (var warning in settings.Warnings) AnsiConsole.MarkupLine($"[yellow]warning:[/] {Markup.Escape(warning)}");
            return ExitCodes.Ok;
        });
        return command;
    }
}

/// <summary>What <c>quid config --json</c> prints: the file, then every setting with its value and where it came from.</summary>
internal sealed record ConfigReport(string File, bool FileExists, IReadOnlyList<ConfigValue> Settings, IReadOnlyList<string> Warnings);

/// <param name="Source">default, file, environment or flag.</param>
/// <param name="From">The file's path, the variable or the flag, as the table shows it.</param>
internal sealed record ConfigValue(string Key, string Value, string Source, string From);
