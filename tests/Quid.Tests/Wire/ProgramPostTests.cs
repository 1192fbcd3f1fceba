using Quid.Wire;

namespace Quid.Tests.Wire;

/// <summary>Frames on a program's stream (PROTOCOL §11.3): posts and answers round-trip; truncated, oversized and random ones are refused as such.</summary>
public sealed class ProgramPostTests
{
    private static readonly EpochCredit Postage = new(2917, new CreditToken(2, [.. Enumerable.Repeat((byte)1, CreditCodec.InputSize)], [.. Enumerable.Repeat((byte)2, CreditCodec.OutputSize)]));

    [Fact]
    public async Task Posts_and_answers_round_trip_through_a_stream()
    {
        var stream = new MemoryStream();
        stream.Write(ProgramPostCodec.Encode(new ProgramPost([Postage], "hello"u8.ToArray())));
        stream.Write(ProgramPostCodec.Encode(new ProgramAnswer(ProgramAnswerKind.Refused, "paused"u8.ToArray())));
        stream.Position = 0;
        var post = ProgramPostCodec.DecodePost((await ProgramPostCodec.ReadFrameAsync(stream, CancellationToken.None))!);
        var paid = Assert.Single(post.Payment);
        Assert.Equal((Postage.Epoch, Postage.Token.Order), (paid.Epoch, paid.Token.Order));
        Assert.Equal(Postage.Token.Output, paid.Token.Output);
        Assert.Equal("hello"u8.ToArray(), post.Message);
        var answer = ProgramPostCodec.DecodeAnswer((await ProgramPostCodec.ReadFrameAsync(stream, CancellationToken.None))!);
        Assert.Equal(ProgramAnswerKind.Refused, answer.Kind);
        Assert.Null(await ProgramPostCodec.ReadFrameAsync(stream, CancellationToken.None));
    }

    [Fact]
    public async Task Truncated_oversized_and_random_frames_are_refused_as_such()
    {
        var frame = ProgramPostCodec.Encode(new ProgramPost([Postage], "hello"u8.ToArray()));
        for (int cut = 1; cut < frame.Length; cut++)
            Assert.Equal(WireError.Truncated, (await Assert.ThrowsAsync<WireException>(() => ProgramPostCodec.ReadFrameAsync(new MemoryStream(frame[..cut]), CancellationToken.None))).Error);
        byte[] huge = [0, 0x10, 0, 0];
        Assert.Equal(WireError.Oversized, (await Assert.ThrowsAsync<WireException>(() => ProgramPostCodec.ReadFrameAsync(new MemoryStream(huge), CancellationToken.None))).Error);
        // A post's body without a message, or with one over 64 KiB.
        Assert.Throws<WireException>(() => ProgramPostCodec.DecodePost(frame.AsSpan(ProgramPostCodec.LengthSize, frame.Length - ProgramPostCodec.LengthSize - 5)));
        Assert.Throws<WireException>(() => ProgramPostCodec.DecodePost([0, .. new byte[ProgramPostCodec.MaxMessage + 1]]));
        Assert.Throws<ArgumentException>(() => ProgramPostCodec.Encode(new ProgramPost([], [])));
        Assert.Throws<WireException>(() => ProgramPostCodec.DecodeAnswer([]));
        Assert.Throws<WireException>(() => ProgramPostCodec.DecodeAnswer([9]));
        var random = new Random(22);
        for (int i = 0; i < 5000; i++)
        {
            var body = new byte[random.Next(0, 400)];
            random.NextBytes(body);
            try
            {
                var post = ProgramPostCodec.DecodePost(body);
                Assert.Equal(body, ProgramPostCodec.Encode(post)[ProgramPostCodec.LengthSize..]);
            }
            catch (WireException)
            {
                // Refused, as it should be.
            }
            try
            {
                ProgramPostCodec.DecodeAnswer(body);
            }
            catch (WireException)
            {
                // Refused, as it should be.
            }
        }
    }
}
