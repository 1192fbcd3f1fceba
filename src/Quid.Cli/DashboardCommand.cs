using System.CommandLine;
using Quid.Node.Control;

namespace Quid.Cli;

/// <summary>
/// <c>quid dashboard</c>: prints the address of the running node's dashboard, with the control
/// cookie as a token in the part after '#', which the browser keeps to itself: the page reads it,
/// and sends it with each request for data.
/// </summary>
internal static class DashboardCommand
{
    public static Command Create() => ApiCommand.Create("dashboard", "Print a link to the running node's dashboard (live throughput, partners, the offer's blocks, circuits).",
        async (client, json, _, cancellationToken) =>
        {
            // Ask something first, so a link is printed only for a node that answers to this cookie.
            await client.GetAsync("/api/id", ControlJson.Default.IdReport, cancellationToken).ConfigureAwait(false);
            string url = ControlServer.DashboardUrl(client.EndPoint, client.Cookie);
            if (json) Render.Json(new DashboardLink(url), CliJson.Default.DashboardLink);
            else Console.WriteLine(url);
            return ExitCodes.Ok;
        });
}

/// <summary>What <c>quid dashboard --json</c> prints.</summary>
internal sealed record DashboardLink(string Url);
