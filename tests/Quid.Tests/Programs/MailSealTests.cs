using System.Security.Cryptography;
using Quid.Programs;

namespace Quid.Tests.Programs;

/// <summary>Mail sealed to a mailbox owner's key and padded to a size class; what is not sealed to the key, or was changed, is refused as such.</summary>
public sealed class MailSealTests
{
    [Fact]
    public void Mail_opens_only_with_its_key_and_its_length_shows_only_a_size_class()
    {
        var (privateKey, publicKey) = MailSeal.NewKey();
        foreach (int length in new[] { 0, 1, 1020, 1021, 4000, 16_000, MailSeal.MaxMessage })
        {
            var message = RandomNumberGenerator.GetBytes(length);
            var sealedMessage = MailSeal.Seal(publicKey, message);
            Assert.Contains(sealedMessage.Length - MailSeal.Overhead, MailSeal.Sizes.ToArray());
            Assert.Equal(message, MailSeal.Open(privateKey, sealedMessage));
        }
        // Two letters of different lengths in one class cannot be told apart by size.
        Assert.Equal(MailSeal.Seal(publicKey, new byte[10]).Length, MailSeal.Seal(publicKey, new byte[1000]).Length);
        Assert.Throws<ArgumentException>(() => MailSeal.Seal(publicKey, new byte[MailSeal.MaxMessage + 1]));
        // The largest still fits a FORWARD to the longest address.
        Assert.True(Remailer.Forward(new byte[64], MailSeal.Seal(publicKey, new byte[MailSeal.MaxMessage])).Length <= HostedProgram.MaxMessage);
    }

    [Fact]
    public void Another_key_a_changed_byte_a_cut_or_random_bytes_are_refused_as_crypto_errors()
    {
        var (privateKey, publicKey) = MailSeal.NewKey();
        var (otherKey, _) = MailSeal.NewKey();
        var sealedMessage = MailSeal.Seal(publicKey, "meet at noon"u8);
        Assert.ThrowsAny<CryptographicException>(() => MailSeal.Open(otherKey, sealedMessage));
        foreach (int at in new[] { 0, 31, 32, 100, sealedMessage.Length - 1 })
        {
            var changed = sealedMessage.ToArray();
            changed[at] ^= 1;
            Assert.ThrowsAny<CryptographicException>(() => MailSeal.Open(privateKey, changed));
        }
        for (int cut = 0; cut < sealedMessage.Length; cut += 97)
            Assert.ThrowsAny<CryptographicException>(() => MailSeal.Open(privateKey, sealedMessage.AsSpan(0, cut)));
        var random = new Random(45);
        for (int i = 0; i < 300; i++)
        {
            var bytes = new byte[random.Next(0, 2000)];
            random.NextBytes(bytes);
            Assert.ThrowsAny<CryptographicException>(() => MailSeal.Open(privateKey, bytes));
        }
    }
}
