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

    public static Command Create(string name, string description, Action action, Offline? offline = null, params Option[] more)
    {
        var flags = new NodeFlags("data-dir", "control");
        var json = new Option<bool>("--json") { Description = "Print JSON, for scripts." };
        var command = new Command(name, description) { json };
        flags.AddTo(command);
        foreach (var option in more) command.Options.Add(option);
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (flags.Load(parse, name) is not { } settings) return ExitCodes.BadConfiguration;
            bool asJson = parse.GetValue(json);
            try
            {
                using var client = ControlClient.For(settings);
                return await action(client, asJson, parse, cancellationToken).ConfigureAwait(false);
            }
            catch (ControlUnavailableException e)
            {
                if (offline is not null) return await offline(settings, asJson, e).ConfigureAwait(false);
                await Console.Error.WriteLineAsync($"quid {name}: {e.Message}").ConfigureAwait(false);
                return ExitCodes.Failed;
            }
        });
        return command;
    }
}
