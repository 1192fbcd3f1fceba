using Quid.Wire;

namespace Quid.Tests.Credits;

public sealed class DeskCodecTests
{
    private static byte[] Bytes(int start, int count) => [.. Enumerable.Range(start, count).Select(i => (byte)i)];

    private static readonly DeskMessage[] Samples =
    [
        new DeskExchange(2917, [new CreditToken(3, Bytes(1, 32), Bytes(2, 64))], [new BlindedCredit(2, Bytes(3, 32)), new BlindedCredit(2, Bytes(4, 32))]),
        new DeskExchanged(new CreditEvaluation([new CreditProof(2, Bytes(5, 32), Bytes(6, 64)), new CreditProof(4, Bytes(7, 32), Bytes(8, 64))], [Bytes(9, 32)])),
        new DeskRefused(CreditRefusal.Spent, "A credit offered was spent before."),
        new DeskPut(Bytes(10, 16), 50 << 20, 7, Bytes(11, 32), [new EpochCredit(2917, new CreditToken(5, Bytes(12, 32), Bytes(13, 64))), new EpochCredit(2918, new CreditToken(0, Bytes(14, 32), Bytes(15, 64)))]),
        new DeskReady(),
        new DeskStored(1_800_000_000),
        new DeskGet(Bytes(16, 16)),
        new DeskData(DeskCodec.MaxObjectSize),
        new DeskAudit(Bytes(17, 16), Bytes(18, 32)),
        new DeskAudited(Bytes(19, 32), 1_800_000_000),
        new DeskRenew(Bytes(20, 16), DeskCodec.MaxDays, []),
        new DeskRemove(Bytes(21, 16), Bytes(22, 32)),
        new DeskDeploy(DeskCodec.MaxModuleSize, 3, Bytes(23, 32), [new EpochCredit(2917, new CreditToken(4, Bytes(24, 32), Bytes(25, 64)))]),
        new DeskProgram(Bytes(26, 16), ProgramState.Paused, 1UL << 30, 1 << 16, 4096, 1_800_000_000, Bytes(27, 32), true),
        new DeskTopup(Bytes(28, 16), [new EpochCredit(2917, new CreditToken(0, Bytes(29, 32), Bytes(30, 64)))]),
        new DeskQuery(Bytes(31, 16)),
        new DeskStop(Bytes(32, 16), Bytes(33, 32)),
    ];

    [Fact]
    public void EachMessageRoundTrips()
    {
        foreach (var message in Samples)
        {
            var frame = DeskCodec.Encode(message);
            Assert.Equal(frame.Length - DeskCodec.LengthSize, DeskCodec.ReadLength(frame));
            var again = DeskCodec.Encode(DeskCodec.Decode(frame.AsSpan(DeskCodec.LengthSize)));
            Assert.Equal(frame, again);
        }
    }

    [Fact]
    public void TruncatedOversizedAndUnorderedFramesAreRefused()
    {
        foreach (var message in Samples)
        {
            var body = DeskCodec.Encode(message).AsSpan(DeskCodec.LengthSize).ToArray();
            for (int cut = 0; cut < body.Length; cut++)
                Assert.Throws<WireException>(() => DeskCodec.Decode(body.AsSpan(0, cut)));
            Assert.Throws<WireException>(() => DeskCodec.Decode([.. body, 0]));
        }
        Assert.Equal(WireError.Oversized, Assert.Throws<WireException>(() => DeskCodec.ReadLength([0xFF, 0xFF])).Error);
        Assert.Throws<WireException>(() => DeskCodec.ReadLength([0, 0]));
        // Proofs come smallest denomination first, each once.
        var unordered = new DeskExchanged(new CreditEvaluation([new CreditProof(4, Bytes(5, 32), Bytes(6, 64)), new CreditProof(2, Bytes(7, 32), Bytes(8, 64))], []));
        Assert.Throws<WireException>(() => DeskCodec.Decode(DeskCodec.Encode(unordered).AsSpan(DeskCodec.LengthSize)));
        // Over 64 credits, or a denomination over 2^30, never leaves a sender.
        Assert.Throws<ArgumentException>(() => DeskCodec.Encode(new DeskExchange(1, [], [.. Enumerable.Repeat(new BlindedCredit(0, Bytes(0, 32)), 65)])));
        Assert.Throws<ArgumentException>(() => DeskCodec.Encode(new DeskExchange(1, [], [new BlindedCredit(31, Bytes(0, 32))])));
        // An object over 64 GiB, or kept 0 or more than a year of days, neither.
        Assert.Throws<ArgumentException>(() => DeskCodec.Encode(new DeskPut(Bytes(0, 16), DeskCodec.MaxObjectSize + 1, 1, Bytes(0, 32), [])));
        Assert.Throws<ArgumentException>(() => DeskCodec.Encode(new DeskRenew(Bytes(0, 16), 0, [])));
        Assert.Throws<ArgumentException>(() => DeskCodec.Encode(new DeskDeploy(DeskCodec.MaxModuleSize + 1, 0, Bytes(0, 32), [])));
        var program = DeskCodec.Encode(new DeskProgram(Bytes(0, 16), ProgramState.Running, 1, 1, 1, 0, Bytes(0, 32), false));
        program[DeskCodec.LengthSize + 1 + 16] = 9;
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => DeskCodec.Decode(program.AsSpan(DeskCodec.LengthSize))).Error);
        program[DeskCodec.LengthSize + 1 + 16] = 1;
        program[^1] = 2;
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => DeskCodec.Decode(program.AsSpan(DeskCodec.LengthSize))).Error);
        var put = DeskCodec.Encode(new DeskPut(Bytes(0, 16), 1, 1, Bytes(0, 32), []));
        put[DeskCodec.LengthSize + 1 + 16 + 8] = 0;
        put[DeskCodec.LengthSize + 1 + 16 + 9] = 0;
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => DeskCodec.Decode(put.AsSpan(DeskCodec.LengthSize))).Error);
    }

    [Fact]
    public void ALongRefusalIsCutBetweenCharacters()
    {
        var frame = DeskCodec.Encode(new DeskRefused(CreditRefusal.Invalid, new string('é', 1000)));
        var refused = Assert.IsType<DeskRefused>(DeskCodec.Decode(frame.AsSpan(DeskCodec.LengthSize)));
        Assert.Equal(DeskMessage.MaxTextSize / 2, refused.Text.Length);
    }

    [Fact]
    public void RandomBytesNeverThrowAnythingButAWireException()
    {
        var random = new Random(7);
        foreach (var message in Samples)
        {
            var body = DeskCodec.Encode(message).AsSpan(DeskCodec.LengthSize).ToArray();
            for (int i = 0; i < 2000; i++)
            {
                var bytes = (byte[])body.Clone();
                for (int flips = random.Next(1, 4); flips > 0; flips--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                try
                {
                    DeskCodec.Decode(bytes.AsSpan(0, random.Next(bytes.Length + 1)));
                }
                catch (WireException)
                {
                    // Refused: fine.
                }
            }
        }
    }
}
