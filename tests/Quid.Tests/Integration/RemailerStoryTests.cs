using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Playwright;
using Quid.Credits;
using Quid.Exchange;
using Quid.Node;
using Quid.Programs;
using Quid.Wire;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>
/// Seed 003's story on real nodes: A and B trade disk for CPU; A deploys the remailer on B, paid
/// in B's credits; C, holding a card of B's credits that A gave it, sends mail through the
/// remailer to D's mailbox (also on B); D fetches it intact; B dropping D's mailbox early is caught
/// by D's next check; nothing logged of mail names C, or D outside D; and when the remailer's
/// credits run out (a shifted clock), B deletes it and all it kept, and <c>quid hosted</c> on B
/// lists nothing.
/// </summary>
[Collection(nameof(SerialTests))]
public sealed class RemailerStoryTests(ITestOutputHelper output)
{
    private const int B = 0, A = 1, D = 2, C = 3;
    /// <summary>Five nodes that each look for four partners: every pair partners, so A and D surely trade with B.</summary>
    private static readonly NodeSpec[] Five = [.. Enumerable.Repeat(new NodeSpec(1048576, 524288), 5)];

    private static async Task<long> BalanceAsync(QuidNode node, QuidNode issuer) =>
        (await node.CreditStatusAsync()).Balances.SingleOrDefault(b => b.Issuer == issuer.Id)?.MiBDays ?? 0;

    [Fact]
    public async Task C_mails_D_through_As_remailer_on_B_and_when_the_credits_run_out_B_keeps_nothing()
    {
        var clock = new ShiftedTime();
        var logs = Enumerable.Range(0, Five.Length).Select(_ => new LogCapture(LogLevel.Information)).ToArray();
        await using var net = await TestNetwork.StartAsync(120, Five, time: clock, loggersOf: i => logs[i], configure: (i, o, _) =>
        {
            var quick = OverlayNetworkTests.Quick(o with { Hops = 3, Market = o.Market with { ProbePartners = false }, CreditRequestInterval = TimeSpan.FromMilliseconds(200) });
            return i switch
            {
                // B runs programs for CPU credits and asks disk in return; A grants disk and asks CPU: they trade.
                B => quick with { OfferCpuGfuel = 1024, RequestDisk = DiskBlock.FromBytes(16 << 20) },
                A => quick with { OfferDisk = 256 << 20, RequestCpu = new CpuBlock(6) },
                D => quick with { RequestCpu = new CpuBlock(6) },
                _ => quick,
            };
        });
        var (a, b, c, d) = (net.Nodes[A], net.Nodes[B], net.Nodes[C], net.Nodes[D]);
        await Eventually.WaitUntilAsync(async () => await BalanceAsync(a, b) >= 1024 && await BalanceAsync(d, b) >= 1024, TimeSpan.FromSeconds(60),
            "A and D to hold a day of B's CPU in credits (64 Gfuel, 1,024 credits)");
        Assert.True(await BalanceAsync(b, a) > 0, "B holds A's disk credits: the trade runs both ways");

        // A deploys the remailer on B (quid mail box create), selling remailing at a credit a message.
        await using var aControl = await ControlPlane.StartAsync(a, net.DataDirectory(A));
        var box = Json(await QuidProcess.RunAsync("mail", "box", "create", "--on", b.Id.ToString(), "--credits", "16", "--postage", "1", "--max-delay", "2000",
            "--json", "--data-dir", net.DataDirectory(A)));
        string remailer = box.GetProperty("address").GetString()!;
        // D makes its own mailbox on B, free to deposit in.
        var (_, dMail) = await d.CreateMailboxAsync(b.Id, 16, 0, 2000, CancellationToken.None);
        Assert.Equal(2, b.Programs!.Programs().Count);

        // A gives C a card of B's credits (the seed's pre-paid remailer card); C takes it.
        string card = await a.GiveCreditsAsync(b.Id, 4, CancellationToken.None);
        Assert.Equal(4, await c.TakeCreditsAsync(card, CancellationToken.None));
        await using var cControl = await ControlPlane.StartAsync(c, net.DataDirectory(C));
        // Anyone holding a program's id may keep it alive: C adds a credit of fuel to A's remailer.
        var topped = Json(await QuidProcess.RunAsync("host", "topup", box.GetProperty("program").GetString()!, "--on", b.Id.ToString(), "--credits", "1",
            "--json", "--data-dir", net.DataDirectory(C)));
        Assert.Equal("Running", topped.GetProperty("state").GetString());
        Assert.Equal(3, await BalanceAsync(c, b));

        // C sends through the remailer, paying a credit of B's: the remailer forwards it, after its delay, to D's box.
        var letter = Encoding.UTF8.GetBytes("Meet at the old mill at noon. " + Convert.ToHexString(RandomNumberGenerator.GetBytes(600)));
        var sent = await QuidProcess.RunWithInputAsync(letter, "mail", "send", dMail, "--via", remailer, "--postage", "1", "--issuer", b.Id.ToString(), "--data-dir", net.DataDirectory(C));
        Assert.True(sent.ExitCode == 0, sent.Output);
        Assert.Equal(2, await BalanceAsync(c, b));
        // Without postage the remailer's host refuses the post.
        var unpaid = await Assert.ThrowsAsync<ProgramPostException>(() => c.SendMailAsync(dMail, letter, remailer, [], CancellationToken.None));
        Assert.Contains("postage", unpaid.Message);

        IReadOnlyList<byte[]> fetched = [];
        await Eventually.WaitUntilAsync(async () => (fetched = await d.FetchMailAsync(CancellationToken.None)).Count > 0, TimeSpan.FromSeconds(30),
            "D's mailbox to receive the letter from the remailer");
        Assert.Equal(letter, Assert.Single(fetched));
        Assert.Empty(await d.FetchMailAsync(CancellationToken.None));

        // A host that drops a program it was paid to run is caught by the owner's next check, as a
        // host that loses a stored file is: here B throws D's mailbox away long before its fuel is gone.
        var dBox = d.DeployedPrograms().Single();
        await b.Programs.ServeAsync(new Credits.Duplex(new MemoryStream(), new MemoryStream()), new DeskStop(dBox.Id, dBox.Secret), CancellationToken.None);
        Assert.Equal(ProgramState.Deleted, (await d.CheckAsync(dBox, CancellationToken.None)).State);
        Assert.Equal(Verdict.Underdelivering, (await d.StatusAsync()).Partners.Single(p => p.Id == b.Id).Verdict);

        // Nothing any node logged of programs or mail names C, or names D but on D itself: the
        // hosts of programs never learn who posts or who fetches, and the mail itself is sealed.
        // (Every pair of these five is partnered and builds circuits through the others, so each
        // logs the others' ids for that; those lines say nothing of mail.)
        string[] cNames = [c.Id.ToString(), c.Id.Brief], dNames = [d.Id.ToString(), d.Id.Brief];
        static bool AboutMail(string text) => text.Contains("program", StringComparison.OrdinalIgnoreCase) || text.Contains("mail", StringComparison.OrdinalIgnoreCase)
            || text.Contains(".quid", StringComparison.Ordinal);
        for (int n = 0; n < net.Nodes.Count; n++)
            foreach (var line in logs[n].Lines.Where(l => AboutMail(l.Text)))
            {
                Assert.False(cNames.Any(x => line.Text.Contains(x, StringComparison.Ordinal)), $"node {n} logged of mail and named the sender: {line.Text}");
                Assert.False(n != D && dNames.Any(x => line.Text.Contains(x, StringComparison.Ordinal)), $"node {n} logged of mail and named the recipient: {line.Text}");
            }
        // What B lists of them: fuel, memory and dates, never who.
        await using var bControl = await ControlPlane.StartAsync(b, net.DataDirectory(B));
        var hosted = Json(await QuidProcess.RunAsync("hosted", "--json", "--data-dir", net.DataDirectory(B)));
        var programs = hosted.GetProperty("programs").EnumerateArray().ToList();
        Assert.Single(programs);
        Assert.DoesNotContain(a.Id.ToString(), hosted.GetRawText(), StringComparison.Ordinal);
        Assert.DoesNotContain(d.Id.ToString(), hosted.GetRawText(), StringComparison.Ordinal);
        var (_, metrics) = await bControl.CurlAsync("/metrics", bControl.Token);
        Assert.Contains("quid_programs_hosted 1", metrics, StringComparison.Ordinal);
        // B's dashboard shows the CPU it offers and the remailer it runs, with its fuel gauge.
        using (var playwright = await Playwright.CreateAsync())
        {
            await using var browser = await HeadlessChromium.LaunchAsync(playwright);
            var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 860 } });
            await page.GotoAsync(Quid.Node.Control.ControlServer.DashboardUrl(bControl.Server.EndPoint, Quid.Node.Control.ControlCookie.Read(bControl.DataDirectory)));
            await page.WaitForFunctionAsync("() => document.querySelectorAll('#programs-table tbody tr').length === 1");
            Assert.Equal("1,024 Gfuel/day", await page.TextContentAsync("#cpu-offered"));
            Assert.Equal("1 program", await page.TextContentAsync("#programs-here"));
            Assert.True(await page.EvalOnSelectorAsync<double>("#programs-table .fuel > div", "e => parseFloat(e.style.width)") > 50);
            string screenshot = Path.Combine(AppContext.BaseDirectory, "dashboard-programs.png");
            await page.Locator("#programs-panel").ScreenshotAsync(new() { Path = screenshot });
            output.WriteLine($"Programs section: {screenshot}");
        }

        // The remailer holds 256 KiB of memory, paid at a credit a MiB·day: 1 Gfuel and the three
        // credits it took since (its owner's postage, C's top-up and C's postage) last about 76 days.
        // 60 days on, A's status check finds it under a quarter of its fuel after the top-up, and warns.
        var remailerProgram = a.DeployedPrograms().Single();
        output.WriteLine(string.Join("; ", b.Programs.Programs().Select(p => $"{p.Key[..8]}: {p.Fuel:N0} fuel, {p.MemoryBytes:N0} B memory, {p.StoredBytes:N0} B stored")));
        clock.Advance(TimeSpan.FromDays(60));
        string? why = null;
        await Eventually.WaitUntilAsync(async () =>
        {
            try
            {
                return (await a.CheckAsync(remailerProgram, CancellationToken.None)).Low;
            }
            catch (CreditException e)
            {
                why = e.Message;
                return false;
            }
        }, TimeSpan.FromSeconds(60), $"A's check to find its remailer low on fuel (last: {why}; on B: {b.Programs.Find(remailerProgram.Id)?.Fuel:N0} fuel)");
        Assert.Contains(logs[A].Lines, l => l.Level == LogLevel.Warning && l.Text.Contains("low on fuel", StringComparison.Ordinal));
        Assert.NotNull(b.Programs.Find(remailerProgram.Id)!.WarnedAt);

        // At zero it is paused, kept a day for a top-up; then it and all it kept are gone from B.
        clock.Advance(TimeSpan.FromDays(17));
        await Eventually.WaitUntilAsync(() => b.Programs.Programs().All(p => p.State == ProgramState.Paused), TimeSpan.FromSeconds(20), "the remailer to pause, out of fuel");
        clock.Advance(ProgramHost.Grace + TimeSpan.FromMinutes(2));
        await Eventually.WaitUntilAsync(() => b.Programs.Programs().Count == 0, TimeSpan.FromSeconds(20), "B to delete the remailer after its grace");
        hosted = Json(await QuidProcess.RunAsync("hosted", "--json", "--data-dir", net.DataDirectory(B)));
        Assert.Equal(0, hosted.GetProperty("programs").GetArrayLength());
        var module = Remailer.Module();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(net.DataDirectory(B), "programs")))
            Assert.True(File.ReadAllBytes(file).AsSpan().IndexOf(module.AsSpan(module.Length / 2, 64)) < 0, $"{file} still holds the remailer's module");
        output.WriteLine($"Mail from C reached D through A's remailer on B; the remailer gone from B after {60 + 17 + 1} days");
    }

    private static JsonElement Json((int ExitCode, string Output) run)
    {
        Assert.True(run.ExitCode == 0, run.Output);
        return JsonDocument.Parse(run.Output).RootElement;
    }
}
