using System.Text;
using Quid.Proxy.Socks;

namespace Quid.Tests.Proxy;

/// <summary>What a run of the handshake produced, in a form two runs can be compared by.</summary>
internal sealed record SocksTranscript(
    string Replies, SocksStepKind Final, SocksRequest? Request, SocksError? Error, string? Leftover);

/// <summary>Plays the socket adapter: keeps unconsumed bytes, appends each chunk, sends replies.</summary>
internal static class SocksTestDriver
{
    public static byte[] H(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    public static byte[] A(string text) => Encoding.ASCII.GetBytes(text);

    public static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes);

    public static SocksTranscript Run(SocksServerHandshake handshake, params byte[][] chunks)
    {
        var buffer = new List<byte>();
        var replies = new StringBuilder();
        SocksStep step = default;
        for (int i = 0; i < chunks.Length; i++)
        {
            buffer.AddRange(chunks[i]);
            while (true)
            {
                byte[] input = [.. buffer];
                step = handshake.Step(input);
                AssertValid(step, input.Length);
                replies.Append(Hex(step.Reply.Span));
                if (step.Kind == SocksStepKind.Failed)
                    return new SocksTranscript(replies.ToString(), step.Kind, null, step.Error, null);
                buffer.RemoveRange(0, step.Consumed);
                if (step.Kind == SocksStepKind.Finished)
                {
                    // Later chunks are stream data too: the handshake never sees them.
                    byte[] leftover = [.. buffer, .. chunks[(i + 1)..].SelectMany(c => c)];
                    return new SocksTranscript(replies.ToString(), step.Kind, step.Request, null, Hex(leftover));
                }
                if (step.Kind == SocksStepKind.NeedMore)
                    break;
            }
        }
        return new SocksTranscript(replies.ToString(), step.Kind, null, null, Hex([.. buffer]));
    }

    /// <summary>The contract every step must keep, whatever the input.</summary>
    public static void AssertValid(SocksStep step, int inputLength)
    {
        Assert.InRange(step.Consumed, 0, inputLength);
        switch (step.Kind)
        {
            case SocksStepKind.NeedMore:
                Assert.Equal(0, step.Consumed);
                Assert.True(step.Reply.IsEmpty);
                Assert.Null(step.Request);
                Assert.Null(step.Error);
                Assert.True(inputLength < SocksServerHandshake.MaxMessageSize, "NeedMore on a full buffer would deadlock the adapter.");
                break;
            case SocksStepKind.Reply:
                Assert.True(step.Consumed > 0);
                Assert.False(step.Reply.IsEmpty);
                Assert.Null(step.Request);
                Assert.Null(step.Error);
                break;
            case SocksStepKind.Finished:
                Assert.True(step.Consumed > 0);
                Assert.True(step.Reply.IsEmpty);
                Assert.NotNull(step.Request);
                Assert.Null(step.Error);
                break;
            case SocksStepKind.Failed:
                Assert.Equal(0, step.Consumed);
                Assert.Null(step.Request);
                Assert.NotNull(step.Error);
                Assert.True(Enum.IsDefined(step.Error.Kind));
                Assert.False(string.IsNullOrEmpty(step.Error.Message));
                break;
            default:
                Assert.Fail($"Undefined step kind {step.Kind}.");
                break;
        }
    }
}
