using System.CommandLine;
using System.Net;
using Microsoft.Extensions.Logging;
using Quid.Node;
using Quid.Overlay;
using Quid.Wire;

namespace Quid.Cli;

/// <summary><c>quid run</c>: one node in the foreground, configured by flags.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string>("--data-dir") { Description = "Where the node keeps its identity and state.", DefaultValueFactory = _ => CliDefaults.DataDirectory };
        var listen = new Option<string>("--listen") { Description = "Address and port for links from other nodes.", DefaultValueFactory = _ => $"0.0.0.0:{NodeOptions.DefaultLinkPort}" };
        var advertise = new Option<string?>("--advertise") { Description = "Address and port other nodes should dial (default: the listen address, if specific)." };
        var socks = new Option<string>("--socks") { Description = "Loopback address and port of the SOCKS proxy, or 'off'.", DefaultValueFactory = _ => $"127.0.0.1:{NodeOptions.DefaultSocksPort}" };
        var httpProxy = new Option<string>("--http-proxy") { Description = "Loopback address and port of the HTTP proxy (CONNECT and http:// requests), or 'off'.", DefaultValueFactory = _ => $"127.0.0.1:{NodeOptions.DefaultHttpProxyPort}" };
        var offer = new Option<int>("--offer") { Description = "Bandwidth you give, in kbps: 16, 32, 64 … (16·2^k).", DefaultValueFactory = _ => 4096 };
        var request = new Option<int>("--request") { Description = "Bandwidth you ask for in return, in kbps (16·2^k), or 0 to donate.", DefaultValueFactory = _ => 4096 };
        var peers = new Option<string[]>("--peer") { Description = "A node to join the network through, as host:port (repeat for more).", AllowMultipleArgumentsPerToken = false };
        var friends = new Option<string[]>("--friend") { Description = "Friends-only mode: link, search and trade only with these nodes, given as id or id@host:port (repeat for more)." };
        var noUltrapeer = new Option<bool>("--no-ultrapeer") { Description = "Never serve as an ultrapeer, whatever this node's capacity and uptime." };
        var hops = new Option<int>("--hops") { Description = "Hops per circuit, 1 to 8: 1 is fastest (your partner is the exit); 3 means no single node sees both you and your destination.", DefaultValueFactory = _ => 3 };
        var allowPrivate = new Option<bool>("--exit-allow-private") { Description = "Let streams exit to private and loopback addresses: only for test networks on one machine." };
        var noExit = new Option<bool>("--no-exit") { Description = "Carry partners' traffic, but never let it leave the network here." };
        var logLevel = new Option<LogLevel>("--log-level") { Description = "Trace, Debug, Information, Warning or Error.", DefaultValueFactory = _ => LogLevel.Information };

        var command = new Command("run", "Run a node: join the network, trade bandwidth, and serve the local SOCKS proxy.")
        {
            dataDir, listen, advertise, socks, httpProxy, offer, request, hops, peers, friends, noUltrapeer, allowPrivate, noExit, logLevel,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            NodeOptions options;
            try
            {
                options = new NodeOptions
                {
                    DataDirectory = parse.GetValue(dataDir)!,
                    Listen = ParseEndPoint(parse.GetValue(listen)!, "--listen"),
                    Advertise = parse.GetValue(advertise) is { } a ? ParseEndPoint(a, "--advertise") : null,
                    Socks = parse.GetValue(socks) is "off" ? null : ParseEndPoint(parse.GetValue(socks)!, "--socks"),
                    HttpProxy = parse.GetValue(httpProxy) is "off" ? null : ParseEndPoint(parse.GetValue(httpProxy)!, "--http-proxy"),
                    Offer = ParseBlock(parse.GetValue(offer), "--offer") ?? throw new CliException("--offer must be a block: 16, 32, 64 … kbps, not 0."),
                    Request = ParseBlock(parse.GetValue(request), "--request"),
                    Hops = parse.GetValue(hops) is >= 1 and <= 8 ? parse.GetValue(hops) : throw new CliException($"--hops must be 1 to 8, not {parse.GetValue(hops)}."),
                    Peers = parse.GetValue(peers) ?? [],
                    Friends = parse.GetValue(friends) ?? [],
                    Overlay = new OverlayOptions { UltrapeerCapable = !parse.GetValue(noUltrapeer) },
                    ExitPolicy = parse.GetValue(noExit) ? ExitPolicy.RejectAll : parse.GetValue(allowPrivate) ? ExitPolicy.AcceptAll : ExitPolicy.Default,
                };
            }
            catch (CliException e)
            {
                await Console.Error.WriteLineAsync($"quid run: {e.Message}").ConfigureAwait(false);
                return 2;
            }

            using var loggers = CliDefaults.Loggers(parse.GetValue(logLevel));
            var logger = loggers.CreateLogger("Quid");
            QuidNode node;
            try
            {
                node = await QuidNode.StartAsync(options, loggers).ConfigureAwait(false);
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                logger.LogCritical("Cannot start: {Reason}", e.Message);
                return 1;
            }
            await CliDefaults.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
            logger.LogInformation("Shutting down: ending agreements and closing links");
            await node.DisposeAsync().ConfigureAwait(false);
            return 0;
        });
        return command;
    }

    /// <summary>address:port with the port spelled out: 127.0.0.1:1080 or [::1]:1080.</summary>
    internal static IPEndPoint ParseEndPoint(string text, string flag)
    {
        bool hasPort = text.StartsWith('[') ? text.Contains("]:", StringComparison.Ordinal) : text.Count(c => c == ':') == 1;
        return hasPort && IPEndPoint.TryParse(text, out var endPoint)
            ? endPoint
            : throw new CliException($"{flag} wants address:port, such as 127.0.0.1:1080 or [::1]:1080; got '{text}'.");
    }

    internal static Block? ParseBlock(int kbps, string flag) =>
        kbps == 0 ? null
        : Block.TryFromKbps(kbps, out var block) ? block
        : throw new CliException($"{flag} {kbps} is not a block: use 16, 32, 64, 128 … (16·2^k) kbps, so every amount can be searched for.");
}

internal sealed class CliException(string message) : Exception(message);
