using System.Buffers.Binary;
using Quid.Overlay;

namespace Quid.Services;

/// <summary>
/// An introduction point's gate for one service's circuit (PROTOCOL §9.14). Introductions pass at
/// most <see cref="RatePerSecond"/> a second, in bursts of <see cref="Burst"/>; while more come,
/// up to <see cref="Capacity"/> wait, each at most <see cref="MaxWait"/>, and the one with the
/// most work (<see cref="IntroductionWork"/>) goes next, the oldest among equals. A flood costs
/// its sender nothing until it meets clients who pay: then it must pay more than they do. One
/// whose ephemeral key already passed in this epoch or the last is a replay, dropped here so that
/// it takes no one's turn. Sans-IO: the node offers each arrival and releases on each tick, and
/// sends down the circuit what they return (introductions without their work). Not thread-safe.
/// </summary>
public sealed class IntroductionGate(TimeProvider time)
{
    public const double RatePerSecond = 10;
    public const double Burst = 50;
    public const int Capacity = 32;
    /// <summary>Past this a waiting client has likely given up on the meeting (it waits 12 s at its rendezvous node), and the service would build a circuit for nothing.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(5);
    /// <summary>Ephemeral keys remembered per epoch; at the rate above an epoch passes at most 6,050.</summary>
    private const int MaxRemembered = 16_384;

    private readonly TokenBucket _rate = new(RatePerSecond, Burst, time);
    private readonly List<Queued> _waiting = [];
    private HashSet<UInt128> _passed = [];
    private HashSet<UInt128> _passedBefore = [];
    private long _epoch = IntroductionWork.Epoch(time.GetUtcNow());

    private readonly record struct Queued(byte[] Introduction, UInt128 Key, int Effort, DateTimeOffset Arrived);

    /// <summary>Introductions dropped: malformed, replayed, outbid while waiting, or waited too long.</summary>
    public long Dropped { get; private set; }

    /// <summary>Introductions waiting their turn now.</summary>
    public int Waiting => _waiting.Count;

    /// <summary>Takes an introduction as the overlay carried it, and returns those to pass now.</summary>
    public IReadOnlyList<byte[]> Offer(ReadOnlySpan<byte> carried)
    {
        var now = time.GetUtcNow();
        Turn(now);
        if (!IntroductionWork.TryRead(carried, _epoch, out var introduction, out int effort) || !Introduction.HasShape(introduction))
        {
            // Nothing the service could open.
            Dropped++;
            return Release();
        }
        var key = BinaryPrimitives.ReadUInt128LittleEndian(Introduction.ReplayKey(introduction));
        if (_passed.Contains(key) || _passedBefore.Contains(key) || _waiting.Exists(w => w.Key == key))
        {
            Dropped++;
            return Release();
        }
        Expire(now);
        if (_waiting.Count == Capacity)
        {
            int lowest = Lowest();
            // Among equals the newest goes, so that the older ones keep their turn.
            if (_waiting[lowest].Effort >= effort)
            {
                Dropped++;
                return Release();
            }
            _waiting.RemoveAt(lowest);
            Dropped++;
        }
        _waiting.Add(new Queued(introduction.ToArray(), key, effort, now));
        return Release();
    }

    /// <summary>Returns the waiting introductions whose turn has come, most work first; called on every tick.</summary>
    public IReadOnlyList<byte[]> Release()
    {
        var now = time.GetUtcNow();
        Turn(now);
        Expire(now);
        List<byte[]>? passing = null;
        while (_waiting.Count > 0 && _rate.TryTake())
        {
            int next = Highest();
            var waiting = _waiting[next];
            _waiting.RemoveAt(next);
            if (_passed.Count < MaxRemembered) _passed.Add(waiting.Key);
            (passing ??= []).Add(waiting.Introduction);
        }
        return passing ?? (IReadOnlyList<byte[]>)[];
    }

    /// <summary>A new epoch: what passed two epochs ago is forgotten (its work, if any, no longer counts).</summary>
    private void Turn(DateTimeOffset now)
    {
        long epoch = IntroductionWork.Epoch(now);
        if (epoch == _epoch) return;
        _passedBefore = epoch == _epoch + 1 ? _passed : [];
        _passed = [];
        _epoch = epoch;
    }

    private void Expire(DateTimeOffset now) => Dropped += _waiting.RemoveAll(w => now - w.Arrived > MaxWait);

    /// <summary>The waiting one to drop first: least work, newest among equals.</summary>
    private int Lowest()
    {
        int lowest = 0;
        for (int i = 1; i < _waiting.Count; i++)
            if (_waiting[i].Effort < _waiting[lowest].Effort || (_waiting[i].Effort == _waiting[lowest].Effort && _waiting[i].Arrived >= _waiting[lowest].Arrived))
                lowest = i;
        return lowest;
    }

    /// <summary>The waiting one to pass first: most work, oldest among equals.</summary>
    private int Highest()
    {
        int highest = 0;
        for (int i = 1; i < _waiting.Count; i++)
            if (_waiting[i].Effort > _waiting[highest].Effort || (_waiting[i].Effort == _waiting[highest].Effort && _waiting[i].Arrived < _waiting[highest].Arrived))
                highest = i;
        return highest;
    }
}
