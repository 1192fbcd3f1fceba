using NSec.Cryptography;
using Quid.Crypto;
using Quid.Services;

namespace Quid.Tests.Services;

/// <summary>
/// Session addresses and service secrets as text: the layout (checked against values computed by
/// an independent Python reference, Vectors/session_addresses.py), round trips, and every way a
/// typed or pasted name can be wrong, each reported as a <see cref="SessionAddressException"/>.
/// </summary>
public sealed class SessionAddressTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex);

    // arti's key_blinding_testvec identity key; its address computed by the Python reference.
    private static readonly byte[] VectorKey = Hex("833990B085C1A688C1D4C8B1F6B56AFAF5A2ECA674449E1D704F83765CCB7BC6");
    private const string VectorAddress = "qm4zbmefygtirqouzcy7nnlk7l22f3fgorcj4hlqj6bxmxglppddepib.quid";
    // The secret 00 01 02 … 1f in its text form, from the same script.
    private const string VectorSecret = "quid-secret-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyp2m3ab";

    private static SessionAddress NewAddress()
    {
        using var key = Key.Create(SignatureAlgorithm.Ed25519);
        return new SessionAddress(key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    private static SessionAddressError ErrorOf(string text) => Assert.Throws<SessionAddressException>(() => SessionAddress.Parse(text)).Error;

    private static SessionAddressError SecretErrorOf(string text) => Assert.Throws<SessionAddressException>(() => ServiceSecret.Parse(text)).Error;

    /// <summary>base32(key | SHA3-256(label | key | version)[:2] | version), the layout of both text forms, for versions this node would refuse.</summary>
    private static string Encode(string label, ReadOnlySpan<byte> key, byte version)
    {
        var bytes = new byte[key.Length + 3];
        key.CopyTo(bytes);
        var hash = System.Security.Cryptography.SHA3_256.HashData([.. System.Text.Encoding.ASCII.GetBytes(label), .. key, version]);
        bytes[^3] = hash[0];
        bytes[^2] = hash[1];
        bytes[^1] = version;
        return Base32.Encode(bytes);
    }

    [Fact]
    public void An_address_is_the_key_its_checksum_and_version_in_base32()
    {
        var address = new SessionAddress(VectorKey);
        Assert.Equal(VectorAddress, address.ToString());
        Assert.Equal(SessionAddress.EncodedLength + SessionAddress.Suffix.Length, VectorAddress.Length);
        Assert.Equal(VectorKey, SessionAddress.Parse(VectorAddress).PublicKey.ToArray());
    }

    [Fact]
    public void Addresses_round_trip_in_any_case_with_a_trailing_dot_and_under_subdomains()
    {
        for (int n = 0; n < 50; n++)
        {
            var address = NewAddress();
            var text = address.ToString();
            Assert.Equal(text, text.ToLowerInvariant());
            Assert.EndsWith(".quid", text);
            Assert.Equal(address, SessionAddress.Parse(text));
            Assert.Equal(address, SessionAddress.Parse(text.ToUpperInvariant()));
            Assert.Equal(address, SessionAddress.Parse(text + "."));
            Assert.Equal(address, SessionAddress.Parse("www." + text));
            Assert.Equal(address, SessionAddress.Parse("a.b-c.www." + text.ToUpperInvariant() + "."));
            Assert.True(SessionAddress.TryParse(text, out var parsed));
            Assert.Equal(address, parsed);
        }
    }

    [Fact]
    public void Equality_is_by_key()
    {
        var a = new SessionAddress(VectorKey);
        var same = SessionAddress.Parse(VectorAddress.ToUpperInvariant());
        var other = NewAddress();
        Assert.True(a == same);
        Assert.False(a != same);
        Assert.Equal(a.GetHashCode(), same.GetHashCode());
        Assert.True(a.Equals((object)same));
        Assert.NotEqual(a, other);
        Assert.True(a != other);
        Assert.False(a == null);
        Assert.False(a.Equals(null));
    }

    [Theory]
    [InlineData("")]
    [InlineData("example.com")]
    [InlineData("quid")]
    [InlineData(".onion")]
    [InlineData("qm4zbmefygtirqouzcy7nnlk7l22f3fgorcj4hlqj6bxmxglppddepib")]
    [InlineData("qm4zbmefygtirqouzcy7nnlk7l22f3fgorcj4hlqj6bxmxglppddepib.quid..")]
    [InlineData("qm4zbmefygtirqouzcy7nnlk7l22f3fgorcj4hlqj6bxmxglppddepib.onion")]
    [InlineData("qm4zbmefygtirqouzcy7nnlk7l22f3fgorcj4hlqj6bxmxglppddepib.qu\u0131d")]
    public void A_name_not_ending_in_quid_is_refused(string text) => Assert.Equal(SessionAddressError.Suffix, ErrorOf(text));

    [Theory]
    [InlineData(".quid")]
    [InlineData("abc.quid")]
    [InlineData("qm4zbmefygtirqouzcy7nnlk7l22f3fgorcj4hlqj6bxmxglppddepi.quid")]
    [InlineData("qm4zbmefygtirqouzcy7nnlk7l22f3fgorcj4hlqj6bxmxglppddepibb.quid")]
    [InlineData("qm4zbmefygtirqouzcy7nnlk7l22f3fgorcj4hlqj6bxmxglppddepibqm4zbmefygtirqouzcy7nnlk7l22f3fgorcj4hlqj6bxmxglppddepib.quid")]
    [InlineData("qm4zbmefygtirqouzcy7nnlk7l22f3fgo.rcj4hlqj6bxmxglppddepib.quid")]
    public void A_truncated_or_oversized_address_is_refused(string text) => Assert.Equal(SessionAddressError.Length, ErrorOf(text));

    [Fact]
    public void A_character_outside_base32_is_refused_wherever_it_is()
    {
        var random = new Random(1);
        foreach (char bad in "01890!-_ é+=/ \0ı")
        {
            var chars = VectorAddress.ToCharArray();
            chars[random.Next(SessionAddress.EncodedLength)] = bad;
            Assert.Equal(SessionAddressError.Character, ErrorOf(new string(chars)));
        }
    }

    [Fact]
    public void An_unknown_version_is_refused_before_its_checksum_is_judged()
    {
        foreach (byte version in new byte[] { 0, 2, 3, 255 })
        {
            Assert.Equal(SessionAddressError.Version, ErrorOf(Encode(".quid checksum", VectorKey, version) + ".quid"));
            // A Tor v3 onion address moved under .quid: version 3, and a checksum over another label.
            Assert.Equal(SessionAddressError.Version, ErrorOf(Encode(".onion checksum", VectorKey, 3) + ".quid"));
        }
    }

    [Fact]
    public void A_mistyped_character_fails_the_checksum()
    {
        Assert.Equal(VectorAddress[..^5], Encode(".quid checksum", VectorKey, 1));
        // The version is the last 8 of the 280 bits, in the last two characters; a change anywhere
        // before them is a typo the checksum catches.
        for (int i = 0; i < SessionAddress.EncodedLength - 2; i++)
        {
            var chars = VectorAddress.ToCharArray();
            chars[i] = chars[i] == 'a' ? 'b' : 'a';
            Assert.Equal(SessionAddressError.Checksum, ErrorOf(new string(chars)));
        }
    }

    [Fact]
    public void A_checksummed_key_outside_the_prime_order_group_is_refused()
    {
        var identity = new byte[32];
        identity[0] = 1;
        Assert.Equal(SessionAddressError.Key, ErrorOf(Encode(".quid checksum", identity, 1) + ".quid"));
        Assert.Equal(SessionAddressError.Key, ErrorOf(Encode(".quid checksum", new byte[32], 1) + ".quid"));
        Assert.Throws<ArgumentException>(() => new SessionAddress(identity));
    }

    [Fact]
    public void Random_text_and_random_edits_only_ever_throw_the_typed_error()
    {
        var random = new Random(19);
        const string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ234567890189.-_ /\0\u00e9\u0131\u212a\ud83d\ude00";
        var valid = NewAddress().ToString();
        for (int n = 0; n < 20_000; n++)
        {
            string text;
            switch (n % 4)
            {
                case 0:
                    var chars = new char[random.Next(0, 80)];
                    for (int i = 0; i < chars.Length; i++) chars[i] = alphabet[random.Next(alphabet.Length)];
                    text = new string(chars) + (random.Next(2) == 0 ? ".quid" : "");
                    break;
                case 1:
                    var label = new char[SessionAddress.EncodedLength];
                    for (int i = 0; i < label.Length; i++) label[i] = "abcdefghijklmnopqrstuvwxyz234567"[random.Next(32)];
                    text = new string(label) + ".quid";
                    break;
                case 2:
                    int at = random.Next(valid.Length);
                    text = valid[..at] + alphabet[random.Next(alphabet.Length)] + valid[(at + random.Next(2))..];
                    break;
                default:
                    int cut = random.Next(valid.Length);
                    text = valid.Remove(cut, random.Next(valid.Length - cut + 1));
                    break;
            }
            bool parsed = SessionAddress.TryParse(text, out var tried);
            try
            {
                Assert.Equal(tried, SessionAddress.Parse(text));
                Assert.True(parsed);
            }
            catch (SessionAddressException)
            {
                Assert.False(parsed);
            }
        }
        Assert.False(SessionAddress.TryParse(null, out _));
    }

    [Fact]
    public void A_secret_is_its_bytes_checksum_and_version_in_base32_after_a_prefix()
    {
        var bytes = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        using var secret = new ServiceSecret(bytes);
        Assert.Equal(VectorSecret, secret.ToText());
        using var parsed = ServiceSecret.Parse(VectorSecret);
        Assert.Equal(bytes, parsed.Bytes.ToArray());
    }

    [Fact]
    public void Secrets_round_trip_pasted_in_any_case_with_blanks_around()
    {
        for (int n = 0; n < 20; n++)
        {
            using var secret = ServiceSecret.Generate();
            var text = secret.ToText();
            Assert.StartsWith(ServiceSecret.Prefix, text);
            using var back = ServiceSecret.Parse(text);
            using var upper = ServiceSecret.Parse("  " + text.ToUpperInvariant() + "\n");
            Assert.Equal(secret.Bytes.ToArray(), back.Bytes.ToArray());
            Assert.Equal(secret.Bytes.ToArray(), upper.Bytes.ToArray());
            Assert.True(ServiceSecret.TryParse(text, out var tried));
            tried.Dispose();
        }
    }

    [Fact]
    public void Every_way_a_secret_can_be_mistyped_is_told_apart()
    {
        var bytes = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        Assert.Equal(SessionAddressError.Prefix, SecretErrorOf(""));
        Assert.Equal(SessionAddressError.Prefix, SecretErrorOf(VectorSecret[ServiceSecret.Prefix.Length..]));
        Assert.Equal(SessionAddressError.Prefix, SecretErrorOf(VectorAddress));
        Assert.Equal(SessionAddressError.Length, SecretErrorOf(VectorSecret[..^1]));
        Assert.Equal(SessionAddressError.Length, SecretErrorOf(VectorSecret + "a"));
        Assert.Equal(SessionAddressError.Length, SecretErrorOf(ServiceSecret.Prefix));
        Assert.Equal(SessionAddressError.Character, SecretErrorOf(VectorSecret[..^2] + "1b"));
        Assert.Equal(SessionAddressError.Version, SecretErrorOf(ServiceSecret.Prefix + Encode(".quid secret checksum", bytes, 2)));
        Assert.Equal(SessionAddressError.Checksum, SecretErrorOf(ServiceSecret.Prefix + Encode(".quid checksum", bytes, 1)));
        var typo = VectorSecret.ToCharArray();
        typo[20] = typo[20] == 'a' ? 'b' : 'a';
        Assert.Equal(SessionAddressError.Checksum, SecretErrorOf(new string(typo)));
    }

    [Fact]
    public void Random_text_never_parses_as_a_secret_and_only_throws_the_typed_error()
    {
        var random = new Random(20);
        for (int n = 0; n < 5_000; n++)
        {
            var chars = new char[random.Next(0, 80)];
            for (int i = 0; i < chars.Length; i++) chars[i] = (char)random.Next(0x20, 0x7f);
            var text = (random.Next(2) == 0 ? ServiceSecret.Prefix : "") + new string(chars);
            Assert.False(ServiceSecret.TryParse(text, out _));
            Assert.Throws<SessionAddressException>(() => ServiceSecret.Parse(text));
        }
    }

    [Fact]
    public void A_disposed_secret_is_wiped_and_refuses_use()
    {
        var secret = ServiceSecret.Generate();
        secret.Dispose();
        Assert.Throws<ObjectDisposedException>(() => secret.ToText());
        Assert.Throws<ObjectDisposedException>(() => ServicePeriod.ForSecret(secret));
    }
}
