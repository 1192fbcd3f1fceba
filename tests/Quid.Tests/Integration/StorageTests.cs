using System.Security.Cryptography;
using System.Text.Json;
using Quid.Node;
using Quid.Wire;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>
/// Storage between real nodes (PROTOCOL §10.7): files sealed at their owner and kept on hosts
/// that are paid in their own credits, through circuits; read back whole when a host is gone,
/// repaired from another copy, and deleted on the host once what was paid has run out and the
/// owner was warned.
/// </summary>
[Collection(nameof(SerialTests))]
public sealed class StorageTests(ITestOutputHelper output)
{
    private static async Task<long> BalanceAsync(QuidNode node, QuidNode issuer) =>
        (await node.CreditStatusAsync()).Balances.SingleOrDefault(b => b.Issuer == issuer.Id)?.MiBDays ?? 0;

    private static string RandomFile(string directory, string name, int size)
    {
        string path = Path.Combine(directory, name);
        File.WriteAllBytes(path, RandomNumberGenerator.GetBytes(size));
        return path;
    }

    private static JsonElement Json((int Code, string Output) run)
    {
        Assert.True(run.Code == 0, run.Output);
        return JsonDocument.Parse(run.Output).RootElement;
    }

    [Fact]
    public async Task A_50_MiB_file_in_3_copies_reads_back_whole_after_a_host_is_gone_and_is_copied_again_to_another()
    {
        var logs = new LogCapture(Microsoft.Extensions.Logging.LogLevel.Information);
        // The owner asks four partners for bandwidth and 64 MiB of disk each; four hosts offer 128 MiB.
        // Grants of a loopback network: tens of MiB go up and down in seconds.
        // Each side grants what the other asks: hosts ask a quarter of what the owner offers, so it can partner with all four.
        var specs = new[] { new NodeSpec(1048576, 524288), new NodeSpec(1048576, 131072), new NodeSpec(1048576, 131072), new NodeSpec(1048576, 131072), new NodeSpec(1048576, 131072) };
        await using var net = await TestNetwork.StartAsync(222, specs, loggers: logs, configure: (i, o, _) => i == 0
            // No bandwidth probes from the owner: a good one could clear an audit's verdict before it is read.
            ? o with { Hops = 2, RequestDisk = DiskBlock.FromBytes(64 << 20), CreditRequestInterval = TimeSpan.FromMilliseconds(200), Market = o.Market with { ProbePartners = false } }
            // Nor from the hosts, so that no trial holds the day ahead back a minute.
            : o with { OfferDisk = 128 << 20, Market = o.Market with { ProbePartners = false } });
        var owner = net.Nodes[0];
        var hosts = net.Nodes.Skip(1).ToList();
        try
        {
            await Eventually.WaitUntilAsync(async () => (await Task.WhenAll(hosts.Select(h => BalanceAsync(owner, h)))).All(b => b == 64), TimeSpan.FromSeconds(40),
                "the owner to hold a day of disk credits on each of the four hosts");
        }
        catch (TimeoutException)
        {
            var status = await owner.StatusAsync();
            output.WriteLine($"met {status.RequestMet}; agreements: {string.Join(", ", status.Agreements.Select(a => $"{a.Partner.Brief} they {a.TheyGrant} we {a.WeGrant}"))}");
            foreach (var h in hosts) output.WriteLine($"{h.Id.Brief}: {await BalanceAsync(owner, h)}");
            throw;
        }
        await using var control = await ControlPlane.StartAsync(owner, net.DataDirectory(0));
        string dir = net.DataDirectory(0);

        const int Size = 50 << 20;
        string path = RandomFile(dir, "holiday-photos.tar", Size);
        byte[] sha256 = SHA256.HashData(File.ReadAllBytes(path));
        var stored = Json(await QuidProcess.RunAsync("store", "put", path, "--days", "1", "--copies", "3", "--json", "--data-dir", dir));
        string id = stored.GetProperty("id").GetString()!;
        Assert.Equal(3, stored.GetProperty("copies").GetArrayLength());
        var holders = stored.GetProperty("copies").EnumerateArray().Select(c => c.GetProperty("host").GetString()).ToHashSet();
        // A day of 50 MiB sealed (51 MiB started) was paid to each holder in its own credits.
        foreach (var host in hosts)
            Assert.Equal(holders.Contains(host.Id.ToString()) ? 64 - 51 : 64, await BalanceAsync(owner, host));

        // Each holder keeps the sealed bytes and nothing that names or shows them.
        byte[] plain = File.ReadAllBytes(path);
        foreach (var host in hosts.Where(h => holders.Contains(h.Id.ToString())))
        {
            var held = Assert.Single(host.Storage!.Objects());
            Assert.Equal(Size + 50 * 16, held.Size);
            string hostDir = net.DataDirectory(net.Nodes.ToList().IndexOf(host));
            byte[] kept = File.ReadAllBytes(Path.Combine(hostDir, "hosted", "objects", held.Key));
            Assert.Equal(-1, kept.AsSpan().IndexOf(plain.AsSpan(1 << 20, 64)));
            foreach (var file in Directory.EnumerateFiles(hostDir, "*", SearchOption.AllDirectories))
                Assert.Equal(-1, File.ReadAllBytes(file).AsSpan().IndexOf("holiday-photos"u8));
        }

        // One holder is gone: the file reads back whole from another.
        int gone = net.Nodes.ToList().FindIndex(n => holders.Contains(n.Id.ToString()));
        await net.StopAsync(gone);
        string copy = Path.Combine(dir, "back.tar");
        var (code, text) = await QuidProcess.RunAsync("store", "get", id[..12], "-o", copy, "--data-dir", dir);
        Assert.True(code == 0, text);
        Assert.Equal(sha256, SHA256.HashData(File.ReadAllBytes(copy)));

        // An audit finds the copy lost and copies the file again, from a copy still held, to the host that had none.
        var spare = hosts.Single(h => !holders.Contains(h.Id.ToString()));
        var checkedFiles = Json(await QuidProcess.RunAsync("store", "check", "--json", "--data-dir", dir));
        var copies = checkedFiles.EnumerateArray().Single().GetProperty("copies").EnumerateArray().ToList();
        output.WriteLine(string.Join("\n", copies.Select(c => $"{c.GetProperty("host").GetString()![..8]} {c.GetProperty("state").GetString()}")));
        foreach (var line in logs.Lines.Where(l => l.Level >= Microsoft.Extensions.Logging.LogLevel.Warning || l.Text.Contains("Repaired", StringComparison.Ordinal)))
            output.WriteLine($"{line.Category}: {line.Text}");
        Assert.Equal(3, copies.Count(c => c.GetProperty("state").GetString() == "Held"));
        Assert.Contains(copies, c => c.GetProperty("host").GetString() == spare.Id.ToString() && c.GetProperty("state").GetString() == "Held");
        Assert.Single(spare.Storage!.Objects());
        (code, text) = await QuidProcess.RunAsync("store", "get", id[..12], "-o", copy, "--data-dir", dir);
        Assert.True(code == 0, text);
        Assert.Equal(sha256, SHA256.HashData(File.ReadAllBytes(copy)));

        // The dashboard: the owner's file and its copies; a host's share of its offer held for others.
        await using var spareControl = await ControlPlane.StartAsync(spare, net.DataDirectory(net.Nodes.ToList().IndexOf(spare)));
        using var playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        await using var browser = await HeadlessChromium.LaunchAsync(playwright);
        var page = await browser.NewPageAsync();
        await page.GotoAsync(Quid.Node.Control.ControlServer.DashboardUrl(control.Server.EndPoint, Quid.Node.Control.ControlCookie.Read(control.DataDirectory)));
        await page.WaitForFunctionAsync("() => document.querySelector('#stored-files').textContent === '1 file'");
        Assert.Equal("3 of 3 copies held · 1 needs attention (quid store ls)", await page.TextContentAsync("#stored-copies"));
        Assert.Equal("none", await page.TextContentAsync("#hosted-used"));
        await page.GotoAsync(Quid.Node.Control.ControlServer.DashboardUrl(spareControl.Server.EndPoint, Quid.Node.Control.ControlCookie.Read(spareControl.DataDirectory)));
        await page.WaitForFunctionAsync("() => document.querySelector('#hosted-used').textContent !== '–'");
        Assert.Equal("50.0 MiB of 128.0 MiB", await page.TextContentAsync("#hosted-used"));
        Assert.Equal("1 object, sealed by their owners", await page.TextContentAsync("#hosted-objects"));

        var (_, metrics) = await spareControl.CurlAsync("/metrics", spareControl.Token);
        Assert.Contains("quid_hosted_objects 1", metrics, StringComparison.Ordinal);
        Assert.Contains("quid_credits_redeemed_mib_days_total 51", metrics, StringComparison.Ordinal);

        // A holder whose copy no longer matches fails its audit: the copy is lost, and the holder, a
        // partner, is answered as an under-deliverer: the bandwidth the owner grants it is cut.
        var cheat = hosts.First(h => h != spare && net.Nodes.ToList().IndexOf(h) != gone && h.Storage!.Objects().Count == 1);
        string cheatDir = net.DataDirectory(net.Nodes.ToList().IndexOf(cheat));
        string cheatFile = Path.Combine(cheatDir, "hosted", "objects", cheat.Storage!.Objects().Single().Key);
        using (var f = File.OpenWrite(cheatFile))
        {
            f.Position = 1000;
            f.WriteByte(0xEE);
        }
        long grantBefore = (await owner.StatusAsync()).Agreements.Single(a => a.Partner == cheat.Id).WeGrant!.Value.Kbps;
        checkedFiles = Json(await QuidProcess.RunAsync("store", "check", "--json", "--data-dir", dir));
        // Its copy is dropped (no host is left to copy it to): two held, and the unreachable one.
        copies = checkedFiles.EnumerateArray().Single().GetProperty("copies").EnumerateArray().ToList();
        Assert.DoesNotContain(copies, c => c.GetProperty("host").GetString() == cheat.Id.ToString());
        Assert.Equal(2, copies.Count(c => c.GetProperty("state").GetString() == "Held"));
        Assert.Equal(Quid.Exchange.Verdict.Underdelivering, (await owner.StatusAsync()).Partners.Single(p => p.Id == cheat.Id).Verdict);
        Assert.Equal(grantBefore / 2, (await owner.StatusAsync()).Agreements.Single(a => a.Partner == cheat.Id).WeGrant!.Value.Kbps);

        // quid store rm: gone from every host that answers.
        (code, text) = await QuidProcess.RunAsync("store", "rm", id[..12], "--data-dir", dir);
        Assert.True(code == 0, text);
        // (The cheat's damaged copy is no longer the owner's: it stays there until its payment runs out.)
        foreach (var host in net.Nodes.Where((n, i) => i != 0 && i != gone && n != cheat)) Assert.Empty(host.Storage!.Objects());
        Assert.Empty(owner.StoredFiles());
    }

    [Fact]
    public async Task A_file_whose_payment_ran_out_is_deleted_on_every_host_after_its_owner_was_warned()
    {
        var clock = new ShiftedTime();
        var specs = new[] { new NodeSpec(1048576, 524288), new NodeSpec(1048576, 131072), new NodeSpec(1048576, 131072) };
        await using var net = await TestNetwork.StartAsync(228, specs, time: clock, configure: (i, o, _) => i == 0
            // Asked once, as each agreement forms: the owner holds a day of credits on each host and
            // no more, so it cannot renew. Two hops: it looks for four partners, and takes both hosts.
            // No probes on loopback, so no trial holds the day ahead back a minute.
            ? o with { Hops = 2, RequestDisk = DiskBlock.FromBytes(64 << 20), CreditRequestInterval = TimeSpan.FromDays(1000), Market = o.Market with { ProbePartners = false } }
            : o with { OfferDisk = 128 << 20, Market = o.Market with { ProbePartners = false } });
        var owner = net.Nodes[0];
        var hosts = net.Nodes.Skip(1).ToList();
        await Eventually.WaitUntilAsync(async () => (await Task.WhenAll(hosts.Select(h => BalanceAsync(owner, h)))).All(b => b == 64), TimeSpan.FromSeconds(30),
            "the owner to hold a day of disk credits on both hosts");
        await using var hostControl = await ControlPlane.StartAsync(hosts[0], net.DataDirectory(1));
        string path = RandomFile(net.DataDirectory(0), "notes.bin", 40 << 20);
        var stored = await owner.PutAsync(path, days: 1, copies: 2, CancellationToken.None);
        Assert.Equal(2, stored.Copies.Count);
        foreach (var host in hosts) Assert.Equal(64 - 41, await BalanceAsync(owner, host));
        var objectFiles = hosts.Select((h, i) => Path.Combine(net.DataDirectory(i + 1), "hosted", "objects", Assert.Single(h.Storage!.Objects()).Key)).ToList();
        Assert.All(objectFiles, f => Assert.True(File.Exists(f)));

        // Within its last quarter, an audit tells the owner; it holds too few credits to renew, so both copies are expiring.
        clock.Advance(TimeSpan.FromHours(23));
        await Eventually.WaitUntilAsync(async () =>
        {
            await owner.AuditStoredAsync(CancellationToken.None);
            return owner.StoredFiles().Single().Copies.All(c => c.State == CopyState.Expiring);
        }, TimeSpan.FromSeconds(30), "audits to tell the owner both copies are expiring");
        foreach (var host in hosts) Assert.NotNull(Assert.Single(host.Storage!.Objects()).WarnedAt);
        var hosted = Json(await QuidProcess.RunAsync("hosted", "--json", "--data-dir", net.DataDirectory(1)));
        Assert.NotNull(hosted.GetProperty("objects").EnumerateArray().Single().GetProperty("warnedAt").GetString());

        // Paid until a day after the put, kept a day of grace more: then deleted on every host, file and row.
        clock.Advance(TimeSpan.FromHours(1) + TimeSpan.FromDays(1) + TimeSpan.FromMinutes(2));
        // A host drops the row before the file (so a crash between leaves only a file the next start deletes): wait for both.
        await Eventually.WaitUntilAsync(() => hosts.All(h => h.Storage!.Objects().Count == 0) && !objectFiles.Any(File.Exists), TimeSpan.FromSeconds(10),
            "both hosts to delete the object, row and file");
        for (int i = 1; i <= hosts.Count; i++) Assert.Empty(Directory.EnumerateFiles(Path.Combine(net.DataDirectory(i), "hosted", "objects")));
        hosted = Json(await QuidProcess.RunAsync("hosted", "--json", "--data-dir", net.DataDirectory(1)));
        Assert.Equal(0, hosted.GetProperty("objects").GetArrayLength());
        // The owner's next audit finds both gone.
        await owner.AuditStoredAsync(CancellationToken.None);
        Assert.DoesNotContain(owner.StoredFiles().Single().Copies, c => c.State is CopyState.Held or CopyState.Expiring);
        output.WriteLine($"Stored {stored.Key32[..12]} on two hosts, warned, deleted on both after its day of grace");
    }
}
