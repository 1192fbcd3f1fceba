using System.Buffers.Binary;
using System.Security.Cryptography;
using Microsoft.Extensions.Time.Testing;
using Quid.Services;

namespace Quid.Tests.Services;

/// <summary>The work a client may attach to an introduction, and the gate at an introduction point that passes the most work first when flooded (PROTOCOL §9.14).</summary>
public sealed class IntroductionWorkTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 0, 3, 0, TimeSpan.Zero);
    private static long Epoch => IntroductionWork.Epoch(Now);

    /// <summary>Bytes shaped as a sealed introduction (version 1, a random E): the gate and the work never open it.</summary>
    private static byte[] AnIntroduction()
    {
        var introduction = RandomNumberGenerator.GetBytes(Introduction.SealedSize);
        introduction[0] = Introduction.Version;
        return introduction;
    }

    private static int EffortOf(byte[] carried, long epoch)
    {
        Assert.True(IntroductionWork.TryRead(carried, epoch, out _, out int effort));
        return effort;
    }

    [Fact]
    public void The_work_matches_an_independent_reference()
    {
        // introduction = 00 01 … c9, epoch 2,966,000, nonce 566: the first nonce from 0 up with at
        // least 13 leading zero bits (it has 14), found and hashed by Python's hashlib:
        // sha256(b"quid introduction work" + bytes(range(202)) + (2966000).to_bytes(8, "big") + (566).to_bytes(8, "big"))
        byte[] carried = [.. Enumerable.Range(0, Introduction.SealedSize).Select(i => (byte)i), 0, 0, 0, 0, 0, 0x2D, 0x41, 0xF0, 0, 0, 0, 0, 0, 0, 0x02, 0x36];
        Assert.Equal(2_966_000, BinaryPrimitives.ReadInt64BigEndian(carried.AsSpan(Introduction.SealedSize)));
        var digest = SHA256.HashData([.. "quid introduction work"u8, .. carried]);
        Assert.Equal("0002052ff65dcb0672dac34d685d8ca0ebf476219b9cb7a67a93d9ad6a3b462d", Convert.ToHexStringLower(digest));
        Assert.Equal(14, EffortOf(carried, 2_966_000));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(12)]
    public void A_solution_has_at_least_the_effort_asked_and_keeps_the_introduction(int effort)
    {
        var introduction = AnIntroduction();
        var carried = IntroductionWork.Solve(introduction, effort, Epoch, CancellationToken.None);
        Assert.Equal(IntroductionWork.CarriedSize, carried.Length);
        Assert.True(IntroductionWork.TryRead(carried, Epoch, out var read, out int measured));
        Assert.True(read.SequenceEqual(introduction));
        Assert.True(measured >= effort, $"effort {measured} < {effort}");
    }

    [Fact]
    public void Work_counts_within_one_epoch_of_the_point_and_not_beyond()
    {
        var carried = IntroductionWork.Solve(AnIntroduction(), 12, Epoch, CancellationToken.None);
        Assert.True(EffortOf(carried, Epoch - 1) >= 12);
        Assert.True(EffortOf(carried, Epoch + 1) >= 12);
        Assert.Equal(0, EffortOf(carried, Epoch + 2));
        Assert.Equal(0, EffortOf(carried, Epoch - 2));
    }

    [Fact]
    public void Work_is_bound_to_its_introduction()
    {
        var carried = IntroductionWork.Solve(AnIntroduction(), 16, Epoch, CancellationToken.None);
        // The same nonce on another introduction is worth what chance gives it: 16 bits or more one time in 65,536.
        var moved = (byte[])carried.Clone();
        moved[5] ^= 1;
        Assert.True(EffortOf(moved, Epoch) < 16);
    }

    [Fact]
    public void An_introduction_alone_has_no_work_and_other_lengths_are_refused()
    {
        Assert.Equal(0, EffortOf(AnIntroduction(), Epoch));
        foreach (int length in new[] { 0, 1, Introduction.SealedSize - 1, Introduction.SealedSize + 1, IntroductionWork.CarriedSize - 1, IntroductionWork.CarriedSize + 1, 1024 })
            Assert.False(IntroductionWork.TryRead(new byte[length], Epoch, out _, out _), $"{length} bytes");
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        var random = new Random(5);
        for (int i = 0; i < 2000; i++)
        {
            var bytes = new byte[random.Next(0, 200)];
            random.NextBytes(bytes);
            if (IntroductionWork.TryRead(bytes, Epoch, out var introduction, out int effort))
            {
                Assert.Equal(Introduction.SealedSize, introduction.Length);
                Assert.InRange(effort, 0, 256);
            }
        }
    }

    [Fact]
    public void Solving_can_be_cancelled()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => IntroductionWork.Solve(AnIntroduction(), IntroductionWork.MaxEffort, Epoch, cancelled.Token));
        Assert.Throws<ArgumentOutOfRangeException>(() => IntroductionWork.Solve(AnIntroduction(), IntroductionWork.MaxEffort + 1, Epoch, CancellationToken.None));
        Assert.Throws<ArgumentException>(() => IntroductionWork.Solve(new byte[10], 1, Epoch, CancellationToken.None));
    }

    // ---- The gate ----

    [Fact]
    public void Without_load_every_introduction_passes_at_once_without_its_work()
    {
        var gate = new IntroductionGate(new FakeTimeProvider(Now));
        var plain = AnIntroduction();
        Assert.Equal(plain, Assert.Single(gate.Offer(plain)));
        var worked = AnIntroduction();
        Assert.Equal(worked, Assert.Single(gate.Offer(IntroductionWork.Solve(worked, 4, Epoch, CancellationToken.None))));
        Assert.Equal(0, gate.Dropped);
    }

    [Fact]
    public void Under_a_flood_a_client_with_work_passes_before_the_flood()
    {
        var time = new FakeTimeProvider(Now);
        var gate = new IntroductionGate(time);
        // The flood spends the burst, then fills the queue.
        int passed = 0;
        for (int i = 0; i < IntroductionGate.Burst + IntroductionGate.Capacity; i++) passed += gate.Offer(AnIntroduction()).Count;
        Assert.Equal((int)IntroductionGate.Burst, passed);
        Assert.Equal(IntroductionGate.Capacity, gate.Waiting);

        // More of the flood is dropped, not queued ahead of what waits; the client's worked one outbids the flood.
        Assert.Empty(gate.Offer(AnIntroduction()));
        var client = AnIntroduction();
        Assert.Empty(gate.Offer(IntroductionWork.Solve(client, 8, Epoch, CancellationToken.None)));
        Assert.Equal(IntroductionGate.Capacity, gate.Waiting);

        // The next token is the client's.
        time.Advance(TimeSpan.FromSeconds(1 / IntroductionGate.RatePerSecond));
        Assert.Equal(client, Assert.Single(gate.Release()));
    }

    [Fact]
    public void Among_equal_work_the_oldest_passes_first_and_none_waits_past_its_time()
    {
        var time = new FakeTimeProvider(Now);
        var gate = new IntroductionGate(time);
        for (int i = 0; i < IntroductionGate.Burst; i++) gate.Offer(AnIntroduction());
        var first = AnIntroduction();
        var second = AnIntroduction();
        gate.Offer(first);
        time.Advance(TimeSpan.FromMilliseconds(10));
        gate.Offer(second);
        time.Advance(TimeSpan.FromSeconds(1 / IntroductionGate.RatePerSecond));
        Assert.Equal(first, Assert.Single(gate.Release()));

        time.Advance(IntroductionGate.MaxWait);
        Assert.Empty(gate.Release());
        Assert.Equal(0, gate.Waiting);
    }

    [Fact]
    public void A_replay_takes_no_turn()
    {
        var time = new FakeTimeProvider(Now);
        var gate = new IntroductionGate(time);
        var introduction = AnIntroduction();
        Assert.Single(gate.Offer(introduction));
        Assert.Empty(gate.Offer(introduction));
        // With other work on it, it is the same introduction all the same.
        Assert.Empty(gate.Offer(IntroductionWork.Solve(introduction, 4, Epoch, CancellationToken.None)));
        Assert.Equal(2, gate.Dropped);
        // Remembered through the next epoch, forgotten after.
        time.Advance(IntroductionWork.EpochLength);
        Assert.Empty(gate.Offer(introduction));
        time.Advance(IntroductionWork.EpochLength);
        Assert.Single(gate.Offer(introduction));
    }

    [Fact]
    public void What_no_service_could_open_is_dropped()
    {
        var gate = new IntroductionGate(new FakeTimeProvider(Now));
        var otherVersion = AnIntroduction();
        otherVersion[0] = 1;
        Assert.Empty(gate.Offer(otherVersion));
        Assert.Empty(gate.Offer(new byte[50]));
        Assert.Empty(gate.Offer(new byte[1024]));
        Assert.Equal(3, gate.Dropped);
    }
}
