using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Quid.Services;

namespace Quid.Bench;

/// <summary>
/// What introduction work costs (PROTOCOL §9.14): an introduction point checks each one with one
/// hash, a client pays about 2^effort of them. The client's efforts are 16 and 20; 12 keeps the
/// run short, and the others scale from it by powers of two.
/// </summary>
[MemoryDiagnoser]
public class IntroductionWorkBenchmarks
{
    private readonly byte[] _introduction = RandomNumberGenerator.GetBytes(Introduction.SealedSize);
    private byte[] _carried = null!;
    private long _epoch;

    [GlobalSetup]
    public void Setup()
    {
        _introduction[0] = Introduction.Version;
        _epoch = IntroductionWork.Epoch(DateTimeOffset.UtcNow);
        _carried = IntroductionWork.Solve(_introduction, 8, _epoch, CancellationToken.None);
    }

    [Benchmark]
    public int Check() => IntroductionWork.TryRead(_carried, _epoch, out _, out int effort) ? effort : -1;

    [Benchmark]
    public byte[] SolveEffort12() => IntroductionWork.Solve(_introduction, 12, _epoch, CancellationToken.None);
}
