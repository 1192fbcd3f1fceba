using System.Globalization;
using System.Text;
using Microsoft.Playwright;
using Quid.Node.Control;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>
/// The dashboard's exit cache section in headless Chromium (Debian's, installed by .ci/run), served
/// by an exit whose cache holds text and an image that real circuits fetched: the figures, the
/// search, the type filter and the previews as its owner sees them, and a screenshot of it.
/// </summary>
[Collection(nameof(SerialTests))]
public sealed class CacheDashboardTests(ITestOutputHelper output)
{
    private const string Readme = "/fresh/readme.txt", Notes = "/fresh/notes.txt", Picture = "/fresh/picture.png", Page = "/fresh/page.html";

    [Fact]
    public async Task The_cache_section_lists_entries_searches_filters_by_type_and_previews_text_as_text_and_images_from_blob_URLs()
    {
        await using var net = await CachingExit.StartAsync(144);
        await net.StoreAsync(Readme, Notes, Picture, Page);
        // A third circuit is answered from store: figures that are not all zero.
        await net.FetchAsync("carol", Readme);
        await using var control = await ControlPlane.StartAsync(net.Exit, net.ExitDataDirectory);
        await using var uncached = await ControlPlane.StartAsync(net.Network.Client, net.Network.DataDirectory(0));

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await HeadlessChromium.LaunchAsync(playwright);
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 860 } });
        var refused = new List<string>();
        page.Console += (_, message) => { if (message.Text.Contains("Content Security Policy", StringComparison.Ordinal)) refused.Add(message.Text); };
        await page.GotoAsync(ControlServer.DashboardUrl(control.Server.EndPoint, ControlCookie.Read(control.DataDirectory)));
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#cache-table tbody tr').length === 4");

        // On a first visit, the section says what it holds.
        Assert.True(await page.Locator("#cache-notice").IsVisibleAsync());
        Assert.Equal("The exit cache holds plaintext HTTP that partners' streams fetched through this node.", await page.TextContentAsync("#cache-notice-text"));
        Assert.True(await page.Locator("#cache-off").IsHiddenAsync());

        // The figures, as the node counts them.
        var counters = net.Cache.Counters;
        Assert.True(counters.Hits >= 1, $"{counters.Hits} hits");
        Assert.Equal(Percent(counters.HitRatio), await page.TextContentAsync("#cache-hit-ratio"));
        Assert.Equal(Percent(counters.ByteHitRatio), await page.TextContentAsync("#cache-byte-hit-ratio"));
        Assert.Equal($"{counters.Hits} of {counters.Requests} requests answered from store", await page.TextContentAsync("#cache-hits"));
        Assert.Equal("1000 B", await page.TextContentAsync("#cache-saved"));
        Assert.EndsWith(" of 64.0 MiB", await page.TextContentAsync("#cache-used"), StringComparison.Ordinal);
        var bar = await page.EvalOnSelectorAsync<double>("#cache-usage-bar", "e => parseFloat(e.style.width)");
        Assert.InRange(bar, 0.1, 5);

        // Every entry with its URL and key, the most recently stored first.
        Assert.Equal(new[] { Readme, Notes, Picture, Page }.Select(net.Url).Order(), (await Urls(page)).Order());
        var keys = await page.Locator("#cache-table tbody td.key").AllTextContentsAsync();
        Assert.Equal(net.Cache.Store.Entries().Select(e => e.Id[..12]).Order(), keys.Order());

        // The search box asks the node for the entries whose name holds what is typed.
        await page.FillAsync("#cache-search", "PICTURE");
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#cache-table tbody tr').length === 1");
        Assert.Equal([net.Url(Picture)], await Urls(page));
        await page.FillAsync("#cache-search", "nothing-like-it");
        await page.WaitForSelectorAsync("#cache-empty", new() { State = WaitForSelectorState.Visible });
        Assert.Equal("No entry matches “nothing-like-it”.", await page.TextContentAsync("#cache-empty"));
        await page.FillAsync("#cache-search", "");
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#cache-table tbody tr').length === 4");

        // The type filter: images, text, and none of the other kinds.
        await page.ClickAsync("#cache-types button[data-type=images]");
        Assert.Equal([net.Url(Picture)], await Urls(page));
        await page.ClickAsync("#cache-types button[data-type=text]");
        Assert.Equal(new[] { Readme, Notes }.Select(net.Url).Order(), (await Urls(page)).Order());
        await page.ClickAsync("#cache-types button[data-type=html]");
        Assert.Equal([net.Url(Page)], await Urls(page));
        await page.ClickAsync("#cache-types button[data-type=other]");
        Assert.Empty(await Urls(page));
        await page.ClickAsync("#cache-types button[data-type=all]");
        Assert.Equal(4, (await Urls(page)).Count);

        // A text entry is previewed as text: the body's characters, not markup.
        await Row(page, net.Url(Readme)).ClickAsync();
        await page.WaitForSelectorAsync("#cache-preview-text");
        Assert.Equal(Encoding.ASCII.GetString(CacheOrigin.Body(Readme, 1000)), await page.TextContentAsync("#cache-preview-text"));
        Assert.Equal(0, await page.EvalOnSelectorAsync<int>("#cache-preview-text", "e => e.children.length"));
        Assert.Contains(net.Url(Readme), await page.TextContentAsync("#cache-preview .preview-head"), StringComparison.Ordinal);

        // A page is a stranger's markup: shown as its source, never rendered into the dashboard.
        await Row(page, net.Url(Page)).ClickAsync();
        await page.WaitForFunctionAsync("() => (document.querySelector('#cache-preview-text') || {}).textContent?.includes('injected')");
        Assert.Equal(Encoding.UTF8.GetString(CacheOrigin.Html(Page)), await page.TextContentAsync("#cache-preview-text"));
        Assert.Equal(0, await page.EvalOnSelectorAsync<int>("#cache-preview-text", "e => e.children.length"));
        Assert.Equal(0, await page.Locator("#injected").CountAsync());

        // An image entry as an <img> from a blob: URL, fetched with the token, which the page's policy lets it draw.
        await Row(page, net.Url(Picture)).ClickAsync();
        await page.WaitForFunctionAsync("() => { const i = document.querySelector('#cache-preview-image'); return i && i.complete && i.naturalWidth > 0; }");
        Assert.StartsWith("blob:", await page.GetAttributeAsync("#cache-preview-image", "src"), StringComparison.Ordinal);
        Assert.Equal(64, await page.EvalOnSelectorAsync<int>("#cache-preview-image", "e => e.naturalWidth"));
        Assert.Equal(0, await page.Locator("#cache-preview-text").CountAsync());
        Assert.Empty(refused);

        string screenshot = Path.Combine(AppContext.BaseDirectory, "dashboard-cache.png");
        await page.Locator("#cache-panel").ScreenshotAsync(new() { Path = screenshot });
        Assert.True(new FileInfo(screenshot).Length > 20_000);
        output.WriteLine($"Cache section: {counters.Hits} of {counters.Requests} requests hit; screenshot: {screenshot}");

        // Read once, the notice stays away, here and on the next visit.
        await page.ClickAsync("#cache-notice-ok");
        Assert.True(await page.Locator("#cache-notice").IsHiddenAsync());
        await page.ReloadAsync();
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#cache-table tbody tr').length === 4");
        Assert.True(await page.Locator("#cache-notice").IsHiddenAsync());

        // A node without a cache says how to turn it on.
        var other = await browser.NewPageAsync();
        await other.GotoAsync(ControlServer.DashboardUrl(uncached.Server.EndPoint, ControlCookie.Read(uncached.DataDirectory)));
        await other.WaitForSelectorAsync("#cache-off", new() { State = WaitForSelectorState.Visible });
        Assert.Contains("--cache 2GiB", await other.TextContentAsync("#cache-off"), StringComparison.Ordinal);
        Assert.True(await other.Locator("#cache-on").IsHiddenAsync());
    }

    private static async Task<IReadOnlyList<string>> Urls(IPage page) => await page.Locator("#cache-table tbody td.url").AllTextContentsAsync();

    private static ILocator Row(IPage page, string url) => page.Locator("#cache-table tbody tr", new() { Has = page.Locator("td.url", new() { HasTextString = url }) });

    private static string Percent(double ratio) => Math.Round(ratio * 100, MidpointRounding.AwayFromZero).ToString(CultureInfo.InvariantCulture) + "%";
}
