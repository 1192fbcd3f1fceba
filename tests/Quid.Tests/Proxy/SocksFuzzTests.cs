using Quid.Proxy.Socks;
using static Quid.Tests.Proxy.SocksTestDriver;

namespace Quid.Tests.Proxy;

/// <summary>
/// Hostile input: whatever arrives, Step must return a well-formed action, never throw, and never
/// ask for more once a full buffer is held. Seeded so a failure reproduces.
/// </summary>
public class SocksFuzzTests
{
    private static readonly (bool NoAuth, bool UserPass)[] Configs = [(true, true), (true, false), (false, true)];

    // Valid openings, so random bytes also reach the sub-negotiation and request parsers.
    private static readonly byte[][] Openings = [[], H("05 01 00"), H("05 01 02"), H("05 01 02 01 01 61 00"), H("04 01 00 50 00 00 00 01")];

    [Fact]
    public void RandomBytesNeverBreakTheContract()
    {
        var random = new Random(20240601);
        for (int i = 0; i < 200_000; i++)
        {
            byte[] noise = new byte[random.Next(0, 16) == 0 ? random.Next(0, 700) : random.Next(0, 24)];
            random.NextBytes(noise);
            if (noise.Length > 0 && random.Next(2) == 0)
                noise[0] = (byte)(random.Next(2) == 0 ? 4 : 5);
            byte[] input = [.. Openings[random.Next(Openings.Length)], .. noise];
            Check(random, input);
        }
    }

    [Fact]
    public void MutatedValidMessagesNeverBreakTheContract()
    {
        var random = new Random(7);
        SocksConversation[] conversations = [.. SocksConversations.All.Values];
        for (int i = 0; i < 100_000; i++)
        {
            List<byte> bytes = [.. conversations[random.Next(conversations.Length)].AllBytes];
            for (int m = random.Next(1, 5); m > 0; m--)
                Mutate(random, bytes);
            Check(random, [.. bytes]);
        }
    }

    /// <summary>Runs the input whole and split at a random point: both must keep the contract and agree.</summary>
    private static void Check(Random random, byte[] input)
    {
        var (noAuth, userPass) = Configs[random.Next(Configs.Length)];
        SocksTranscript whole = Run(new SocksServerHandshake(noAuth, userPass), input);
        int split = random.Next(input.Length + 1);
        SocksTranscript halves = Run(new SocksServerHandshake(noAuth, userPass), input[..split], input[split..]);
        Assert.Equal(whole, halves);
    }

    private static void Mutate(Random random, List<byte> bytes)
    {
        int at = random.Next(bytes.Count + 1);
        switch (random.Next(6))
        {
            case 0 when at < bytes.Count:
                bytes[at] ^= (byte)(1 << random.Next(8));
                break;
            case 1 when at < bytes.Count:
                bytes[at] = (byte)random.Next(256);
                break;
            case 2:
                bytes.Insert(at, (byte)random.Next(256));
                break;
            case 3 when at < bytes.Count:
                bytes.RemoveAt(at);
                break;
            case 4:
                bytes.RemoveRange(at, bytes.Count - at);
                break;
            default:
                bytes.AddRange(Enumerable.Range(0, random.Next(1, 300)).Select(_ => (byte)random.Next(256)));
                break;
        }
    }
}
