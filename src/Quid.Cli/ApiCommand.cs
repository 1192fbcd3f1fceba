using System.CommandLine;
using Quid.Node.Configuration;
using Quid.Node.Control;

namespace Quid.Cli;

/// <summary>
/// A command that asks the running node through its control API: it finds the node by its data
/// directory (and control address), prints a table, or JSON with <c>--json</c>.
/// </summary>
internal static class ApiCommand
{
    public delegate Task<int> Action(ControlClient client, bool json, ParseResult parse, CancellationToken cancellationToken);

    /// <summary>What to do when no node answers; null to report it as an error.</summary>
    public delegate Task<int> Offline(NodeSettings settings, bool json, ControlUnavailableException reason);

    /// <summary>What to do when no node answers, for a command whose arguments say what to read from the data directory.</summary>
    public delegate Task<int> OfflineWithArguments(NodeSettings settings, bool json, ParseResult parse, ControlUnavailableException reason);

    /// <summary>How long to keep trying to reach a node that does not answer yet (one that is starting); null not to.</summary>
    public delegate TimeSpan? Patience(ParseResult parse);

    public static Command Create(string name, string description, Action action, Offline? offline = null, params Option[] more) =>
        Create(name, description, action, offline, patience: null, more);

    public static Command Create(string name, string description, Action action, OfflineWithArguments offline, params Option[] more) =>
        Build(name, description, action, offline, patience: null, more);

    /// <param name="name">The command as the user types it after quid: a subcommand is given with its parent, "services remove", for its messages.</param>
    public static Command Create(string name, string description, Action action, Offline? offline, Patience? patience, params Option[] more) =>
        Build(name, description, action, offline is null ? null : (settings, json, _, reason) => offline(settings, json, reason), patience, more);

    private static Command Build(string name, string description, Action action, OfflineWithArguments? offline, Patience? patience, Option[] more)
    {
        var flags = new NodeFlags("data-dir", "control");
        var json = new Option<bool>("--json") { Description = "Print JSON, for scripts." };
        var command = new Command(name.Split(' ')[^1], description) { json };
        flags.AddTo(command);
        foreach (var option in more) command.Options.Add(option);
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (flags.Load(parse, name) is not { } settings) return ExitCodes.BadConfiguration;
            bool asJson = parse.GetValue(json);
            var deadline = DateTime.UtcNow + (patience?.Invoke(parse) ?? TimeSpan.Zero);
            while (true)
            {
                try
                {
                    // Found anew each try: a starting node writes its address and cookie only once it listens.
                    using var client = ControlClient.For(settings);
                    return await action(client, asJson, parse, cancellationToken).ConfigureAwait(false);
                }
                catch (ControlUnavailableException) when (DateTime.UtcNow < deadline)
                {
                    await Task.Delay(500, cancellationToken).ConfigureAwait(false);
                }
                catch (ControlRefusedException e)
                {
                    // The node answered: what it refused and why, which is the user's to change.
                    await Console.Error.WriteLineAsync($"quid {name}: {e.Message}").ConfigureAwait(false);
                    return ExitCodes.Failed;
                }
                catch (ControlUnavailableException e)
                {
                    if (offline is not null) return await offline(settings, asJson, parse, e).ConfigureAwait(false);
                    await Console.Error.WriteLineAsync($"quid {name}: {e.Message}").ConfigureAwait(false);
                    return ExitCodes.Failed;
                }
            }
        });
        return command;
    }
}
