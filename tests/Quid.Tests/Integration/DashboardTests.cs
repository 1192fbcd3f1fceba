using System.Globalization;
using Microsoft.Playwright;
using Quid.Node;
using Quid.Node.Control;
using Quid.Services;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>
/// The dashboard in headless Chromium (Debian's, installed by .ci/run), over a network of six
/// nodes with three-hop circuits and a download under way: what a person would see, checked
/// against what the node says, and a screenshot of it.
/// </summary>
[Collection(nameof(SerialTests))]
public sealed class DashboardTests(ITestOutputHelper output)
{

    /// <summary>Six nodes offering 8 Mbit/s each and asking four partners for 1 Mbit/s apiece: grants that show as blocks of the offer.</summary>
    private static readonly NodeSpec[] Six = [.. Enumerable.Repeat(new NodeSpec(8192, 4096), 6)];

    [Fact]
    public async Task The_dashboard_shows_live_throughput_partners_with_verdicts_the_offer_in_blocks_and_circuits_as_paths()
    {
        // Streams are cut at the end, not drained: draining is not what this test is about.
        var network = await TestNetwork.StartAsync(240, Six, configure: (i, o, _) =>
            OverlayNetworkTests.Quick(o with { Hops = 3, Paths = o.Paths with { Prebuilt = i == 0 ? 1 : 0 }, DrainTimeout = TimeSpan.Zero }));
        Task<(int ExitCode, string Output, string Errors)>? download = null;
        try
        {
            await ShowAsync(network, started => download = started);
        }
        finally
        {
            // Stopping the nodes cuts the download; then curl is reaped.
            await network.DisposeAsync();
            if (download is not null) output.WriteLine($"curl ended with {(await download).ExitCode} when the nodes stopped");
        }
    }

    private async Task ShowAsync(TestNetwork network, Action<Task<(int ExitCode, string Output, string Errors)>> downloading)
    {
        var circuit = await CircuitTests.ReadyCircuitAsync(network);
        await using var control = await ControlPlane.StartAsync(network.Client, network.DataDirectory(0));
        var service = await network.Client.PublishAsync(new ServiceSpec("web", network.Web.EndPoint, AddressKind.Stable), TimeSpan.FromSeconds(30));
        await service.Published.WaitAsync(TimeSpan.FromSeconds(30));
        using var followed = ServiceSecret.Generate();
        var followedAddress = network.Client.Follow("friend", followed.ToText(), accessKey: null);

        // A download held to about 3 Mbit/s by curl, so the chart has a steady line to draw.
        var download = Curl.RunAsync("--silent", "--output", "/dev/null", "--max-time", "40", "--limit-rate", "400K",
            "--socks5-hostname", network.Socks.ToString(), $"{network.Web.BaseUrl}/bytes/{1L << 30}");
        downloading(download);
        await Eventually.WaitUntilAsync(() => control.Monitor.History.Count(s => s.ReceivedBytesPerSecond > 0) >= 10, TimeSpan.FromSeconds(30),
            "ten seconds of the download in the throughput history");

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await HeadlessChromium.LaunchAsync(playwright);
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 860 } });
        await page.GotoAsync(ControlServer.DashboardUrl(control.Server.EndPoint, ControlCookie.Read(control.DataDirectory)));
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#circuits li').length > 0 && document.querySelectorAll('#partners tbody tr').length > 0" +
            " && document.querySelector('#rate-received').textContent !== '0 bit/s' && document.querySelectorAll('#chart polyline.received').length === 1" +
            " && document.querySelectorAll('#services tbody tr').length > 0 && document.querySelectorAll('#follows tbody tr').length > 0");

        // The token leaves the address bar once read.
        Assert.DoesNotContain("token=", page.Url, StringComparison.Ordinal);
        var status = await network.Client.StatusAsync();
        Assert.Equal(network.Client.Id.Brief, await page.TextContentAsync("#node-id"));
        Assert.StartsWith("Ready", await page.TextContentAsync("#phase-text"), StringComparison.Ordinal);

        // Live rates: the card and the chart's received line.
        string received = (await page.TextContentAsync("#rate-received"))!;
        Assert.Matches(@"^[1-9][\d.]* (kbit/s|Mbit/s)$", received);
        var points = (await page.GetAttributeAsync("#chart polyline.received", "points"))!.Split(' ');
        Assert.True(points.Length >= 10, $"the chart draws {points.Length} points");

        // Partners with their verdicts: every partner the ledger has, all good.
        var partnerIds = await page.Locator("#partners tbody tr td:first-child").AllTextContentsAsync();
        Assert.Equal(status.Partners.Select(p => p.Id.Brief).Order(), partnerIds.Order());
        Assert.All(await page.Locator("#partners .verdict").AllTextContentsAsync(), v => Assert.Equal("good", v));

        // The offer as buddy blocks: one block per grant, the rest free, adding up to the offer.
        var blocks = page.Locator("#offer-bar .block");
        var grants = status.Agreements.Count(a => a.WeGrant is not null);
        Assert.Equal(grants, await page.Locator("#offer-bar .block.granted").CountAsync());
        Assert.True(await page.Locator("#offer-bar .block.free").CountAsync() >= 1);
        long drawn = 0;
        foreach (var size in await page.Locator("#offer-bar .block .size").AllTextContentsAsync()) drawn += Kbps(size);
        Assert.Equal(status.Offer.Kbps, drawn);
        Assert.True(await blocks.CountAsync() >= grants + 1);

        // Circuits as paths: you, then the three hops of the circuit the pool built, the last marked as the exit.
        var hops = await page.Locator("#circuits li").First.Locator(".hop").AllTextContentsAsync();
        Assert.Equal(["you", .. circuit.Hops.Select((h, i) => i == 2 ? $"{h.Id.Brief} · exit" : h.Id.Brief)], hops);

        // The service the node publishes, its address whole (to copy), with its introduction points.
        var published = page.Locator("#services tbody tr");
        Assert.Equal(1, await published.CountAsync());
        var cells = await published.Locator("td").AllTextContentsAsync();
        Assert.Equal(["web", "stable"], cells.Take(2));
        Assert.Equal(service.Address.ToString(), await published.Locator(".address span").TextContentAsync());
        Assert.Matches(@"^[12] up$", cells[3]);
        Assert.True(await page.Locator("#services-empty").IsHiddenAsync());
        // The moving service it follows: the name it is reached by, and its address today.
        Assert.Equal(["friend.quid", followedAddress.ToString()], await page.Locator("#follows tbody tr td").AllTextContentsAsync());

        string screenshot = Path.Combine(AppContext.BaseDirectory, "dashboard.png");
        await page.ScreenshotAsync(new() { Path = screenshot, FullPage = true });
        Assert.True(new FileInfo(screenshot).Length > 20_000);
        output.WriteLine($"Dashboard at {received} received, {partnerIds.Count} partners, {await blocks.CountAsync()} blocks; screenshot: {screenshot}");

        // Without the token the page asks for it and shows nothing of the node.
        var stranger = await browser.NewPageAsync();
        await stranger.GotoAsync($"{control.BaseUrl}/");
        await stranger.WaitForSelectorAsync("#signin-form", new() { State = WaitForSelectorState.Visible });
        Assert.True(await stranger.Locator("#main").IsHiddenAsync());
        var wrong = await browser.NewPageAsync();
        await wrong.GotoAsync($"{control.BaseUrl}/#token={new string('0', 64)}");
        await wrong.WaitForFunctionAsync("() => document.querySelector('#signin-reason').textContent.includes('did not accept')");
        Assert.NotEqual(network.Client.Id.Brief, await wrong.TextContentAsync("#node-id"));
    }

    private static long Kbps(string text)
    {
        var parts = text.Split(' ');
        double value = double.Parse(parts[0], CultureInfo.InvariantCulture);
        return (long)(parts[1] == "Mbit/s" ? value * 1024 : value);
    }
}
