using System.CommandLine;
using Quid.Cli;

var root = new RootCommand("Quid: an anonymizing peer-to-peer network where you pay for anonymity with bandwidth.")
{
    RunCommand.Create(),
    DemoCommand.Create(),
    IdCommand.Create(),
    LedgerCommand.Create(),
};
return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
