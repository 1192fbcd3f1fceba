using System.Text;
using Quid.Wire.Http;

namespace Quid.Tests.Wire;

public class ChunkedBodyReaderTests
{
    private const string Body = "5\r\nhello\r\n7;name=\"quoted value\"\r\n, world\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n";

    /// <summary>Runs the reader over the input split into the given pieces; returns the content, the body's length, and the error if any.</summary>
    private static (string Content, int BodyLength, HttpErrorKind? Error) Read(byte[] input, params int[] splits)
    {
        var reader = new ChunkedBodyReader();
        var content = new List<byte>();
        int at = 0;
        foreach (int end in splits.Append(input.Length))
        {
            while (at < end && !reader.IsDone)
            {
                var run = reader.Read(input.AsSpan(at, end - at));
                // Where a refusal is noticed depends on how the bytes were split; that it is, and what came before, does not.
                if (run.Kind == ChunkedRunKind.Failed) return (Encoding.Latin1.GetString([.. content]), -2, run.Error!.Kind);
                Assert.InRange(run.Length, 0, end - at);
                if (run.Kind == ChunkedRunKind.Data) content.AddRange(input.AsSpan(at, run.Length));
                at += run.Length;
            }
        }
        return (Encoding.Latin1.GetString([.. content]), reader.IsDone ? at : -1, null);
    }

    [Fact]
    public void Chunks_with_extensions_and_trailers_give_the_content_and_the_exact_end()
    {
        byte[] input = Encoding.ASCII.GetBytes(Body + "GET http://next/ HTTP/1.1\r\n");
        Assert.Equal(("hello, world", Body.Length, (HttpErrorKind?)null), Read(input));
    }

    [Fact]
    public void Any_split_gives_the_same_content_and_end()
    {
        byte[] input = Encoding.ASCII.GetBytes(Body);
        for (int split = 0; split <= input.Length; split++)
            Assert.Equal(("hello, world", Body.Length, (HttpErrorKind?)null), Read(input, split));
        Assert.Equal(("hello, world", Body.Length, (HttpErrorKind?)null), Read(input, [.. Enumerable.Range(1, input.Length - 1)]));
    }

    [Fact]
    public void Every_proper_prefix_is_not_done()
    {
        byte[] input = Encoding.ASCII.GetBytes(Body);
        for (int length = 0; length < input.Length; length++)
            Assert.Equal(-1, Read(input[..length]).BodyLength);
    }

    [Fact]
    public void A_large_chunk_size_in_upper_case_hex_with_leading_zeros_is_read()
    {
        string data = new('x', 0x1AB);
        Assert.Equal(data, Read(Encoding.ASCII.GetBytes($"0001AB\r\n{data}\r\n0\r\n\r\n")).Content);
    }

    [Theory]
    [InlineData("5\r\nhelloX\r\n0\r\n\r\n")]        // data longer than its size
    [InlineData("5\r\nhell\r\n0\r\n\r\n")]          // data shorter than its size
    [InlineData("5\nhello\r\n0\r\n\r\n")]           // bare LF after the size
    [InlineData("5\r\nhello\n0\r\n\r\n")]           // bare LF after the data
    [InlineData("\r\nhello\r\n0\r\n\r\n")]          // no size
    [InlineData("g\r\n")]                           // not hex
    [InlineData("-5\r\n")]                          // no sign in a size
    [InlineData("5 x\u0001\r\nhello\r\n")]          // control character in an extension
    [InlineData("0\r\nX: a\u0000\r\n\r\n")]         // control character in a trailer
    [InlineData("0\r\n\r\r\n")]                     // CR without LF at the end
    [InlineData("80000000000000000\r\n")]          // beyond a long
    public void Malformed_framing_is_refused_with_BadChunk(string body) =>
        Assert.Equal(HttpErrorKind.BadChunk, Read(Encoding.Latin1.GetBytes(body)).Error);

    [Fact]
    public void The_largest_size_a_long_holds_is_accepted_as_framing()
    {
        var reader = new ChunkedBodyReader();
        var run = reader.Read("7fffffffffffffff\r\n"u8);
        Assert.Equal((ChunkedRunKind.Framing, 18), (run.Kind, run.Length));
        Assert.Equal(ChunkedRunKind.Data, reader.Read("x"u8).Kind);
    }

    [Fact]
    public void Endless_lines_are_refused_at_their_limit()
    {
        Assert.Equal(HttpErrorKind.BadChunk, Read(Encoding.ASCII.GetBytes("1;" + new string('e', ChunkedBodyReader.MaxLineLength) + "\r\n")).Error);
        Assert.Equal(HttpErrorKind.BadChunk, Read(Encoding.ASCII.GetBytes(new string('0', ChunkedBodyReader.MaxLineLength + 1))).Error);
        string trailers = string.Concat(Enumerable.Repeat("X-Trailer: " + new string('t', 1000) + "\r\n", ChunkedBodyReader.MaxTrailerSize / 1000 + 1));
        Assert.Equal(HttpErrorKind.BadChunk, Read(Encoding.ASCII.GetBytes("0\r\n" + trailers + "\r\n")).Error);
    }

    [Fact]
    public void After_a_refusal_or_the_end_nothing_more_is_consumed()
    {
        var reader = new ChunkedBodyReader();
        Assert.Equal(ChunkedRunKind.Failed, reader.Read("zz"u8).Kind);
        Assert.Equal(ChunkedRunKind.Failed, reader.Read("0\r\n\r\n"u8).Kind);
        var done = new ChunkedBodyReader();
        Assert.Equal(5, done.Read("0\r\n\r\nmore"u8).Length);
        Assert.Equal((ChunkedRunKind.Done, 0), (done.Read("more"u8).Kind, done.Read("more"u8).Length));
    }

    [Theory]
    [InlineData("", false)]
    [InlineData("5", false)]
    [InlineData("5;ext=1\r", false)]
    [InlineData("5\r\n", true)]
    [InlineData("5\r\nhel", true)]
    [InlineData("0\r\n", true)]
    [InlineData("0\r\n\r\n", true)]
    public void The_first_chunk_line_is_known_to_be_read_only_once_it_is_whole(string body, bool read)
    {
        var reader = new ChunkedBodyReader();
        var input = Encoding.ASCII.GetBytes(body).AsSpan();
        for (int at = 0; at < input.Length && !reader.IsDone; at += reader.Read(input[at..]).Length)
        {
        }
        Assert.Equal(read, reader.FirstChunkLineRead);
    }

    [Fact]
    public void Random_bodies_yield_content_only_after_a_whole_chunk_line()
    {
        var random = new Random(12042026);
        for (int i = 0; i < 50_000; i++)
        {
            var input = new byte[random.Next(0, 40)];
            random.NextBytes(input);
            // Mostly hex digits and line ends, so that framing gets far enough to matter.
            for (int b = 0; b < input.Length; b++)
                if (random.Next(3) > 0) input[b] = "0123456789aF\r\n;"u8[random.Next(15)];
            var reader = new ChunkedBodyReader();
            for (int at = 0; at < input.Length && !reader.IsDone;)
            {
                var run = reader.Read(input.AsSpan(at, Math.Min(input.Length - at, 1 + random.Next(8))));
                if (run.Kind == ChunkedRunKind.Failed) break;
                if (run.Kind == ChunkedRunKind.Data || reader.IsDone) Assert.True(reader.FirstChunkLineRead);
                at += run.Length;
            }
        }
    }

    [Fact]
    public void Random_and_mutated_bodies_never_throw_and_agree_however_split()
    {
        var random = new Random(11232026);
        byte[] valid = Encoding.ASCII.GetBytes(Body);
        for (int i = 0; i < 50_000; i++)
        {
            List<byte> bytes = [.. valid];
            for (int m = random.Next(1, 5); m > 0; m--)
                Wire.TestDescriptors.Mutate(random, bytes);
            byte[] input = [.. bytes];
            Assert.Equal(Read(input), Read(input, random.Next(input.Length + 1)));
        }
    }
}
