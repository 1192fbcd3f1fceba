using System.Net;
using System.Text.RegularExpressions;

namespace Quid.Tests.Integration;

/// <summary>The browser tests' own network, so they run beside the other proxy tests.</summary>
public sealed class BrowserNetworkFixture : ProxyNetworkFixture
{
    protected override byte FirstAddress => 248;
}

/// <summary>
/// Headless Chromium (Debian's, installed by .ci/run) loads a page through each Quid front end.
/// Its own resolver is told to fail for every name, so the page can load only if the name
/// reached an exit unresolved; the page names the address the web server saw.
/// </summary>
public sealed partial class BrowserTests(BrowserNetworkFixture fixture) : IClassFixture<BrowserNetworkFixture>
{
    private const string Chromium = "/usr/bin/chromium";

    [Theory]
    [InlineData("http")]
    [InlineData("socks5")]
    public async Task Chromium_renders_a_page_through_Quid_that_was_served_to_an_exit(string proxy)
    {
        var network = fixture.Network;
        var endPoint = proxy == "http" ? network.HttpProxy : network.Socks;
        string profile = Directory.CreateTempSubdirectory("quid-chromium-").FullName;
        try
        {
            var (code, dom, errors) = await ClientProcess.RunAsync(Chromium,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", $"--user-data-dir={profile}",
                $"--proxy-server={proxy}://{endPoint}",
                // Any name Chromium tried to resolve itself would fail: only the exit can know web.quid.test.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--dump-dom", $"http://{ProxyNetworkFixture.Name}:{network.Web.EndPoint.Port}/",
            ], TimeSpan.FromSeconds(90));
            Assert.True(code == 0, $"chromium failed ({code}): {errors}");
            Assert.True(dom.Contains("<h1>Hello through Quid</h1>", StringComparison.Ordinal), $"chromium rendered no page: {dom}\n{errors}");
            var shown = IPAddress.Parse(RemoteAddress().Match(dom).Groups[1].Value);
            Assert.Contains(shown, await network.ClientPartnerAddressesAsync());
            Assert.NotEqual(IPAddress.Loopback, shown);
            Assert.NotEqual(network.Client.LinkEndPoint.Address, shown);
            Assert.Contains(ProxyNetworkFixture.Name, fixture.Resolved);
        }
        finally
        {
            Directory.Delete(profile, recursive: true);
        }
    }

    [GeneratedRegex("""<b id="remote">([0-9.]+)</b>""")]
    private static partial Regex RemoteAddress();
}
