using System.Security.Cryptography;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Tests.Wire;

/// <summary>
/// The bodies of the introduction-point and lookup relay messages (PROTOCOL §9.13.1): what each
/// holds, and that truncated, longer and random input is a <see cref="WireException"/> and nothing else.
/// </summary>
public sealed class IntroductionBodyTests
{
    private static ServiceRecord Record()
    {
        using var keys = KeyBlinding.KeyPair.FromSeed(Enumerable.Repeat((byte)9, 32).ToArray(), 20_000, 1440);
        var now = DateTimeOffset.UtcNow;
        return ServiceRecord.Create(keys, 20_000, 1440, now, now.AddHours(1), RandomNumberGenerator.GetBytes(61));
    }

    [Fact]
    public void A_lookup_carries_its_id_and_an_introduction_of_1_to_1024_bytes()
    {
        var id = RandomNumberGenerator.GetBytes(ServiceRecord.LookupIdSize);
        var introduction = RandomNumberGenerator.GetBytes(121);
        var data = new byte[ServiceLookupBody.MaxSize];
        int length = new ServiceLookupBody(id, introduction).Write(data);

        var read = ServiceLookupBody.Read(data.AsSpan(0, length));

        Assert.Equal(id, read.LookupId);
        Assert.Equal(introduction, read.Introduction);
        for (int shorter = 0; shorter <= ServiceRecord.LookupIdSize; shorter++)
            Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => ServiceLookupBody.Read(data.AsSpan(0, shorter))).Error);
        Assert.Equal(WireError.Oversized, Assert.Throws<WireException>(() => ServiceLookupBody.Read(new byte[ServiceLookupBody.MaxSize + 1])).Error);
        Assert.Throws<ArgumentException>(() => new ServiceLookupBody(id, []).Write(data));
        Assert.Throws<ArgumentException>(() => new ServiceLookupBody(id, new byte[LookupMessage.MaxIntroductionSize + 1]).Write(new byte[2048]));
    }

    [Fact]
    public void A_lookups_answer_is_a_status_and_for_a_found_one_the_record_exactly()
    {
        var record = Record();
        var found = new ServiceLookupAnsweredBody(LookupStatus.Found, record).ToBytes();
        Assert.Equal(record.Encoded, ServiceLookupAnsweredBody.Read(found).Record!.Encoded);
        Assert.Null(ServiceLookupAnsweredBody.Read([(byte)LookupStatus.NotFound]).Record);
        Assert.Equal(LookupStatus.Refused, ServiceLookupAnsweredBody.Read([(byte)LookupStatus.Refused]).Status);

        Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => ServiceLookupAnsweredBody.Read([])).Error);
        for (int shorter = 1; shorter < found.Length; shorter += 7)
            Assert.Throws<WireException>(() => ServiceLookupAnsweredBody.Read(found.AsSpan(0, shorter)));
        Assert.Throws<WireException>(() => ServiceLookupAnsweredBody.Read([.. found, 0]));
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ServiceLookupAnsweredBody.Read([(byte)LookupStatus.NotFound, 0])).Error);
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ServiceLookupAnsweredBody.Read([9])).Error);
    }

    [Fact]
    public void An_introduction_points_answer_is_one_known_status_and_an_introduction_1_to_1024_bytes()
    {
        Assert.Equal(IntroductionStatus.Refused, IntroductionEstablishedBody.Read([(byte)IntroductionStatus.Refused]));
        Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => IntroductionEstablishedBody.Read([])).Error);
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => IntroductionEstablishedBody.Read([0, 0])).Error);
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => IntroductionEstablishedBody.Read([3])).Error);
        Assert.Equal(121, IntroductionBody.Read(new byte[121]).Length);
        Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => IntroductionBody.Read([])).Error);
        Assert.Equal(WireError.Oversized, Assert.Throws<WireException>(() => IntroductionBody.Read(new byte[LookupMessage.MaxIntroductionSize + 1])).Error);
    }

    [Fact]
    public void Random_bytes_are_a_body_or_a_WireException_and_nothing_else()
    {
        var random = new Random(19);
        var found = new ServiceLookupAnsweredBody(LookupStatus.Found, Record()).ToBytes();
        for (int i = 0; i < 5_000; i++)
        {
            var data = new byte[random.Next(i % 10 == 0 ? RelayCell.MaxData + 1 : 400)];
            random.NextBytes(data);
            // Some keep a found answer's head, so the record's reader is reached too.
            if (i % 3 == 0) found.AsSpan(0, Math.Min(found.Length, data.Length / 2)).CopyTo(data);
            foreach (var read in new Action<byte[]>[] { d => ServiceLookupBody.Read(d), d => ServiceLookupAnsweredBody.Read(d), d => IntroductionEstablishedBody.Read(d), d => IntroductionBody.Read(d) })
            {
                try
                {
                    read(data);
                }
                catch (WireException)
                {
                }
            }
        }
    }
}
