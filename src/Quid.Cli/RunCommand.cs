using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Quid.Node;
using Quid.Node.Configuration;
using Quid.Node.Hosting;

namespace Quid.Cli;

/// <summary>
/// <c>quid run</c>: one node as a generic-host service, in the foreground or under systemd.
/// Configuration comes from quid.toml, QUID_ variables and these flags, strongest last.
/// </summary>
internal static class RunCommand
{
    /// <summary>Time for the node to drain its streams, end its agreements and close its links before the host gives up.</summary>
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(20);

    public static Command Create()
    {
        var flags = new NodeFlags();
        // A flag only, never a quid.toml key or QUID_ variable: left in a service's configuration it would discard the identity at every restart.
        var newIdentity = new Option<bool>("--new-identity")
        {
            Description = "Move this data directory's identity.key and quid.db into archive/<time>/ in it, and start as a new node with an empty ledger.",
        };
        var command = new Command("run", "Run a node: join the network, trade bandwidth, serve the local SOCKS proxy and the control API.") { newIdentity };
        flags.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (flags.Load(parse, "run") is not { } loaded) return ExitCodes.BadConfiguration;
            var settings = parse.GetValue(newIdentity) ? loaded with { Node = loaded.Node with { NewIdentity = true } } : loaded;

            var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
            builder.Logging.SetMinimumLevel(settings.LogLevel);
            // The host's own chatter ("Application started…") says nothing the node does not, and
            // a failed start is told below in one line rather than as the host's stack trace.
            builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
            builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
            if (settings.LogFormat == LogFormat.Json)
                builder.Logging.AddJsonConsole(o => o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffzzz");
            else
                builder.Logging.AddSimpleConsole(o =>
                {
                    o.SingleLine = true;
                    o.TimestampFormat = "HH:mm:ss ";
                });
            // Under systemd: tell it when the node is up (Type=notify), and log in the journal's format.
            builder.Services.AddSystemd();
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ShutdownTimeout);
            builder.Services.AddSingleton(settings);
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.AddHostedService<NodeService>();
            using var host = builder.Build();
            try
            {
                await host.RunAsync(cancellationToken).ConfigureAwait(false);
                return ExitCodes.Ok;
            }
            catch (NodeStateException e)
            {
                await Console.Error.WriteLineAsync($"quid run: {e.Message}").ConfigureAwait(false);
                return ExitCodes.BadConfiguration;
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                // The host is disposed by now, its loggers with it.
                await Console.Error.WriteLineAsync($"quid run: cannot start: {e.Message}").ConfigureAwait(false);
                return ExitCodes.Failed;
            }
        });
        return command;
    }
}
