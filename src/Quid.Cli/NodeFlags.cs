using System.CommandLine;
using Quid.Node.Configuration;

namespace Quid.Cli;

/// <summary>
/// The flags for the node's settings, made from the Node layer's list of settings so that each
/// flag, its QUID_ variable and its quid.toml key stay one thing. The CLI collects what was given
/// and passes it on; the Node layer parses and checks it.
/// </summary>
internal sealed class NodeFlags
{
    private readonly List<(Setting Setting, string Flag, string? Fixed, Option Option)> _options = [];

    /// <summary>Flags for every setting, or only for <paramref name="keys"/>.</summary>
    public NodeFlags(params string[] keys)
    {
        foreach (var setting in NodeConfiguration.Settings.Where(s => keys.Length == 0 || keys.Contains(s.Key)))
        {
            string where = setting.InFile ? $"{setting.EnvironmentVariable} or {setting.Key} in quid.toml" : setting.EnvironmentVariable;
            string description = $"{setting.Help} Default: {setting.DefaultText}. Also {where}.";
            Option option = setting.Kind switch
            {
                SettingKind.List => new Option<string[]>(setting.Flag) { Description = description, AllowMultipleArgumentsPerToken = false },
                SettingKind.Switch => new Option<bool>(setting.Flag) { Description = description },
                _ => new Option<string>(setting.Flag) { Description = description },
            };
            _options.Add((setting, setting.Flag, null, option));
            if (keys.Length > 0) continue;
            foreach (var shorthand in setting.Shorthands)
                _options.Add((setting, shorthand.Flag, shorthand.Value, new Option<bool>(shorthand.Flag) { Description = $"{shorthand.Help} Same as {setting.Flag} \"{shorthand.Value}\"." }));
        }
    }

    public void AddTo(Command command)
    {
        foreach (var (_, _, _, option) in _options) command.Options.Add(option);
    }

    /// <summary>The flags given on this command line, untouched.</summary>
    public IReadOnlyList<FlagValue> Given(ParseResult parse)
    {
        var given = new List<FlagValue>();
        foreach (var (setting, flag, fixedValue, option) in _options)
        {
            if (parse.GetResult(option) is not { Implicit: false }) continue;
            switch (option)
            {
                case Option<bool> shorthand when fixedValue is not null:
                    if (parse.GetValue(shorthand)) given.Add(new FlagValue(setting.Key, flag, [fixedValue]));
                    break;
                case Option<bool> toggle:
                    given.Add(new FlagValue(setting.Key, flag, [parse.GetValue(toggle) ? "true" : "false"]));
                    break;
                case Option<string[]> list:
                    given.Add(new FlagValue(setting.Key, flag, parse.GetValue(list) ?? []));
                    break;
                case Option<string> single when parse.GetValue(single) is { } value:
                    given.Add(new FlagValue(setting.Key, flag, [value]));
                    break;
            }
        }
        return given;
    }

    /// <summary>The effective settings, or null after printing every problem with its fix.</summary>
    public NodeSettings? Load(ParseResult parse, string command)
    {
        try
        {
            return NodeConfiguration.Load(Given(parse), NodeConfiguration.ProcessEnvironment());
        }
        catch (ConfigurationException e)
        {
            Console.Error.WriteLine($"quid {command}: {e.Message}");
            return null;
        }
    }
}

internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failed = 1;
    /// <summary>sysexits' EX_CONFIG: systemd is told not to restart a node whose configuration is wrong.</summary>
    public const int BadConfiguration = 78;
    /// <summary>128 + SIGINT, as a shell reports a command that Ctrl-C ended: stopped before it was done.</summary>
    public const int Interrupted = 130;
}
