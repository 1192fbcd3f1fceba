using System.Globalization;
using System.Net;
using Quid.Exchange;
using Quid.Node;
using Quid.Wire;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>The bandwidth market on real sockets with real transfers: shaping to grants, and liars caught.</summary>
[Collection(nameof(SerialTests))] // rates are measured: these run alone, not beside other heavy tests
public sealed class MarketNetworkTests(ITestOutputHelper output)
{
    private static readonly string BigFile = $"/bytes/{4L << 30}";

    /// <summary>Downloads through <paramref name="socks"/> for <paramref name="seconds"/> and returns the bytes per second curl saw.</summary>
    private static async Task<double> DownloadRateAsync(IPEndPoint socks, string url, int seconds)
    {
        var (exitCode, output, errors) = await Curl.RunAsync("--silent", "--show-error", "--output", "/dev/null", "--max-time", seconds.ToString(CultureInfo.InvariantCulture),
            "--write-out", "%{size_download} %{time_total}", "--socks5-hostname", socks.ToString(), url);
        Assert.True(exitCode is 0 or 28, $"curl failed ({exitCode}): {errors}"); // 28: our own time limit
        var parts = output.Split(' ');
        return double.Parse(parts[0], CultureInfo.InvariantCulture) / double.Parse(parts[1], CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task A_partner_pushing_far_more_than_its_grant_is_held_to_it_once_another_partner_claims_its_share()
    {
        // The exit offers 8192 kbps and grants 4096 to each of two clients that want far more than
        // they can pull through it. Each client gives the exit 2048 in return (the exit asks for
        // four partners of 2048, 3 hops): a donor would grant a client no more than it offers.
        // The clients cannot trade with each other (each has 2048 free, the other asks 4096).
        // No probes: their echo replies would share the clients' grants with what curl measures.
        var specs = new[] { new NodeSpec(8192, 8192), new NodeSpec(2048, 4096), new NodeSpec(2048, 4096) };
        await using var network = await TestNetwork.StartAsync(180, specs, configure: (i, o, _) => OverlayNetworkTests.Quick(o with
        {
            Socks = i == 0 ? null : new IPEndPoint(IPAddress.Loopback, 0),
            Hops = i == 0 ? 3 : o.Hops,
            Market = o.Market with { ProbePartners = false },
        }));
        var exit = network.Nodes[0];
        var (b, c) = (network.Nodes[1], network.Nodes[2]);
        await Eventually.WaitUntilAsync(async () => (await b.StatusAsync()).RequestMet && (await c.StatusAsync()).RequestMet && (await exit.StatusAsync()).FreeBlocks.Count == 0,
            TimeSpan.FromSeconds(20), "both clients to get 4096 kbps from the exit");
        // A grant counts whole cells on the link; curl sees the data they carry.
        const double grant = 4096 * 1000 / 8.0 * RelayCell.MaxData / Cell.Size;

        // Alone, B may borrow what C leaves idle.
        double alone = await DownloadRateAsync(b.SocksEndPoint!, network.Web.BaseUrl + BigFile, 5);
        output.WriteLine($"B alone: {alone / grant:0.00} of its grant");
        Assert.True(alone > 1.3 * grant, $"B alone got {alone / grant:0.00} of its grant: idle capacity was not lent.");

        // Both pushing: neither gets more than its grant (within 10%), and each gets most of it: on a
        // machine busy with the rest of the suite a download's start costs it up to a fifth.
        var bothB = DownloadRateAsync(b.SocksEndPoint!, network.Web.BaseUrl + BigFile, 10);
        var bothC = DownloadRateAsync(c.SocksEndPoint!, network.Web.BaseUrl + BigFile, 10);
        double rateB = await bothB, rateC = await bothC;
        output.WriteLine($"B {rateB / grant:0.00}, C {rateC / grant:0.00} of their grants");
        Assert.InRange(rateB / grant, 0.8, 1.1);
        Assert.InRange(rateC / grant, 0.8, 1.1);
    }

    [Fact]
    public async Task A_node_delivering_a_quarter_of_its_promise_is_cut_then_dropped_while_loaded_honest_nodes_keep_a_clean_record()
    {
        // Node 3 is the liar: it offers and grants like the others, but its uplink carries a quarter
        // of its offer, shared by all its links, so each partner gets at most that of the half it was promised.
        const int liar = 3;
        const byte first = 190;
        var specs = Enumerable.Repeat(new NodeSpec(4096, 2048), 5).ToArray();
        await using var uplink = new SlowUplink(specs.Length, liar, new IPAddress([127, 0, 0, first + liar]), bytesPerSecond: 4096 * 1000 / 8 / 4);
        await using var network = await TestNetwork.StartAsync(first, specs, configure: (i, o, started) => OverlayNetworkTests.Quick(uplink.Configure(i, o, started) with
        {
            Socks = new IPEndPoint(IPAddress.Loopback, 0),
            Market = o.Market with
            {
                ProbeIntervalMin = TimeSpan.FromSeconds(3), ProbeIntervalMax = TimeSpan.FromSeconds(5), ProbeDuration = TimeSpan.FromSeconds(2), RecheckAfter = TimeSpan.FromSeconds(1),
                // The liar does not care how its partners serve it; its probes would only queue behind its own slow uplink.
                ProbePartners = i != liar,
            },
        }));
        var liarId = network.Nodes[liar].Id;
        var honest = network.Nodes.Where((_, i) => i != liar).ToArray();
        var honestIds = honest.Select(n => n.Id).ToHashSet();

        async Task<QuidNode[]> TakingFromLiarAsync() =>
            [.. honest.Zip(await Task.WhenAll(honest.Select(h => h.StatusAsync()))).Where(p => p.Second.Agreements.Any(a => a.Partner == liarId && a.TheyGrant is not null)).Select(p => p.First)];
        await Eventually.WaitUntilAsync(async () => (await TakingFromLiarAsync()).Length > 0,
            TimeSpan.FromSeconds(20), "some honest node to take bandwidth from the liar");

        // Full load on every honest node while the probes run: downloads through each of them.
        using var stopLoad = new CancellationTokenSource(TimeSpan.FromSeconds(150)); // cancelled once the liar is dropped
        var load = honest.Select(h => Task.Run(async () =>
        {
            // Load, not a measurement: a node between partners fails its download and tries again.
            while (!stopLoad.IsCancellationRequested)
                await Curl.RunAsync("--silent", "--output", "/dev/null", "--max-time", "5", "--socks5-hostname", h.SocksEndPoint!.ToString(), network.Web.BaseUrl + BigFile);
        })).ToArray();

        // What honest nodes think of each other. (The liar's own probes must squeeze through its
        // slow uplink too, so it may well misjudge its honest partners: that is its problem.)
        async Task AssertHonestRecordsCleanAsync()
        {
            foreach (var node in honest)
                foreach (var partner in (await node.StatusAsync()).Partners.Where(p => honestIds.Contains(p.Id)))
                    Assert.True(partner.Verdict == Verdict.Good && partner.Failures == 0,
                        $"{node.Id.Brief} holds a verdict {partner.Verdict} ({partner.Failures} failures, {partner.DeliveredKbps:0} kbps) against honest {partner.Id.Brief}.");
        }

        // The liar's own messages queue behind its slow uplink too: a proposal of its own can expire
        // there after the partner accepted, and the End it then sends (PROTOCOL §7.1) ends the
        // agreement before any probe. A node left with nothing to judge need not judge; any honest
        // node holding an agreement with the liar must, and one at least must have.
        var started = DateTime.UtcNow;
        QuidNode[] judges = [];
        string views = "";
        try
        {
            await Eventually.WaitUntilAsync(async () =>
            {
                await AssertHonestRecordsCleanAsync();
                var statuses = await Task.WhenAll(honest.Select(v => v.StatusAsync()));
                bool Judged(NodeStatus s) => s.Partners.Any(p => p.Id == liarId && p.Verdict != Verdict.Good);
                judges = [.. honest.Where((_, i) => Judged(statuses[i]))];
                views = string.Join("; ", statuses.Select((s, i) =>
                    $"{honest[i].Id.Brief}: {s.Partners.SingleOrDefault(p => p.Id == liarId)?.Verdict.ToString() ?? "no account"}, {s.Agreements.Count(a => a.Partner == liarId)} agreements"));
                return judges.Length > 0 && statuses.All(s => Judged(s) || s.Agreements.All(a => a.Partner != liarId));
            }, TimeSpan.FromSeconds(90), "every partner of the liar to reach a verdict against it");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message} Of the liar: {views}.", e);
        }
        output.WriteLine($"verdicts against the liar after {(DateTime.UtcNow - started).TotalSeconds:0} s, by {judges.Length} honest nodes");

        await Eventually.WaitUntilAsync(async () =>
        {
            await AssertHonestRecordsCleanAsync();
            return (await Task.WhenAll(judges.Select(v => v.StatusAsync()))).All(s => s.Partners.Single(p => p.Id == liarId).Verdict == Verdict.Shunned
                && s.Agreements.All(a => a.Partner != liarId));
        }, TimeSpan.FromSeconds(60), "the liar's partners to end their agreements with it and shun it");
        output.WriteLine($"liar dropped after {(DateTime.UtcNow - started).TotalSeconds:0} s");

        await stopLoad.CancelAsync();
        await Task.WhenAll(load);
        await AssertHonestRecordsCleanAsync();
        // Honest nodes were probed under that load, and passed.
        Assert.Contains(await Task.WhenAll(honest.Select(h => h.StatusAsync())), s => s.Partners.Any(p => honestIds.Contains(p.Id) && p.DeliveredKbps is not null));
    }
}
