using System.Security.Cryptography;
using System.Text;
using Quid.Crypto;

namespace Quid.Tests.Crypto;

public class NodeIdentityTests
{
    private static readonly byte[] FixedSeed = [.. Enumerable.Range(1, NodeIdentity.SeedSize).Select(i => (byte)i)];

    [Fact]
    public void NodeIdIsTheFirst20BytesOfSha256OverTheDomainAndTheSigningKey()
    {
        using var identity = NodeIdentity.FromSeed(FixedSeed);
        byte[] expected = SHA256.HashData([.. "quid node id v1"u8, .. identity.SigningPublicKey])[..NodeId.Size];

        Assert.Equal(expected, identity.Id.ToBytes());
        Assert.Equal(identity.Id, NodeId.FromSigningKey(identity.SigningPublicKey));
        Assert.Equal(NodeIdentity.PublicKeySize, identity.SigningPublicKey.Length);
    }

    [Fact]
    public void TheSameSeedAlwaysGivesTheSameKeysAndId()
    {
        using var a = NodeIdentity.FromSeed(FixedSeed);
        using var b = NodeIdentity.FromSeed(FixedSeed);
        Assert.Equal(a.Id, b.Id);
        Assert.Equal(a.SigningPublicKey, b.SigningPublicKey);
        Assert.Equal(a.LinkPublicKey, b.LinkPublicKey);
        // Signing and link keys are different keys, not one key used twice.
        Assert.NotEqual(a.SigningPublicKey, a.LinkPublicKey);

        byte[] other = (byte[])FixedSeed.Clone();
        other[0] ^= 1;
        using var c = NodeIdentity.FromSeed(other);
        Assert.NotEqual(a.Id, c.Id);
    }

    [Fact]
    public void GeneratedIdentitiesAreDistinctAndReproducibleFromTheirSeed()
    {
        using var a = NodeIdentity.Generate(out byte[] seedA);
        using var b = NodeIdentity.Generate(out byte[] seedB);
        Assert.Equal(NodeIdentity.SeedSize, seedA.Length);
        Assert.NotEqual(a.Id, b.Id);
        using var again = NodeIdentity.FromSeed(seedA);
        Assert.Equal(a.Id, again.Id);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    [InlineData(64)]
    public void ASeedOfTheWrongSizeIsRefused(int size) =>
        Assert.Throws<ArgumentException>(() => NodeIdentity.FromSeed(new byte[size]));

    [Fact]
    public void NodeIdTextIs32LowercaseBase32CharactersAndParsesBack()
    {
        using var identity = NodeIdentity.FromSeed(FixedSeed);
        string text = identity.Id.ToString();
        Assert.Equal(32, text.Length);
        Assert.All(text, ch => Assert.Contains(ch, "abcdefghijklmnopqrstuvwxyz234567"));
        Assert.Equal(text[..8], identity.Id.Brief);

        Assert.True(NodeId.TryParse(text, out var parsed));
        Assert.Equal(identity.Id, parsed);
        Assert.True(NodeId.TryParse(text.ToUpperInvariant(), out parsed));
        Assert.Equal(identity.Id, parsed);
        Assert.True(NodeId.TryParse($"  {text}\n", out parsed));
        Assert.Equal(identity.Id, parsed);
    }

    [Fact]
    public void NodeIdParsingRefusesBadCharactersAndWrongLengths()
    {
        using var identity = NodeIdentity.FromSeed(FixedSeed);
        string text = identity.Id.ToString();
        foreach (char bad in "01890=-_ .é/")
        {
            Assert.False(NodeId.TryParse(bad + text[1..], out _), $"'{bad}' at the start");
            Assert.False(NodeId.TryParse(text[..16] + bad + text[17..], out _), $"'{bad}' in the middle");
        }
        Assert.False(NodeId.TryParse(null, out _));
        Assert.False(NodeId.TryParse("", out _));
        Assert.False(NodeId.TryParse(text[..31], out _));
        Assert.False(NodeId.TryParse(text + "aa", out _));
        Assert.False(NodeId.TryParse(text + text, out _));
    }

    [Fact]
    public void NodeIdParsingRefusesATrailingCharacterThatHoldsOnlyPadding()
    {
        using var identity = NodeIdentity.FromSeed(FixedSeed);
        // 33 characters are 165 bits: no 20-byte id encodes to that, so it is not an id.
        Assert.False(NodeId.TryParse(identity.Id + "a", out _));
    }

    [Fact]
    public void Base32RoundTripsEveryLengthAndMatchesRfc4648()
    {
        // RFC 4648 §10, lowercased and without padding.
        string[] vectors = ["", "my", "mzxq", "mzxw6", "mzxw6yq", "mzxw6ytb", "mzxw6ytboi"];
        for (int n = 0; n < vectors.Length; n++)
        {
            byte[] data = Encoding.ASCII.GetBytes("foobar"[..n]);
            Assert.Equal(vectors[n], Base32.Encode(data));
        }

        var random = new Random(4648);
        for (int i = 0; i < 2000; i++)
        {
            byte[] data = new byte[random.Next(0, 48)];
            random.NextBytes(data);
            string text = Base32.Encode(data);
            byte[] decoded = new byte[data.Length];
            Assert.True(Base32.TryDecode(text, decoded, out int written));
            Assert.Equal(data.Length, written);
            Assert.Equal(data, decoded);
            Assert.True(Base32.TryDecode(text.ToUpperInvariant(), decoded, out written));
            Assert.Equal(data, decoded[..written]);
        }
    }

    [Fact]
    public void Base32RefusesCharactersOutsideTheAlphabet()
    {
        var buffer = new byte[16];
        foreach (char bad in "0189=+/ -_\0\u00e9\u0430")
            Assert.False(Base32.TryDecode($"mzx{bad}6ytb", buffer, out _), $"U+{(int)bad:x4}");
    }

    [Fact]
    public void Base32RefusesNonZeroPaddingBitsAndTooSmallADestination()
    {
        var buffer = new byte[16];
        // "my" is "f" (0x66) followed by two zero padding bits; "mz" and "m7" set them.
        Assert.True(Base32.TryDecode("my", buffer, out int written));
        Assert.Equal(1, written);
        Assert.Equal(0x66, buffer[0]);
        Assert.False(Base32.TryDecode("mz", buffer, out _));
        Assert.False(Base32.TryDecode("m7", buffer, out _));
        Assert.False(Base32.TryDecode("mzxw6ytb", new byte[4], out _));
    }

    [Theory]
    [InlineData("a")]
    [InlineData("mzx")]
    [InlineData("mzxw6y")]
    [InlineData("mzxw6ytba")]
    public void Base32RefusesLengthsThatNoByteStringEncodesTo(string text)
    {
        // A leftover of five or more bits is a whole character no encoder emits.
        Assert.False(Base32.TryDecode(text, new byte[16], out _));
    }

    [Fact]
    public void SignaturesVerifyOnlyForTheSignerAndTheMessage()
    {
        using var a = NodeIdentity.Generate(out _);
        using var b = NodeIdentity.Generate(out _);
        byte[] message = "quid pro quo"u8.ToArray();
        byte[] signature = a.Sign(message);
        Assert.Equal(NodeIdentity.SignatureSize, signature.Length);

        Assert.True(NodeIdentity.Verify(a.SigningPublicKey, message, signature));
        Assert.False(NodeIdentity.Verify(b.SigningPublicKey, message, signature));
        Assert.False(NodeIdentity.Verify(a.SigningPublicKey, "quid pro quO"u8, signature));
        for (int bit = 0; bit < signature.Length * 8; bit += 7)
        {
            byte[] flipped = (byte[])signature.Clone();
            flipped[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.False(NodeIdentity.Verify(a.SigningPublicKey, message, flipped));
        }

        var span = new byte[NodeIdentity.SignatureSize];
        a.Sign(message, span);
        Assert.True(NodeIdentity.Verify(a.SigningPublicKey, message, span));
    }

    [Fact]
    public void VerifyReturnsFalseForMalformedKeysAndSignatures()
    {
        using var a = NodeIdentity.Generate(out _);
        byte[] signature = a.Sign("m"u8);
        Assert.False(NodeIdentity.Verify(a.SigningPublicKey, "m"u8, signature.AsSpan(0, 63)));
        Assert.False(NodeIdentity.Verify(a.SigningPublicKey, "m"u8, [.. signature, 0]));
        Assert.False(NodeIdentity.Verify(a.SigningPublicKey.AsSpan(0, 31), "m"u8, signature));
        Assert.False(NodeIdentity.Verify([], "m"u8, signature));
        Assert.False(NodeIdentity.Verify(new byte[32], "m"u8, signature));
    }

    [Fact]
    public void TheLinkCertificateVouchesOnlyForTheIdentitysOwnLinkKey()
    {
        using var a = NodeIdentity.Generate(out _);
        using var b = NodeIdentity.Generate(out _);
        Assert.True(NodeIdentity.VerifyLinkCertificate(a.SigningPublicKey, a.LinkPublicKey, a.LinkCertificate));
        Assert.False(NodeIdentity.VerifyLinkCertificate(a.SigningPublicKey, b.LinkPublicKey, a.LinkCertificate));
        Assert.False(NodeIdentity.VerifyLinkCertificate(b.SigningPublicKey, a.LinkPublicKey, a.LinkCertificate));
        Assert.False(NodeIdentity.VerifyLinkCertificate(b.SigningPublicKey, b.LinkPublicKey, a.LinkCertificate));
        // The certificate is bound to its context: a plain signature over the link key is no certificate.
        Assert.False(NodeIdentity.VerifyLinkCertificate(a.SigningPublicKey, a.LinkPublicKey, a.Sign(a.LinkPublicKey)));
    }
}

public sealed class IdentityStoreTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("quid-identity-test-");

    private string KeyPath => Path.Combine(_directory.FullName, IdentityStore.FileName);

    public void Dispose() => _directory.Delete(recursive: true);

    private void WriteKey(string content)
    {
        File.WriteAllText(KeyPath, content);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(KeyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    [Fact]
    public void CreatesAnOwnerOnlyKeyFileAndReloadsTheSameIdentity()
    {
        Assert.False(IdentityStore.ExistsIn(_directory.FullName));
        NodeId id;
        using (var created = IdentityStore.Create(_directory.FullName)) id = created.Id;
        Assert.True(IdentityStore.ExistsIn(_directory.FullName));
        Assert.False(File.Exists(KeyPath + ".tmp"));
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(KeyPath));

        using var loaded = IdentityStore.Load(_directory.FullName);
        Assert.Equal(id, loaded.Id);
        // The file records the id its seed gives: the check that catches a damaged seed.
        Assert.Equal(["quid identity v2", File.ReadAllLines(KeyPath)[1], id.ToString()], File.ReadAllLines(KeyPath));
    }

    [Fact]
    public void CreateNeverReplacesAKeyFile()
    {
        using var first = IdentityStore.Create(_directory.FullName);
        Assert.Throws<IOException>(() => IdentityStore.Create(_directory.FullName));
        using var loaded = IdentityStore.Load(_directory.FullName);
        Assert.Equal(first.Id, loaded.Id);
    }

    [Theory]
    [InlineData(UnixFileMode.GroupRead)]
    [InlineData(UnixFileMode.GroupWrite)]
    [InlineData(UnixFileMode.OtherRead)]
    [InlineData(UnixFileMode.OtherWrite)]
    public void AKeyOthersCanReadOrWriteIsRefusedWithTheFix(UnixFileMode extra)
    {
        if (OperatingSystem.IsWindows()) return;
        IdentityStore.Create(_directory.FullName).Dispose();
        File.SetUnixFileMode(KeyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | extra);

        var error = Assert.Throws<InvalidDataException>(() => IdentityStore.Load(_directory.FullName));
        Assert.Contains("chmod 600", error.Message, StringComparison.Ordinal);
        Assert.Contains(KeyPath, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("quid identity v1\n")]
    [InlineData("quid identity v3\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")]
    [InlineData("quid identity v1\nnot base64 at all!\n")]
    [InlineData("quid identity v1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n")]
    [InlineData("quid identity v1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n")]
    [InlineData("quid identity v2\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")]
    [InlineData("quid identity v2\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n")]
    [InlineData("-----BEGIN OPENSSH PRIVATE KEY-----\n")]
    public void ACorruptKeyFileIsRefusedNotReplaced(string content)
    {
        WriteKey(content);

        var error = Assert.Throws<InvalidDataException>(() => IdentityStore.Load(_directory.FullName));
        Assert.Contains(KeyPath, error.Message, StringComparison.Ordinal);
        Assert.Equal(content, File.ReadAllText(KeyPath));
    }

    [Fact]
    public void EveryOneByteChangeToTheKeyFileIsRefusedOrLeavesTheSameIdentity()
    {
        NodeId id;
        using (var created = IdentityStore.Create(_directory.FullName)) id = created.Id;
        byte[] original = File.ReadAllBytes(KeyPath);
        int refused = 0;
        for (int i = 0; i < original.Length; i++)
        {
            foreach (byte flip in new byte[] { 0x01, 0x20 })
            {
                byte[] damaged = (byte[])original.Clone();
                damaged[i] ^= flip;
                File.WriteAllBytes(KeyPath, damaged);
                try
                {
                    // A change the format cannot tell from the original (a line break written another way) must give the same node.
                    using var loaded = IdentityStore.Load(_directory.FullName);
                    Assert.True(loaded.Id == id, $"byte {i} ^ 0x{flip:x2} loaded as another node");
                }
                catch (InvalidDataException)
                {
                    refused++;
                }
            }
        }
        Assert.True(refused >= original.Length * 2 - 4, $"{refused} of {original.Length * 2} changes refused");
    }

    [Fact]
    public void AVersion1FileLoadsTheSeedItHoldsAndIsRewrittenWithItsCheck()
    {
        byte[] seed = [.. Enumerable.Range(0, 32).Select(i => (byte)i)];
        WriteKey($"quid identity v1\n{Convert.ToBase64String(seed)}\n");

        using var expected = NodeIdentity.FromSeed(seed);
        using (var loaded = IdentityStore.Load(_directory.FullName)) Assert.Equal(expected.Id, loaded.Id);
        Assert.Equal(["quid identity v2", Convert.ToBase64String(seed), expected.Id.ToString()], File.ReadAllLines(KeyPath));
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(KeyPath));
        using var again = IdentityStore.Load(_directory.FullName);
        Assert.Equal(expected.Id, again.Id);
    }

    [Fact]
    public void ALeftoverTempFileDoesNotLendTheNewKeyItsPermissions()
    {
        if (OperatingSystem.IsWindows()) return;
        // A crash, a restored backup or another user can leave identity.key.tmp behind, readable by all.
        string temp = KeyPath + ".tmp";
        File.WriteAllText(temp, "stale");
        File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        using var created = IdentityStore.Create(_directory.FullName);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(KeyPath));
        using var reloaded = IdentityStore.Load(_directory.FullName);
        Assert.Equal(created.Id, reloaded.Id);
    }
}
