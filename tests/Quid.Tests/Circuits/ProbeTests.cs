using System.Security.Cryptography;
using Quid.Circuits;
using Quid.Tests.Integration;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>Echo probes: an honest partner is measured by what it delivers, a liar at nothing.</summary>
public sealed class ProbeTests
{
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan FirstEchoWithin = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    /// <summary>What the partner promised, for the probe's log.</summary>
    private const long Promised = 256;
    /// <summary>Echoes at 100 Mbit/s: a window's worth in 11 ms of the test's clock, for tests of what a probe measures.</summary>
    private const double FastPace = 100_000;
    private const int Window = Prober.Window;

    [Fact]
    public async Task An_honest_partner_is_measured_by_what_it_delivered_from_the_first_echo_to_the_end_on_the_clock()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        var account = origin.Ledger.Account(hops[0].Id);

        double kbps = await ProbeAWindowOfEchoesAsync(net, origin, hops[0]);

        Assert.True(kbps > 0);
        // All it can have counted: every byte the partner delivered, over the two seconds the clock moved.
        Assert.True(kbps <= account.BytesDeliveredToUs * 8 / 1000.0 / Duration.TotalSeconds, $"{kbps} kbps");
    }

    [Fact]
    public async Task Echoes_count_toward_what_the_probe_measures_but_neither_ledger_counts_them_as_service()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        var account = origin.Ledger.Account(hops[0].Id);

        await ProbeAWindowOfEchoesAsync(net, origin, hops[0]);

        Assert.True(account.BytesDeliveredToUs >= (Window - 1) * Cell.Size, $"{account.BytesDeliveredToUs} bytes delivered");
        Assert.Equal(0, account.BytesReceived);
        Assert.Equal(0, hops[0].Ledger.Account(origin.Id).BytesGiven);
    }

    /// <summary>
    /// Probes a real partner that answers one window of echoes and then stalls, for a duration on
    /// the test's clock. In memory a partner answers each echo before the next goes out: the stall
    /// makes the probe wait for the clock instead of echoing as fast as the CPU allows.
    /// </summary>
    private static async Task<double> ProbeAWindowOfEchoesAsync(CircuitHarness net, CircuitNode origin, CircuitNode partner)
    {
        var back = partner.PortTo(origin);
        int replies = 0;
        back.Tamper = cell =>
        {
            if (Cell.Command(cell) == CellCommand.Relay && ++replies == Window) back.Stall();
        };
        var probe = origin.Prober.ProbeAsync(origin.PortTo(partner), partner.Descriptor, origin.Ledger.Account(partner.Id), Promised, FastPace, Duration,
            FirstEchoWithin, default);
        await Eventually.WaitUntilAsync(() => back.Held > 0, Deadline, "the partner to have answered a window of echoes");
        net.Time.Advance(Duration);
        return await probe.WaitAsync(Deadline);
    }

    [Fact]
    public async Task A_late_first_echo_followed_by_a_burst_is_measured_over_a_whole_duration_not_the_moment_left()
    {
        using var net = new CircuitHarness();
        var origin = net.AddNode();
        var hop = net.AddFake(origin);
        var account = origin.Ledger.Account(hop.Id);
        int answered = 0;
        hop.OnMessage = (self, command, _, echo) =>
        {
            if (command != RelayCommand.Echo) return;
            // The first window's replies wait in the pipe (as behind a slow uplink); so do the second
            // window's, until the test lets them go; after the third window the partner goes quiet.
            if (++answered is 1 or Window + 1 or 3 * Window) self.Port.Stall();
            self.Send(RelayCommand.EchoReply, 0, echo);
        };

        var probe = origin.Prober.ProbeAsync(origin.Ports[hop.Id], hop.Descriptor, account, Promised, FastPace, Duration, FirstEchoWithin, default);
        await Eventually.WaitUntilAsync(() => hop.Port.Held == Window, Deadline, "the first window's replies to be held");
        net.Time.Advance(Duration * 3 / 4);
        hop.Port.Resume();
        await Eventually.WaitUntilAsync(() => hop.Received.Count > Window, Deadline, "the burst of replies to have reached the origin");
        // The duration the probe started with is over; the one from its first echo is not, so it
        // goes on echoing what comes back.
        net.Time.Advance(Duration / 4);
        hop.Port.Resume();
        await Eventually.WaitUntilAsync(() => hop.Received.Count >= 3 * Window, Deadline, "the probe to go on past the duration it started with");
        net.Time.Advance(Duration * 3 / 4);

        double kbps = await probe.WaitAsync(Deadline);
        Assert.True(kbps > 0);
        Assert.True(kbps <= account.BytesDeliveredToUs * 8 / 1000.0 / Duration.TotalSeconds, $"{kbps} kbps");
    }

    [Fact]
    public async Task A_first_echo_held_past_the_duration_in_a_slow_uplink_starts_the_measure_and_is_not_nothing()
    {
        using var net = new CircuitHarness();
        var origin = net.AddNode();
        var hop = net.AddFake(origin);
        var account = origin.Ledger.Account(hop.Id);
        int answered = 0;
        hop.OnMessage = (self, command, _, echo) =>
        {
            if (command != RelayCommand.Echo) return;
            // The first window's replies wait in the queues for longer than a whole measure.
            if (++answered is 1 or 3 * Window) self.Port.Stall();
            self.Send(RelayCommand.EchoReply, 0, echo);
        };

        var probe = origin.Prober.ProbeAsync(origin.Ports[hop.Id], hop.Descriptor, account, Promised, FastPace, Duration, FirstEchoWithin, default);
        await Eventually.WaitUntilAsync(() => hop.Port.Held == Window, Deadline, "the first window's replies to be held");
        net.Time.Advance(Duration * 2);
        Assert.False(probe.IsCompleted, "the probe gave up before its first echo could come");
        hop.Port.Resume();
        await Eventually.WaitUntilAsync(() => hop.Received.Count >= 3 * Window, Deadline, "the probe to echo on from its first reply");
        net.Time.Advance(Duration);

        double kbps = await probe.WaitAsync(Deadline);
        Assert.True(kbps > 0);
        Assert.True(kbps <= account.BytesDeliveredToUs * 8 / 1000.0 / Duration.TotalSeconds, $"{kbps} kbps");
    }

    [Fact]
    public async Task A_partner_whose_first_echo_is_not_back_within_the_wait_for_it_delivered_nothing()
    {
        using var net = new CircuitHarness();
        var origin = net.AddNode();
        var hop = net.AddFake(origin);
        var account = origin.Ledger.Account(hop.Id);
        hop.OnMessage = (self, command, _, echo) =>
        {
            if (command != RelayCommand.Echo) return;
            self.Port.Stall();
            self.Send(RelayCommand.EchoReply, 0, echo);
        };

        var probe = origin.Prober.ProbeAsync(origin.Ports[hop.Id], hop.Descriptor, account, Promised, FastPace, Duration, FirstEchoWithin, default);
        await Eventually.WaitUntilAsync(() => hop.Port.Held == Window, Deadline, "the replies to be held");
        net.Time.Advance(FirstEchoWithin);

        Assert.Equal(0, await probe.WaitAsync(Deadline));
    }

    [Fact]
    public async Task A_partner_whose_echoes_wait_behind_what_it_sends_us_is_measured_on_what_it_sent()
    {
        using var net = new CircuitHarness();
        var origin = net.AddNode();
        var hop = net.AddFake(origin);
        var account = origin.Ledger.Account(hop.Id);
        // Its grant is full of what it carries for us: for each echo of this probe a cell of
        // something else comes (here an earlier probe's late reply), and no echo of this probe
        // is back before the wait for it is over.
        var earlier = new byte[EchoProbe.Size];
        new EchoProbe(Probe: 1, Sequence: 1).Write(earlier);
        hop.OnMessage = (self, command, _, _) =>
        {
            if (command == RelayCommand.Echo) self.Send(RelayCommand.EchoReply, 0, earlier);
        };

        var probe = origin.Prober.ProbeAsync(origin.Ports[hop.Id], hop.Descriptor, account, Promised, FastPace, Duration, FirstEchoWithin, default);
        await Eventually.WaitUntilAsync(() => account.BytesDeliveredToUs >= Window * Cell.Size, Deadline, "a cell back for each echo");
        long sent = account.BytesDeliveredToUs;
        net.Time.Advance(FirstEchoWithin);

        double kbps = await probe.WaitAsync(Deadline);
        // What it sent over the wait, not nothing.
        Assert.Equal(sent * 8 / 1000.0 / FirstEchoWithin.TotalSeconds, kbps, precision: 6);
        Assert.True(kbps > 0);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(40 * Cell.Size)]
    public async Task A_partner_whose_probe_circuit_is_not_built_within_the_wait_is_measured_on_what_it_sent_meanwhile(long sentMeanwhile)
    {
        using var net = new CircuitHarness();
        var origin = net.AddNode();
        var hop = net.AddFake(origin);
        var account = origin.Ledger.Account(hop.Id);
        // Its CREATED waits behind a loaded link for longer than the whole wait for a first echo.
        hop.Port.Stall();

        var probe = origin.Prober.ProbeAsync(origin.Ports[hop.Id], hop.Descriptor, account, Promised, FastPace, Duration, FirstEchoWithin, default);
        await Eventually.WaitUntilAsync(() => hop.Port.Held == 1, Deadline, "the CREATED to be held");
        // Meanwhile it carries our own traffic on our other circuits.
        account.AddDeliveredToUs(sentMeanwhile);
        net.Time.Advance(FirstEchoWithin);

        double kbps = await probe.WaitAsync(Deadline);
        Assert.Equal(sentMeanwhile * 8 / 1000.0 / FirstEchoWithin.TotalSeconds, kbps, precision: 6);
    }

    [Fact]
    public async Task After_a_first_window_echoes_go_out_at_the_pace_not_as_fast_as_the_partner_answers()
    {
        using var net = new CircuitHarness();
        var origin = net.AddNode();
        var hop = net.AddFake(origin);
        var account = origin.Ledger.Account(hop.Id);
        // A partner with room to spare answers every echo at once.
        hop.OnMessage = (self, command, _, echo) =>
        {
            if (command == RelayCommand.Echo) self.Send(RelayCommand.EchoReply, 0, echo);
        };
        const double echoKbps = 512;
        double perSecond = echoKbps * 1000 / 8 / Cell.Size;

        var probe = origin.Prober.ProbeAsync(origin.Ports[hop.Id], hop.Descriptor, account, Promised, echoKbps, Duration, FirstEchoWithin, default);
        await Eventually.WaitUntilAsync(() => hop.Received.Count >= Window, Deadline, "the first window to go out at once");
        Assert.Equal(Window, hop.Received.Count);

        net.Time.Advance(Duration / 2);
        int paced = Window + (int)(Duration.TotalSeconds / 2 * perSecond);
        await Eventually.WaitUntilAsync(() => hop.Received.Count >= paced, Deadline, "a second's echoes at the pace");
        net.Time.Advance(Duration / 2);

        double kbps = await probe.WaitAsync(Deadline);
        Assert.InRange(hop.Received.Count, paced, paced + perSecond + 1);
        // Measured on what came back, which the pace held to the first window and the rest at its rate.
        Assert.True(kbps <= (Window + Duration.TotalSeconds * perSecond + 1) * Cell.Size * 8 / 1000 / Duration.TotalSeconds, $"{kbps} kbps");
    }

    public static TheoryData<string, bool> Echoes => new()
    {
        { "returns each echo as it came", true },
        { "changes a byte of each", false },
        { "returns each twice", false },
        { "answers with echoes it made up, the probe's mark copied", false },
        { "returns nothing", false },
    };

    [Theory]
    [MemberData(nameof(Echoes))]
    public async Task A_partner_that_lies_about_echoes_is_measured_at_nothing_however_much_it_sends(string partner, bool honest)
    {
        using var net = new CircuitHarness();
        var origin = net.AddNode();
        var hop = net.AddFake(origin);
        var account = origin.Ledger.Account(hop.Id);
        int answered = 0;
        hop.OnMessage = (self, command, _, echo) =>
        {
            if (command != RelayCommand.Echo) return;
            // After one window the partner goes quiet, so an honest one is not echoed as fast as the CPU allows.
            if (++answered == Window) self.Port.Stall();
            switch (partner)
            {
                case "returns each echo as it came":
                    self.Send(RelayCommand.EchoReply, 0, echo);
                    break;
                case "changes a byte of each":
                    echo[100] ^= 0x01;
                    self.Send(RelayCommand.EchoReply, 0, echo);
                    break;
                case "returns each twice":
                    self.Send(RelayCommand.EchoReply, 0, echo);
                    self.Send(RelayCommand.EchoReply, 0, echo);
                    break;
                case "answers with echoes it made up, the probe's mark copied":
                    var madeUp = new byte[echo.Length];
                    echo.AsSpan(0, 8).CopyTo(madeUp);
                    RandomNumberGenerator.Fill(madeUp.AsSpan(8));
                    self.Send(RelayCommand.EchoReply, 0, madeUp);
                    break;
            }
        };

        var probe = origin.Prober.ProbeAsync(origin.Ports[hop.Id], hop.Descriptor, account, Promised, FastPace, Duration, FirstEchoWithin, default);
        await Eventually.WaitUntilAsync(() => hop.Received.Count >= Window, Deadline, "the probe's echoes to reach the partner");
        // Past the measure of one that answers, and past the wait for one that does not.
        net.Time.Advance(FirstEchoWithin);

        double kbps = await probe.WaitAsync(Deadline);
        if (honest) Assert.True(kbps > 0, partner);
        else Assert.Equal(0, kbps);
        Assert.All(hop.Received, r => Assert.Equal(RelayCommand.Echo, r.Command));
    }
}
