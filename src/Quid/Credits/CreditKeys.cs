using System.Buffers.Binary;
using Quid.Crypto;

namespace Quid.Credits;

/// <summary>
/// An issuer's VOPRF keys, one per epoch and denomination, derived from one secret seed (RFC 9497
/// DeriveKeyPair), so that nothing but the seed is stored and an epoch's keys are gone from memory
/// once it has passed. A key per denomination binds a credit's value to the key that made it.
/// </summary>
public sealed class CreditKeys(byte[] seed) : IDisposable
{
    private static readonly byte[] InfoLabel = "quid credit key v1"u8.ToArray();
    private readonly Dictionary<(ulong Epoch, byte Order), (byte[] Secret, byte[] Public)> _keys = [];
    private readonly Lock _lock = new();

    public (byte[] Secret, byte[] Public) For(ulong epoch, byte order)
    {
        lock (_lock)
        {
            if (_keys.TryGetValue((epoch, order), out var pair)) return pair;
            Span<byte> info = stackalloc byte[InfoLabel.Length + 9];
            InfoLabel.CopyTo(info);
            BinaryPrimitives.WriteUInt64BigEndian(info[InfoLabel.Length..], epoch);
            info[^1] = order;
            var secret = new byte[Voprf.ScalarSize];
            var pub = new byte[Voprf.ElementSize];
            Voprf.DeriveKeyPair(seed, info, secret, pub);
            _keys[(epoch, order)] = (secret, pub);
            return (secret, pub);
        }
    }

    /// <summary>Forgets the keys of epochs before <paramref name="oldest"/>.</summary>
    public void DropBefore(ulong oldest)
    {
        lock (_lock)
        {
            foreach (var key in _keys.Keys.Where(k => k.Epoch < oldest).ToList())
            {
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(_keys[key].Secret);
                _keys.Remove(key);
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var (secret, _) in _keys.Values) System.Security.Cryptography.CryptographicOperations.ZeroMemory(secret);
            _keys.Clear();
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(seed);
        }
    }
}
