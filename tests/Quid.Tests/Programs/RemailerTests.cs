using System.Buffers.Binary;
using System.Security.Cryptography;
using Quid.Programs;

namespace Quid.Tests.Programs;

/// <summary>
/// The seed's remailer (remailer.wat) run in the sandbox, sans-IO: messages in, the outbox out, and
/// each <see cref="HostedProgram.Wake"/> one 100 ms tick.
/// </summary>
public sealed class RemailerTests : IDisposable
{
    private const long Plenty = 1_000_000_000;
    private static readonly byte[] Reply = [0x00];

    private readonly ProgramEngine _engine = new(TimeProvider.System);
    private readonly byte[] _secret = RandomNumberGenerator.GetBytes(Remailer.SecretLength);

    public void Dispose() => _engine.Dispose();

    private HostedProgram Load(long fuel = Plenty) => HostedProgram.Load(_engine, Remailer.Module(), new ProgramLimits(), fuel);

    /// <summary>A remailer with its owner set, whose INIT reply has been taken.</summary>
    private HostedProgram Owned(uint maxDelayMs = 1000)
    {
        var program = Load();
        program.Deliver(Remailer.Init(_secret, maxDelayMs));
        Assert.Equal([Remailer.KindInitialised], Answer(program));
        return program;
    }

    /// <summary>The one message the last call sent, which must be a reply.</summary>
    private static byte[] Answer(HostedProgram program)
    {
        var sent = Assert.Single(program.TakeOutbox());
        Assert.Equal(Reply, sent.To);
        return sent.Body;
    }

    private static byte[] Refusal(RemailerError error) => [Remailer.KindRefused, (byte)error];

    private static byte[] Count(uint count)
    {
        var body = new byte[5];
        body[0] = Remailer.KindFetched;
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(1), count);
        return body;
    }

    /// <summary>Wakes the program while it asks to be, up to <paramref name="limit"/> times: what each tick (from 1) sent.</summary>
    private static List<(int Tick, ProgramMessage Message)> Ticks(HostedProgram program, int limit)
    {
        var arrived = new List<(int, ProgramMessage)>();
        for (int tick = 1; tick <= limit && program.WakeAfter is not null; tick++)
        {
            Assert.Equal(Remailer.Tick, program.WakeAfter);
            program.Wake();
            arrived.AddRange(program.TakeOutbox().Select(m => (tick, m)));
        }
        return arrived;
    }

    [Fact]
    public void The_owner_is_set_by_the_first_init_only_and_fetches_an_empty_box_with_its_secret()
    {
        using var fresh = Load();
        fresh.Deliver(Remailer.Fetch(_secret));
        Assert.Equal(Refusal(RemailerError.NotInitialised), Answer(fresh));
        fresh.Deliver(Remailer.Deposit("early"u8));
        Assert.Equal(Refusal(RemailerError.NotInitialised), Answer(fresh));
        fresh.Deliver(Remailer.Forward("bob"u8, "early"u8));
        Assert.Equal(Refusal(RemailerError.NotInitialised), Answer(fresh));
        Assert.Equal(0, fresh.StoredBytes);
        Assert.Null(fresh.WakeAfter);

        using var program = Owned();
        long stored = program.StoredBytes;
        Assert.Equal("owner".Length + 36, stored);
        program.Deliver(Remailer.Fetch(_secret));
        Assert.Equal(Count(0), Answer(program));

        // A second INIT changes nothing: the first secret still fetches, the second does not.
        var other = RandomNumberGenerator.GetBytes(Remailer.SecretLength);
        program.Deliver(Remailer.Init(other, 5));
        Assert.Equal(Refusal(RemailerError.AlreadyInitialised), Answer(program));
        program.Deliver(Remailer.Fetch(other));
        Assert.Equal(Refusal(RemailerError.WrongSecret), Answer(program));
        var close = (byte[])_secret.Clone();
        close[^1] ^= 1;
        program.Deliver(Remailer.Fetch(close));
        Assert.Equal(Refusal(RemailerError.WrongSecret), Answer(program));
        program.Deliver(Remailer.Fetch(_secret));
        Assert.Equal(Count(0), Answer(program));
        Assert.Equal(stored, program.StoredBytes);
    }

    [Fact]
    public void Deposits_are_fetched_in_order_once_and_then_leave_the_store_as_it_was()
    {
        using var program = Owned();
        long stored = program.StoredBytes;
        program.Deliver(Remailer.Deposit("first"u8));
        program.Deliver(Remailer.Deposit("second"u8));
        Assert.Empty(program.TakeOutbox());
        Assert.True(program.StoredBytes > stored + "first".Length + "second".Length);

        program.Deliver(Remailer.Fetch(_secret));
        var sent = program.TakeOutbox();
        Assert.All(sent, m => Assert.Equal(Reply, m.To));
        Assert.Equal([[0x83, .. "first"u8], [0x83, .. "second"u8], Count(2)], sent.Select(m => m.Body));
        Assert.Equal("second"u8.ToArray(), Remailer.ParseReply(sent[1].Body).Payload);
        Assert.Equal(2u, Remailer.ParseReply(sent[2].Body).Count);
        Assert.Equal(stored, program.StoredBytes);

        program.Deliver(Remailer.Fetch(_secret));
        Assert.Equal(Count(0), Answer(program));

        // The largest deposit there is comes back whole, as the largest message there is.
        var largest = RandomNumberGenerator.GetBytes(Remailer.MaxPayload);
        program.Deliver(Remailer.Deposit(largest));
        program.Deliver(Remailer.Fetch(_secret));
        sent = program.TakeOutbox();
        Assert.Equal(2, sent.Count);
        Assert.Equal(HostedProgram.MaxMessage, sent[0].Body.Length);
        Assert.Equal(largest, Remailer.ParseReply(sent[0].Body).Payload);
        Assert.Equal(Count(1), sent[1].Body);
        Assert.Equal(stored, program.StoredBytes);
    }

    [Fact]
    public void A_forward_goes_on_as_a_deposit_to_its_address_after_some_ticks_and_only_once()
    {
        using var program = Owned(maxDelayMs: 1000);
        long stored = program.StoredBytes;
        var to = "bob's session address"u8.ToArray();
        program.Deliver(Remailer.Forward(to, "hello bob"u8));
        Assert.Empty(program.TakeOutbox());
        Assert.Equal(Remailer.Tick, program.WakeAfter);
        Assert.True(program.StoredBytes > stored);

        // 1000 ms of 100 ms ticks: at most ten of them.
        var arrived = Ticks(program, 11);
        var (tick, message) = Assert.Single(arrived);
        Assert.InRange(tick, 1, 10);
        Assert.Equal(to, message.To);
        Assert.Equal([0x03, .. "hello bob"u8], message.Body);
        Assert.Equal("hello bob"u8.ToArray(), Remailer.ReadDeposit(message.Body).ToArray());
        // The queue is empty: it asks for no more ticks, and one more sends nothing.
        Assert.Null(program.WakeAfter);
        program.Wake();
        Assert.Empty(program.TakeOutbox());
        Assert.Equal(stored, program.StoredBytes);
    }

    [Fact]
    public void Fifty_forwards_all_arrive_once_each_after_delays_that_differ()
    {
        using var program = Owned(maxDelayMs: 1000);
        for (int i = 0; i < 50; i++)
            program.Deliver(Remailer.Forward([(byte)(1 + i % 3), (byte)i], [.. "message "u8, (byte)i]));
        Assert.Empty(program.TakeOutbox());

        var arrived = Ticks(program, 20);
        Assert.Equal(50, arrived.Count);
        Assert.Null(program.WakeAfter);
        Assert.All(arrived, a => Assert.InRange(a.Tick, 1, 10));
        Assert.Equal(Enumerable.Range(0, 50), arrived.Select(a => (int)a.Message.Body[^1]).Order());
        Assert.All(arrived, a => Assert.Equal([(byte)(1 + a.Message.Body[^1] % 3), a.Message.Body[^1]], a.Message.To));
        Assert.All(arrived, a => Assert.Equal(Remailer.KindDeposit, a.Message.Body[0]));
        // Delays drawn at random from ten: fifty of them on two or fewer would be a 1-in-10^33 chance.
        Assert.True(arrived.Select(a => a.Tick).Distinct().Count() >= 3, string.Join(",", arrived.Select(a => a.Tick)));
    }

    [Fact]
    public void A_tick_that_finds_the_outbox_full_keeps_the_rest_for_the_next_tick()
    {
        // No delay to speak of: every forward is due at the first tick.
        using var program = Owned(maxDelayMs: 0);
        long stored = program.StoredBytes;
        for (int i = 0; i < 300; i++)
            program.Deliver(Remailer.Forward("carol"u8, BitConverter.GetBytes(i)));
        Assert.Empty(program.TakeOutbox());

        program.Wake();
        var first = program.TakeOutbox();
        Assert.Equal(HostedProgram.MaxOutbox, first.Count);
        Assert.Equal(Remailer.Tick, program.WakeAfter);
        program.Wake();
        var second = program.TakeOutbox();
        Assert.Equal(300 - HostedProgram.MaxOutbox, second.Count);
        Assert.Null(program.WakeAfter);
        Assert.Equal(Enumerable.Range(0, 300), first.Concat(second).Select(m => BitConverter.ToInt32(m.Body, 1)).Order());
        Assert.Equal(stored, program.StoredBytes);
    }

    [Fact]
    public void A_fetch_sends_at_most_255_and_its_count_and_leaves_the_rest_for_the_next()
    {
        using var program = Owned();
        long stored = program.StoredBytes;
        for (int i = 0; i < 300; i++)
            program.Deliver(Remailer.Deposit(BitConverter.GetBytes(i)));
        Assert.Empty(program.TakeOutbox());

        program.Deliver(Remailer.Fetch(_secret));
        // Not taken: the next fetch finds the outbox full, sends nothing and loses nothing.
        program.Deliver(Remailer.Fetch(_secret));
        var sent = program.TakeOutbox();
        Assert.Equal(Remailer.MaxFetch + 1, sent.Count);
        Assert.Equal(Enumerable.Range(0, Remailer.MaxFetch), sent.SkipLast(1).Select(m => BitConverter.ToInt32(Remailer.ParseReply(m.Body).Payload)));
        Assert.Equal(Count(Remailer.MaxFetch), sent[^1].Body);

        program.Deliver(Remailer.Fetch(_secret));
        sent = program.TakeOutbox();
        Assert.Equal(Enumerable.Range(Remailer.MaxFetch, 300 - Remailer.MaxFetch), sent.SkipLast(1).Select(m => BitConverter.ToInt32(Remailer.ParseReply(m.Body).Payload)));
        Assert.Equal(Count(300 - Remailer.MaxFetch), sent[^1].Body);
        Assert.Equal(stored, program.StoredBytes);

        program.Deliver(Remailer.Fetch(_secret));
        Assert.Equal(Count(0), Answer(program));
    }

    [Fact]
    public void Malformed_messages_are_refused_with_why_and_replies_are_never_answered()
    {
        using var program = Owned();
        long stored = program.StoredBytes;
        byte[] to65 = [0x02, 65, .. new byte[65], 0x01];
        var cases = new (byte[] Message, RemailerError Error)[]
        {
            ([], RemailerError.Malformed),
            ([0x00], RemailerError.UnknownKind),
            ([0x05, 1, 2, 3], RemailerError.UnknownKind),
            ([0x7F], RemailerError.UnknownKind),
            ([0x01], RemailerError.Malformed),
            ([.. Remailer.Init(_secret, 1), 0], RemailerError.Malformed),
            ([0x02], RemailerError.Malformed),
            ([0x02, 1], RemailerError.Malformed),
            ([0x02, 0, (byte)'x'], RemailerError.Malformed),
            (to65, RemailerError.Malformed),
            ([0x02, 3, (byte)'a', (byte)'b'], RemailerError.Malformed),
            ([0x02, 2, (byte)'a', (byte)'b'], RemailerError.Malformed),
            ([0x02, 1, 0x00, (byte)'x'], RemailerError.Malformed),
            ([0x02, 255, .. new byte[300]], RemailerError.Malformed),
            ([0x03], RemailerError.Malformed),
            ([0x04], RemailerError.Malformed),
            (Remailer.Fetch(_secret)[..^1], RemailerError.Malformed),
            ([.. Remailer.Fetch(_secret), 0], RemailerError.Malformed),
        };
        foreach (var (message, error) in cases)
        {
            program.Deliver(message);
            Assert.Equal(Refusal(error), Answer(program));
            Assert.Equal(error, Remailer.ParseReply(Refusal(error)).Error);
        }
        // Another remailer's replies, or its refusals: answering them could go on forever.
        byte[][] replies = [[0x81], [0xEE, 6], [0x84, 0, 0, 0, 1], [0x83, 1], [0xFF], [0x80]];
        foreach (var reply in replies)
        {
            program.Deliver(reply);
            Assert.Empty(program.TakeOutbox());
        }
        Assert.Equal(stored, program.StoredBytes);
        Assert.Null(program.WakeAfter);
        program.Deliver(Remailer.Fetch(_secret));
        Assert.Equal(Count(0), Answer(program));
    }

    [Fact]
    public void Random_bytes_never_make_it_trap_and_it_still_serves_its_owner()
    {
        using var program = Owned();
        var random = new Random(2024);
        var deposited = new List<byte[]>();
        for (int i = 0; i < 2_000; i++)
        {
            var message = new byte[random.Next(0, 301)];
            random.NextBytes(message);
            // Half of them of a kind it takes, to get past the first byte.
            if (message.Length > 0 && random.Next(2) == 0) message[0] = (byte)random.Next(0, 6);
            if (message.Length >= 2 && message[0] == Remailer.KindDeposit) deposited.Add(message[1..]);
            try
            {
                program.Deliver(message);
            }
            catch (ProgramException e) when (e.Error == ProgramError.OutOfFuel)
            {
                program.AddFuel(Plenty);
            }
            // Nothing random is a valid INIT or FETCH: at most a refusal comes back.
            var sent = program.TakeOutbox();
            Assert.InRange(sent.Count, 0, 1);
            Assert.All(sent, m => Assert.Equal(Reply, m.To));
            Assert.All(sent, m => Assert.Equal(Remailer.KindRefused, Remailer.ParseReply(m.Body).Kind));
            if (i % 100 == 99 && program.WakeAfter is not null)
            {
                program.Wake();
                Assert.All(program.TakeOutbox(), m => Assert.Equal(Remailer.KindDeposit, m.Body[0]));
            }
        }
        Assert.InRange(deposited.Count, 100, Remailer.MaxFetch);

        program.Deliver(Remailer.Fetch(_secret));
        var fetched = program.TakeOutbox();
        Assert.Equal(deposited, fetched.SkipLast(1).Select(m => Remailer.ParseReply(m.Body).Payload));
        Assert.Equal(Count((uint)deposited.Count), fetched[^1].Body);
    }

    [Fact]
    public void A_program_starved_of_fuel_part_way_through_calls_loses_no_message()
    {
        using var program = Load(fuel: 0);
        var payloads = Enumerable.Range(0, 40).Select(i => BitConverter.GetBytes(i * 7919)).ToList();
        int stops = 0;
        // A stopped call is left with no fuel and made again from the start with a little more
        // each time, so that calls stop at every point on the way.
        void Run(Action call)
        {
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    call();
                    return;
                }
                catch (ProgramException e) when (e.Error == ProgramError.OutOfFuel)
                {
                    Assert.Equal(0, program.Fuel);
                    stops++;
                    program.AddFuel(attempt * 700L);
                }
            }
        }
        Run(() => program.Deliver(Remailer.Init(_secret, 1000)));
        program.TakeOutbox();
        foreach (var payload in payloads) Run(() => program.Deliver(Remailer.Deposit(payload)));
        Assert.Empty(program.TakeOutbox());

        var fetched = new List<byte[]>();
        for (int round = 0; round < 20; round++)
        {
            Run(() => program.Deliver(Remailer.Fetch(_secret)));
            var sent = program.TakeOutbox();
            fetched.AddRange(sent.Where(m => m.Body[0] == Remailer.KindMessage).Select(m => Remailer.ParseReply(m.Body).Payload));
            if (sent[^1].Body.AsSpan().SequenceEqual(Count(0))) break;
        }
        Assert.True(stops > 40, $"{stops} stops");
        // A message may come twice (stopped between sending it and removing it), never not at all, and in order.
        Assert.Equal(payloads.Select(Convert.ToHexString), fetched.Select(Convert.ToHexString).Distinct());
        program.AddFuel(Plenty);
        program.Deliver(Remailer.Fetch(_secret));
        Assert.Equal(Count(0), Answer(program));
    }

    [Fact]
    public void Every_call_costs_fuel()
    {
        using var program = Load();
        var calls = new (string What, Action Call)[]
        {
            ("init", () => program.Deliver(Remailer.Init(_secret, 100))),
            ("deposit", () => program.Deliver(Remailer.Deposit("x"u8))),
            ("forward", () => program.Deliver(Remailer.Forward("dave"u8, "y"u8))),
            ("tick", program.Wake),
            ("fetch", () => program.Deliver(Remailer.Fetch(_secret))),
            ("wrong secret", () => program.Deliver(Remailer.Fetch(new byte[32]))),
            ("unknown kind", () => program.Deliver([0x42])),
            ("a reply", () => program.Deliver([0xEE, 1])),
            ("an idle tick", program.Wake),
        };
        foreach (var (what, call) in calls)
        {
            long before = program.Fuel;
            call();
            Assert.True(program.Fuel < before, $"{what} cost nothing");
        }
        Assert.Equal(Remailer.KindFetched, program.TakeOutbox().Select(m => m.Body[0]).Single(k => k == Remailer.KindFetched));
    }

    [Fact]
    public void The_encoders_refuse_what_the_program_would_and_the_parser_what_it_never_sends()
    {
        Assert.Equal([0x01, .. _secret, 0, 0, 0x03, 0xE8], Remailer.Init(_secret, 1000));
        Assert.Equal([0x02, 2, (byte)'t', (byte)'o', (byte)'p'], Remailer.Forward("to"u8, "p"u8));
        Assert.Equal([0x03, (byte)'p'], Remailer.Deposit("p"u8));
        Assert.Equal([0x04, .. _secret], Remailer.Fetch(_secret));
        Assert.Equal(HostedProgram.MaxMessage, Remailer.Forward(new byte[64], new byte[HostedProgram.MaxMessage - 66]).Length);

        Assert.Throws<ArgumentException>(() => Remailer.Init(new byte[31], 1));
        Assert.Throws<ArgumentException>(() => Remailer.Fetch(new byte[33]));
        Assert.Throws<ArgumentException>(() => Remailer.Forward([], "p"u8));
        Assert.Throws<ArgumentException>(() => Remailer.Forward(new byte[65], "p"u8));
        Assert.Throws<ArgumentException>(() => Remailer.Forward([0x00], "p"u8));
        Assert.Throws<ArgumentException>(() => Remailer.Forward("to"u8, []));
        Assert.Throws<ArgumentException>(() => Remailer.Forward(new byte[64], new byte[HostedProgram.MaxMessage - 65]));
        Assert.Throws<ArgumentException>(() => Remailer.Deposit([]));
        Assert.Throws<ArgumentException>(() => Remailer.Deposit(new byte[Remailer.MaxPayload + 1]));
        Assert.Throws<ArgumentException>(() => Remailer.ReadDeposit([0x03]));
        byte[][] junks = [[], [0x81, 0], [0x83], [0x84, 0, 0, 0], [0xEE], [0xEE, 0], [0x03, 1]];
        foreach (var junk in junks)
            Assert.Throws<ArgumentException>(() => Remailer.ParseReply(junk));

        // Compiled once: the same bytes each time, and a copy that a caller may spoil alone.
        var module = Remailer.Module();
        Assert.Equal("\0asm"u8.ToArray(), module[..4]);
        module[1] = 0;
        Assert.Equal((byte)'a', Remailer.Module()[1]);
        Assert.NotSame(Remailer.Module(), Remailer.Module());
    }
}
