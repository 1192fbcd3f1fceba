namespace Quid.Node.Configuration;

public enum SettingKind
{
    /// <summary>One value.</summary>
    Value,
    /// <summary>Several values: a TOML array, a comma-separated variable, a repeated flag.</summary>
    List,
    /// <summary>On or off: a TOML boolean, a variable set to true or false, a flag without a value.</summary>
    Switch,
}

/// <summary>
/// One thing a user can configure, under one name in every source: <c>key</c> in quid.toml,
/// <c>QUID_KEY</c> in the environment, and a flag on the command line.
/// </summary>
public sealed record Setting(string Key, SettingKind Kind, string Flag, string DefaultText, string Help)
{
    public string EnvironmentVariable => "QUID_" + Key.Replace('-', '_').ToUpperInvariant();

    /// <summary>Flags that stand for a fixed value of this setting, like <c>--no-exit</c> for <c>exit-policy = "reject *:*"</c>.</summary>
    public IReadOnlyList<Shorthand> Shorthands { get; init; } = [];

    /// <summary>Whether the setting may appear in quid.toml: the data directory cannot, since the file lives in it.</summary>
    public bool InFile { get; init; } = true;
}

public sealed record Shorthand(string Flag, string Value, string Help);

/// <summary>What one flag said on the command line: the CLI collects these and passes them on untouched.</summary>
public sealed record FlagValue(string Key, string Flag, IReadOnlyList<string> Values);

public enum SettingSource { Default, File, Environment, Flag }

/// <summary>Where a value came from, as <c>quid config</c> shows it and error messages name it.</summary>
public sealed record SettingOrigin(SettingSource Source, string Where)
{
    public static SettingOrigin Default { get; } = new(SettingSource.Default, "default");

    public override string ToString() => Source switch
    {
        SettingSource.File => Where,
        SettingSource.Environment => $"environment {Where}",
        SettingSource.Flag => $"flag {Where}",
        _ => "default",
    };
}

/// <summary>One line of the effective configuration.</summary>
public sealed record EffectiveSetting(string Key, string Value, SettingOrigin Origin);

/// <summary>A value that cannot be used, with where it came from and how to fix it.</summary>
public sealed record ConfigurationError(string Key, SettingOrigin Origin, string Problem)
{
    public override string ToString() => Origin.Source == SettingSource.Default ? $"{Key}: {Problem}" : $"{Key} (from {Origin}): {Problem}";
}

/// <summary>The configuration cannot be used; each error names its key, its source and the fix.</summary>
public sealed class ConfigurationException(IReadOnlyList<ConfigurationError> errors)
    : Exception("Bad configuration:" + string.Concat(errors.Select(e => $"{Environment.NewLine}  {e}")))
{
    public IReadOnlyList<ConfigurationError> Errors { get; } = errors;
}
