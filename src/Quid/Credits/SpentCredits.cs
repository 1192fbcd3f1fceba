using System.Buffers.Binary;

namespace Quid.Credits;

/// <summary>
/// The issuer's record of credits spent, by epoch: a credit's input, once here, is refused again.
/// An epoch's set is dropped with it, so it holds at most the credits of the epochs still taken.
/// </summary>
public interface ISpentCredits
{
    bool Contains(ulong epoch, ReadOnlySpan<byte> input);
    /// <summary>Adds every input, all or none (a crash between two must not leave half an exchange spent).</summary>
    void Add(ulong epoch, IReadOnlyList<byte[]> inputs);
    /// <summary>Forgets the epochs before <paramref name="oldest"/>.</summary>
    void DropBefore(ulong oldest);
    long Count { get; }
}

/// <summary>A spent set in memory: tests and the simulator.</summary>
public sealed class MemorySpentCredits : ISpentCredits
{
    private readonly Dictionary<ulong, HashSet<(UInt128, UInt128)>> _epochs = [];

    public long Count => _epochs.Values.Sum(s => (long)s.Count);

    public bool Contains(ulong epoch, ReadOnlySpan<byte> input) => _epochs.TryGetValue(epoch, out var set) && set.Contains(Key(input));

    public void Add(ulong epoch, IReadOnlyList<byte[]> inputs)
    {
        if (!_epochs.TryGetValue(epoch, out var set)) _epochs[epoch] = set = [];
        foreach (var input in inputs) set.Add(Key(input));
    }

    public void DropBefore(ulong oldest)
    {
        foreach (var epoch in _epochs.Keys.Where(e => e < oldest).ToList()) _epochs.Remove(epoch);
    }

    private static (UInt128, UInt128) Key(ReadOnlySpan<byte> input) =>
        (BinaryPrimitives.ReadUInt128BigEndian(input), BinaryPrimitives.ReadUInt128BigEndian(input[16..]));
}
