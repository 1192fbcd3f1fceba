using BenchmarkDotNet.Attributes;
using Quid.Crypto;
using Quid.Crypto.Noise;
using Quid.Links;
using Quid.Wire;

namespace Quid.Bench;

/// <summary>
/// The link's per-frame cost: sealing 31 cells into one frame and opening it again, the work
/// every hop does for every 62 KiB it carries. Reported per frame; bytes/s = 63,488 / time.
/// </summary>
[MemoryDiagnoser]
public class LinkFramingBenchmarks
{
    private LinkCipher _send = null!;
    private LinkCipher _receive = null!;
    private readonly byte[] _cells = new byte[LinkFraming.MaxCellsPerFrame * Cell.Size];
    private readonly byte[] _frame = new byte[LinkFraming.MaxFrameSize];
    private readonly byte[] _opened = new byte[LinkFraming.MaxCellsPerFrame * Cell.Size];

    [GlobalSetup]
    public void Setup()
    {
        using var a = NodeIdentity.Generate(out _);
        using var b = NodeIdentity.Generate(out _);
        using var initiator = LinkHandshake.Initiate(a);
        using var responder = LinkHandshake.Respond(b);
        var message = initiator.Start();
        while (!initiator.IsComplete || !responder.IsComplete)
        {
            message = responder.Receive(message, out _);
            if (message.Length > 0) message = initiator.Receive(message, out _);
        }
        (_send, _) = initiator.Split();
        (_, _receive) = responder.Split();
        new Random(1).NextBytes(_cells);
    }

    [Benchmark]
    public int SealAndOpenFrame()
    {
        int length = LinkFraming.Encode(_send, _cells, _frame);
        LinkFraming.Decode(_receive, _frame.AsSpan(0, length), _opened, out _, out int cellBytes);
        return cellBytes;
    }
}
