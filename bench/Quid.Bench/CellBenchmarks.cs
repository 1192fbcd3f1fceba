using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Quid.Crypto;
using Quid.Proxy.Socks;
using Quid.Wire;

namespace Quid.Bench;

/// <summary>
/// The per-cell work on the relay path: one hop's onion layer (what a relay does to every cell it
/// passes on, and the client once per hop), the relay message codec, and the SOCKS handshake
/// parse that starts every stream. Allocations are reported per operation: the relay path's
/// target is none.
/// </summary>
[MemoryDiagnoser]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "BenchmarkDotNet needs an unsealed class; GlobalCleanup disposes.")]
public class CellBenchmarks
{
    private readonly byte[] _body = new byte[Cell.BodySize];
    private readonly byte[] _data = new byte[RelayCell.MaxData];
    private OnionLayer _client = null!;
    private OnionLayer _hop = null!;
    private static readonly byte[] CurlConnect = [5, 1, 0, 3, 11, .. "example.org"u8, 0, 80];

    [GlobalSetup]
    public void Setup()
    {
        var keys = RandomNumberGenerator.GetBytes(OnionLayer.KeyMaterialSize);
        _client = new OnionLayer(keys);
        _hop = new OnionLayer(keys);
        new Random(1).NextBytes(_body);
    }

    /// <summary>A relay's work per cell toward the client: seal one layer (the client opens it).</summary>
    [Benchmark]
    public bool SealAndOpenOneLayer()
    {
        _hop.SealBackward(_body);
        return _client.OpenBackward(_body);
    }

    [Benchmark]
    public int RelayMessageWriteAndRead()
    {
        RelayCell.Write(_body, RelayCommand.Data, 7, _data);
        return RelayCell.Read(_body.AsSpan(0, RelayCell.MessageSize)).Data.Length;
    }

    [Benchmark]
#pragma warning disable CA1822 // BenchmarkDotNet runs instance methods
    public SocksStepKind SocksHandshake()
    {
        var handshake = new SocksServerHandshake();
        handshake.Step([5, 1, 0]);
        return handshake.Step(CurlConnect).Kind;
    }
#pragma warning restore CA1822

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Dispose();
        _hop.Dispose();
    }
}
