using System.CommandLine;
using Quid.Cli;
using Spectre.Console;

// Piped into a file or another program, tables keep their rows on one line each rather than
// wrapping at the 80 columns Spectre assumes when there is no terminal to ask.
if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;

var root = new RootCommand("Quid: an anonymizing peer-to-peer network where you pay for anonymity with bandwidth.")
{
    RunCommand.Create(),
    StatusCommand.Create(),
    PeersCommand.Create(),
    CircuitsCommand.Create(),
    LedgerCommand.Create(),
    CacheCommand.Create(),
    CreditsCommand.Create(),
    StoreCommand.Create(),
    StoreCommand.CreateHosted(),
    HostCommand.Create(),
    MailCommand.Create(),
    IdCommand.Create(),
    ServeCommand.Create(),
    ServeCommand.CreateShare(),
    ServicesCommand.Create(),
    ServicesCommand.CreateAccess(),
    FollowCommand.Create(),
    FollowCommand.CreateList(),
    DashboardCommand.Create(),
    ConfigCommand.Create(),
    DemoCommand.Create(),
};
// The commands handle Ctrl-C and SIGTERM themselves: quid run through the host, which gives the
// node time to drain; System.CommandLine's own handling would end the process after two seconds.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
