using System.Text.Json;
using Microsoft.Playwright;
using Quid.Credits;
using Quid.Node;
using Quid.Node.Control;
using Quid.Wire;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>
/// Credits between real nodes (PROTOCOL §10): an issuer that grants disk pays its partner in
/// credits on itself; the partner gives some as a card (<c>quid credits give</c>) to a third node
/// that is no partner of it, which takes them (<c>quid credits take</c>) by exchanging them at the
/// issuer's desk through a circuit; the giver's copy is then refused, as is the card a second time.
/// </summary>
[Collection(nameof(SerialTests))]
public sealed class CreditsTests(ITestOutputHelper output)
{
    private const int Holder = 0, Issuer = 1, Joe = 2;

    private static Task<TestNetwork> StartAsync(byte first, int deskStreams = 32) =>
        TestNetwork.StartAsync(first, [new NodeSpec(1024, 512), new NodeSpec(2048, 512), new NodeSpec(1024, 512)], configure: (i, o, started) => i switch
        {
            // No probes (loopback bandwidth proves nothing), so no trial holds the day ahead back a minute.
            Holder => o with { RequestDisk = DiskBlock.FromBytes(64 << 20), CreditRequestInterval = TimeSpan.FromMilliseconds(200), Market = o.Market with { ProbePartners = false } },
            Issuer => o with { OfferDisk = 256 << 20, Market = o.Market with { ProbePartners = false }, DeskStreams = deskStreams },
            // Joe trades with the issuer only: the holder is a stranger to him.
            _ => o with { Peers = [], Friends = [$"{started[Issuer].Id}@{started[Issuer].LinkEndPoint}"] },
        });

    private static async Task<long> BalanceAsync(QuidNode node, QuidNode issuer) =>
        (await node.CreditStatusAsync()).Balances.SingleOrDefault(b => b.Issuer == issuer.Id)?.MiBDays ?? 0;

    [Fact]
    public async Task A_credit_given_as_a_card_is_taken_by_a_third_node_and_neither_the_card_nor_the_givers_copy_spends_twice()
    {
        await using var net = await StartAsync(216);
        var (holder, issuer, joe) = (net.Nodes[Holder], net.Nodes[Issuer], net.Nodes[Joe]);
        await using var holderControl = await ControlPlane.StartAsync(holder, net.DataDirectory(Holder));
        await using var joeControl = await ControlPlane.StartAsync(joe, net.DataDirectory(Joe));

        // The issuer grants the holder 64 MiB, and pays it a day ahead: 64 MiB·days of credits on the issuer.
        await Eventually.WaitUntilAsync(async () => await BalanceAsync(holder, issuer) == 64, TimeSpan.FromSeconds(20), "the holder to be issued a day of its disk grant");
        var issued = await issuer.CreditStatusAsync();
        Assert.Equal(64, issued.IssuedMiBDays);
        Assert.Equal(256 - 64, issued.FreeDiskMiB);

        // quid credits give: 5 of a single 64 needs change, made at the issuer.
        string cardFile = Path.Combine(net.DataDirectory(Holder), "card.txt");
        var (code, card) = await QuidProcess.RunAsync("credits", "give", issuer.Id.ToString(), "5", "--data-dir", net.DataDirectory(Holder));
        Assert.True(code == 0, card);
        card = card[card.IndexOf(CreditCard.Begin, StringComparison.Ordinal)..];
        card = card[..(card.IndexOf(CreditCard.End, StringComparison.Ordinal) + CreditCard.End.Length)];
        await File.WriteAllTextAsync(cardFile, card);
        Assert.Equal(5, CreditCard.Read(card).Sum(c => c.Value));
        Assert.Equal(59, await BalanceAsync(holder, issuer));

        // Joe takes it: exchanged at the issuer's desk through a circuit, into credits only Joe holds.
        await Eventually.WaitUntilAsync(async () => (await joe.StatusAsync()).RequestMet, TimeSpan.FromSeconds(20), "Joe's request to be met");
        (code, string taken) = await QuidProcess.RunAsync("credits", "take", cardFile, "--data-dir", net.DataDirectory(Joe));
        Assert.True(code == 0, taken);
        Assert.Contains("Took 5 MiB·days of credits.", taken, StringComparison.Ordinal);
        Assert.Equal(5, await BalanceAsync(joe, issuer));
        var (listed, json) = await QuidProcess.RunAsync("credits", "--json", "--data-dir", net.DataDirectory(Joe));
        Assert.True(listed == 0, json);
        var balance = JsonDocument.Parse(json).RootElement.GetProperty("balances").EnumerateArray().Single();
        Assert.Equal(issuer.Id.ToString(), balance.GetProperty("issuer").GetString());
        Assert.Equal(5, balance.GetProperty("miBDays").GetInt64());

        // The card again, by Joe or by the giver who kept a copy: spent, refused, nothing gained.
        var again = await Assert.ThrowsAsync<CreditException>(() => joe.TakeCreditsAsync(card, CancellationToken.None));
        Assert.Equal(CreditRefusal.Spent, again.Reason);
        var giver = await Assert.ThrowsAsync<CreditException>(() => holder.TakeCreditsAsync(card, CancellationToken.None));
        Assert.Equal(CreditRefusal.Spent, giver.Reason);
        (code, string refused) = await QuidProcess.RunAsync("credits", "take", cardFile, "--data-dir", net.DataDirectory(Joe));
        Assert.Equal(1, code);
        Assert.Contains("spent before", refused, StringComparison.Ordinal);
        Assert.Equal(5, await BalanceAsync(joe, issuer));
        Assert.Equal(59, await BalanceAsync(holder, issuer));

        // The issuer's spent set: the 64 it split, and the card's credits.
        Assert.Equal(1 + CreditCard.Read(card).Count, (await issuer.CreditStatusAsync()).SpentCredits);

        var (_, metrics) = await holderControl.CurlAsync("/metrics", holderControl.Token);
        Assert.Contains("quid_credits_held_mib_days 59", metrics, StringComparison.Ordinal);
        (_, metrics) = await joeControl.CurlAsync("/metrics", joeControl.Token);
        Assert.Contains("quid_credits_held_mib_days 5", metrics, StringComparison.Ordinal);

        // The dashboard: the holder's credits, and the issuer's disk granted and credits issued.
        await using var issuerControl = await ControlPlane.StartAsync(issuer, net.DataDirectory(Issuer));
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await HeadlessChromium.LaunchAsync(playwright);
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 860 } });
        await page.GotoAsync(ControlServer.DashboardUrl(holderControl.Server.EndPoint, ControlCookie.Read(holderControl.DataDirectory)));
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#credits-table tbody tr').length === 1");
        Assert.Equal("59 MiB·days", await page.TextContentAsync("#credits-held"));
        Assert.Equal(issuer.Id.ToString()[..8], await page.TextContentAsync("#credits-table tbody td"));
        Assert.Equal("none", await page.TextContentAsync("#credits-disk"));
        await page.GotoAsync(ControlServer.DashboardUrl(issuerControl.Server.EndPoint, ControlCookie.Read(issuerControl.DataDirectory)));
        await page.WaitForFunctionAsync("() => document.querySelector('#credits-disk').textContent === '256 MiB'");
        Assert.Equal("64 MiB granted to partners", await page.TextContentAsync("#credits-disk-granted"));
        Assert.Equal("64", await page.TextContentAsync("#credits-issued"));
        Assert.Equal(25.0, await page.EvalOnSelectorAsync<double>("#credits-disk-bar", "e => parseFloat(e.style.width)"));
        Assert.True(await page.Locator("#credits-empty").IsVisibleAsync());
        string screenshot = Path.Combine(AppContext.BaseDirectory, "dashboard-credits.png");
        await page.Locator("#credits-panel").ScreenshotAsync(new() { Path = screenshot });
        output.WriteLine($"Credits section: {screenshot}");

        // Giving more than one holds is refused with what it holds.
        (code, string tooMuch) = await QuidProcess.RunAsync("credits", "give", issuer.Id.ToString(), "100", "--data-dir", net.DataDirectory(Holder));
        Assert.Equal(1, code);
        Assert.Contains("You hold 59 MiB·days of credits", tooMuch, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_desk_that_serves_all_the_streams_it_takes_ends_one_more_and_a_give_says_so_and_keeps_its_credits()
    {
        await using var net = await StartAsync(219, deskStreams: 0);
        var (holder, issuer) = (net.Nodes[Holder], net.Nodes[Issuer]);
        await using var holderControl = await ControlPlane.StartAsync(holder, net.DataDirectory(Holder));
        await Eventually.WaitUntilAsync(async () => await BalanceAsync(holder, issuer) == 64, TimeSpan.FromSeconds(20), "the holder to be issued a day of its disk grant");

        // 5 of a single 64 needs change at the issuer's desk, which ends the stream as it begins.
        var (code, text) = await QuidProcess.RunAsync("credits", "give", issuer.Id.ToString(), "5", "--data-dir", net.DataDirectory(Holder));
        output.WriteLine(text);
        Assert.NotEqual(0, code);
        Assert.Contains("desk closed without an answer: it may be serving all the streams it takes", text, StringComparison.Ordinal);
        Assert.DoesNotContain(CreditCard.Begin, text, StringComparison.Ordinal);
        Assert.Equal(64, await BalanceAsync(holder, issuer));
        Assert.Equal(0, (await issuer.CreditStatusAsync()).ExchangedMiBDays);
    }

    [Fact]
    public async Task A_holder_held_back_by_its_issuers_trial_asks_less_often_each_time_and_is_paid_when_it_ends()
    {
        var logs = new LogCapture(Microsoft.Extensions.Logging.LogLevel.Debug);
        // The holder does not probe, so it reckons the day ahead due at once; the issuer does, and
        // holds it back for its trial.
        await using var net = await TestNetwork.StartAsync(236, [new NodeSpec(1024, 512), new NodeSpec(2048, 512)], loggers: logs, configure: (i, o, _) => i == Holder
            ? o with { RequestDisk = DiskBlock.FromBytes(64 << 20), CreditRequestInterval = TimeSpan.FromMilliseconds(200), Market = o.Market with { ProbePartners = false } }
            : o with { OfferDisk = 256 << 20, Market = o.Market with { TrialPeriod = TimeSpan.FromSeconds(6) } });
        var (holder, issuer) = (net.Nodes[Holder], net.Nodes[Issuer]);
        await Eventually.WaitUntilAsync(async () => await BalanceAsync(holder, issuer) >= 64, TimeSpan.FromSeconds(30), "the holder to be paid the day ahead after the issuer's trial");

        // Asking every 200 ms through a 6 s trial it would have been refused about 30 times; waiting
        // twice as long after each refusal, about 5.
        int refused = logs.Lines.Count(l => l.Text.Contains("refused our credit request: NoAllowance", StringComparison.Ordinal));
        output.WriteLine($"{refused} refusals");
        Assert.InRange(refused, 1, 8);
    }
}
