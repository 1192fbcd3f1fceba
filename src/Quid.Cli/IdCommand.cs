using System.CommandLine;
using Quid.Node;
using Quid.Node.Control;

namespace Quid.Cli;

/// <summary>
/// <c>quid id</c>: this node's id. It asks the running node; with none running it reads the
/// identity in the data directory, creating one if the directory holds no state yet, so an id can
/// be handed to friends before the first start. A damaged key, or a ledger without its key, is
/// reported as <c>quid run</c> reports it, with exit code 78.
/// </summary>
internal static class IdCommand
{
    public static Command Create() => ApiCommand.Create("id", "Print this node's id (its pseudonym, derived from its public key).",
        async (client, json, _, cancellationToken) =>
        {
            Print(await client.GetAsync("/api/id", ControlJson.Default.IdReport, cancellationToken).ConfigureAwait(false), json);
            return ExitCodes.Ok;
        },
        offline: (settings, json, unavailable) =>
        {
            try
            {
                if (DataDirectory.Prepare(settings.DataDirectory) is { } warning) Console.Error.WriteLine($"quid id: {warning}");
                using var identity = DataDirectory.OpenIdentity(settings.DataDirectory, out _);
                Print(new IdReport(identity.Id.ToString(), identity.Id.Brief), json);
                return Task.FromResult(ExitCodes.Ok);
            }
            catch (NodeStateException e)
            {
                Console.Error.WriteLine($"quid id: {e.Message}");
                return Task.FromResult(ExitCodes.BadConfiguration);
            }
        });

    private static void Print(IdReport id, bool json)
    {
        if (json) Render.Json(id, CliJson.Default.IdReport);
        else Console.WriteLine(id.Id);
    }
}
