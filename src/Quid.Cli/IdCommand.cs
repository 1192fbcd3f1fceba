using System.CommandLine;
using Quid.Crypto;

namespace Quid.Cli;

/// <summary><c>quid id</c>: prints this node's id, creating the identity if there is none yet.</summary>
internal static class IdCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string>("--data-dir") { Description = "The node's data directory.", DefaultValueFactory = _ => CliDefaults.DataDirectory };
        var command = new Command("id", "Print this node's id (its pseudonym, derived from its public key).") { dataDir };
        command.SetAction(parse =>
        {
            string directory = parse.GetValue(dataDir)!;
            Directory.CreateDirectory(directory);
            using var identity = IdentityStore.LoadOrCreate(directory, out _);
            Console.WriteLine(identity.Id);
            return 0;
        });
        return command;
    }
}
