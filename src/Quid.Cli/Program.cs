using System.CommandLine;
using Quid.Cli;

var root = new RootCommand("Quid: an anonymizing peer-to-peer network where you pay for anonymity with bandwidth.")
{
    RunCommand.Create(),
    StatusCommand.Create(),
    PeersCommand.Create(),
    CircuitsCommand.Create(),
    LedgerCommand.Create(),
    IdCommand.Create(),
    DashboardCommand.Create(),
    ConfigCommand.Create(),
    DemoCommand.Create(),
};
// The commands handle Ctrl-C and SIGTERM themselves: quid run through the host, which gives the
// node time to drain; System.CommandLine's own handling would end the process after two seconds.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
