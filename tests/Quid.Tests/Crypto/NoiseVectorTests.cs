using System.Text.Json;
using NSec.Cryptography;
using Quid.Crypto.Noise;

namespace Quid.Tests.Crypto;

/// <summary>
/// Replays the cacophony Noise vectors (Vectors/noise/cacophony-25519.json, see Vectors/README.md)
/// and checks every byte Quid produces against them.
/// </summary>
public class NoiseVectorTests
{
    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private static readonly Lazy<Dictionary<string, NoiseVector>> Vectors = new(LoadVectors);

    // BLAKE2s/BLAKE2b vectors are filtered out here: NSec has no HMAC-BLAKE2, so Quid does not support those suites.
    public static TheoryData<string> SupportedProtocols()
    {
        var names = new TheoryData<string>();
        foreach (string name in Vectors.Value.Keys)
        {
            if (name.EndsWith("_SHA256", StringComparison.Ordinal) || name.EndsWith("_SHA512", StringComparison.Ordinal))
            {
                names.Add(name);
            }
        }

        return names;
    }

    [Fact]
    public void EveryShaVectorIsExercised() => Assert.Equal(36, SupportedProtocols().Count);

    [Theory]
    [MemberData(nameof(SupportedProtocols))]
    public void HandshakeAndTransportMatchVector(string protocolName)
    {
        NoiseVector v = Vectors.Value[protocolName];
        NoiseProtocol protocol = NoiseProtocol.Parse(protocolName);

        using Key? initStatic = ImportPrivate(v.InitStatic);
        using Key? respStatic = ImportPrivate(v.RespStatic);
        using Key? initEphemeral = ImportPrivate(v.InitEphemeral);
        using Key? respEphemeral = ImportPrivate(v.RespEphemeral);
        using var initiator = new HandshakeState(
            protocol, true, Hex(v.InitPrologue), initStatic, Hex(v.InitRemoteStatic), initEphemeral);
        using var responder = new HandshakeState(
            protocol, false, Hex(v.RespPrologue), respStatic, Hex(v.RespRemoteStatic), respEphemeral);

        CipherState? initSend = null, initReceive = null, respSend = null, respReceive = null;
        try
        {
            byte[] wire = new byte[65535];
            byte[] received = new byte[65535];
            for (int i = 0; i < v.Messages.Length; i++)
            {
                byte[] payload = Hex(v.Messages[i].Payload);
                // Handshake messages alternate starting with the initiator, and the transport messages continue
                // the alternation, except that after a one-way pattern only the initiator can send.
                bool fromInitiator = protocol.Pattern.IsOneWay || i % 2 == 0;
                int length, receivedLength;
                if (!initiator.IsComplete)
                {
                    (HandshakeState sender, HandshakeState receiver) =
                        fromInitiator ? (initiator, responder) : (responder, initiator);
                    length = sender.WriteMessage(payload, wire);
                    receivedLength = receiver.ReadMessage(wire.AsSpan(0, length), received);
                    if (initiator.IsComplete)
                    {
                        Assert.True(responder.IsComplete);
                        Assert.Equal(v.HandshakeHash, Convert.ToHexStringLower(initiator.HandshakeHash));
                        Assert.Equal(v.HandshakeHash, Convert.ToHexStringLower(responder.HandshakeHash));
                        (initSend, initReceive) = initiator.Split();
                        (respSend, respReceive) = responder.Split();
                    }
                }
                else
                {
                    (CipherState sender, CipherState receiver) =
                        fromInitiator ? (initSend!, respReceive!) : (respSend!, initReceive!);
                    length = sender.Encrypt(default, payload, wire);
                    Assert.True(receiver.TryDecrypt(default, wire.AsSpan(0, length), received, out receivedLength));
                }

                Assert.Equal(v.Messages[i].Ciphertext, Convert.ToHexStringLower(wire, 0, length));
                Assert.Equal(v.Messages[i].Payload, Convert.ToHexStringLower(received, 0, receivedLength));
            }

            Assert.True(initiator.IsComplete);
        }
        finally
        {
            initSend?.Dispose();
            initReceive?.Dispose();
            respSend?.Dispose();
            respReceive?.Dispose();
        }
    }

    private static Dictionary<string, NoiseVector> LoadVectors()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Vectors", "noise", "cacophony-25519.json");
        VectorFile file = JsonSerializer.Deserialize<VectorFile>(File.ReadAllText(path), JsonOptions)
            ?? throw new InvalidDataException(path);
        return file.Vectors.ToDictionary(v => v.ProtocolName);
    }

    private static byte[] Hex(string? hex) => hex is null ? [] : Convert.FromHexString(hex);

    private static Key? ImportPrivate(string? hex) => hex is null
        ? null
        : Key.Import(
            KeyAgreementAlgorithm.X25519,
            Convert.FromHexString(hex),
            KeyBlobFormat.RawPrivateKey,
            new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });

    private sealed record VectorFile(NoiseVector[] Vectors);

    private sealed record VectorMessage(string Payload, string Ciphertext);

    private sealed record NoiseVector(
        string ProtocolName,
        string InitPrologue,
        string RespPrologue,
        string? InitStatic,
        string? RespStatic,
        string? InitEphemeral,
        string? RespEphemeral,
        string? InitRemoteStatic,
        string? RespRemoteStatic,
        string HandshakeHash,
        VectorMessage[] Messages);
}
