using System.Collections.Concurrent;
using Quid.Crypto;

namespace Quid.Exchange;

/// <summary>Where a partner stands with us, from our own measurements only.</summary>
public enum Verdict
{
    /// <summary>Delivered what it promised, or not measured yet: a newcomer is owed nothing and suspected of nothing.</summary>
    Good,
    /// <summary>Delivered less than promised at the last probes; our grant to it shrinks one order per probe.</summary>
    Underdelivering,
    /// <summary>Kept under-delivering: the agreement ended and it is refused for a while.</summary>
    Shunned,
}

/// <summary>
/// What we know of one partner, kept across agreements and restarts: bytes we carried for it
/// (given) and it carried for us (received), what our probes found it delivers, and our verdict.
/// Byte counters are updated from the data path without locks; the rest is the market's.
/// </summary>
public sealed class PartnerAccount(NodeId partner, DateTimeOffset firstSeen)
{
    private long _bytesGiven;
    private long _bytesReceived;
    private long _bytesDeliveredToUs;

    public NodeId Partner { get; } = partner;
    public DateTimeOffset FirstSeen { get; } = firstSeen;

    /// <summary>Bytes of cells we carried for the partner, both directions.</summary>
    public long BytesGiven => Interlocked.Read(ref _bytesGiven);
    /// <summary>Bytes of cells the partner carried for us, both directions.</summary>
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);
    /// <summary>Bytes of cells the partner sent us on our circuits: what a probe measures.</summary>
    public long BytesDeliveredToUs => Interlocked.Read(ref _bytesDeliveredToUs);

    public void AddGiven(long bytes) => Interlocked.Add(ref _bytesGiven, bytes);
    public void AddReceived(long bytes) => Interlocked.Add(ref _bytesReceived, bytes);

    public void AddDeliveredToUs(long bytes)
    {
        Interlocked.Add(ref _bytesDeliveredToUs, bytes);
        Interlocked.Add(ref _bytesReceived, bytes);
    }

    public Verdict Verdict { get; internal set; }
    public int Failures { get; internal set; }
    /// <summary>The last probe fell short, once: checked again soon before it counts as a failure.</summary>
    public bool Suspected { get; internal set; }
    public DateTimeOffset? ShunnedUntil { get; internal set; }
    /// <summary>What the last probe measured, in kbps.</summary>
    public double? DeliveredKbps { get; internal set; }
    public DateTimeOffset? LastProbe { get; internal set; }
    /// <summary>Whether we ever had an agreement with it: a partner with a past is no newcomer.</summary>
    public bool HasHistory { get; internal set; }

    /// <summary>Shaping of what we carry for it, toward it and away from it, while we grant it anything.</summary>
    public Shaper.Share? Down { get; internal set; }
    public Shaper.Share? Up { get; internal set; }

    /// <summary>Restores what the database remembers.</summary>
    public void Restore(long given, long received, Verdict verdict, int failures, DateTimeOffset? shunnedUntil, double? delivered, DateTimeOffset? lastProbe, bool hasHistory)
    {
        _bytesGiven = given;
        _bytesReceived = received;
        Verdict = verdict;
        Failures = failures;
        ShunnedUntil = shunnedUntil;
        DeliveredKbps = delivered;
        LastProbe = lastProbe;
        HasHistory = hasHistory;
    }
}

/// <summary>Every partner we have had, by id. Thread-safe to look up; bounded by the agreements a node can make.</summary>
public sealed class Ledger(TimeProvider time)
{
    private readonly ConcurrentDictionary<NodeId, PartnerAccount> _accounts = new();

    public PartnerAccount Account(NodeId partner) => _accounts.GetOrAdd(partner, id => new PartnerAccount(id, time.GetUtcNow()));

    public PartnerAccount? Find(NodeId partner) => _accounts.GetValueOrDefault(partner);

    public ICollection<PartnerAccount> Accounts => _accounts.Values;

    public void Add(PartnerAccount account) => _accounts[account.Partner] = account;
}
