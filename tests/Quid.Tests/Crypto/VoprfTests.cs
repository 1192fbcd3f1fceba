using System.Security.Cryptography;
using Quid.Crypto;

namespace Quid.Tests.Crypto;

/// <summary>
/// RFC 9497 VOPRF mode, ristretto255-SHA512, against the RFC's own vectors, and what it must
/// refuse: a proof that does not hold, elements that do not decode, wrong lengths.
/// </summary>
public sealed class VoprfTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex);

    // RFC 9497 Appendix A.1.2, "ristretto255-SHA512, VOPRF Mode", copied from the CFRG draft
    // repository cfrg/draft-irtf-cfrg-voprf at commit 43da59f797c92248c0362e4c74cc10a8bd2b7b7d,
    // poc/vectors/allVectors.json (the entry with identifier "ristretto255-SHA512" and mode 1),
    // and checked against the same appendix in that commit's draft-irtf-cfrg-voprf.md.
    private static readonly byte[] Seed = Hex("a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3");
    private static readonly byte[] KeyInfo = Hex("74657374206b6579"); // "test key"
    private static readonly byte[] SkSm = Hex("e6f73f344b79b379f1a0dd37e07ff62e38d9f71345ce62ae3a9bc60b04ccd909");
    private static readonly byte[] PkSm = Hex("c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e");

    private const string Input1 = "00";
    private const string Input2 = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
    private const string Blind1 = "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706";
    private const string Blind2 = "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e";
    private const string Output1 =
        "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7da4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c";
    private const string Output2 =
        "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6";

    /// <summary>One RFC test vector; a field with several values (the batch) has them comma-separated, as the RFC writes them.</summary>
    public sealed record Vector(string Name, string Input, string Blind, string BlindedElement, string EvaluationElement,
        string Proof, string ProofRandomScalar, string Output)
    {
        public override string ToString() => Name;
    }

    private static readonly Vector[] Vectors =
    [
        new("Test Vector 1, Batch Size 1",
            Input: Input1,
            Blind: Blind1,
            BlindedElement: "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945",
            EvaluationElement: "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e",
            Proof: "ddef93772692e535d1a53903db24367355cc2cc78de93b3be5a8ffcc6985dd06" +
                   "6d4346421d17bf5117a2a1ff0fcb2a759f58a539dfbe857a40bce4cf49ec600d",
            ProofRandomScalar: "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e",
            Output: Output1),
        new("Test Vector 2, Batch Size 1",
            Input: Input2,
            Blind: Blind1,
            BlindedElement: "cc0b2a350101881d8a4cba4c80241d74fb7dcbfde4a61fde2f91443c2bf9ef0c",
            EvaluationElement: "60a59a57208d48aca71e9e850d22674b611f752bed48b36f7a91b372bd7ad468",
            Proof: "401a0da6264f8cf45bb2f5264bc31e109155600babb3cd4e5af7d181a2c9dc0a" +
                   "67154fabf031fd936051dec80b0b6ae29c9503493dde7393b722eafdf5a50b02",
            ProofRandomScalar: "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e",
            Output: Output2),
        new("Test Vector 3, Batch Size 2",
            Input: Input1 + "," + Input2,
            Blind: Blind1 + "," + Blind2,
            BlindedElement: "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945," +
                            "90a0145ea9da29254c3a56be4fe185465ebb3bf2a1801f7124bbbadac751e654",
            EvaluationElement: "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e," +
                               "cc5ac221950a49ceaa73c8db41b82c20372a4c8d63e5dded2db920b7eee36a2a",
            Proof: "cc203910175d786927eeb44ea847328047892ddf8590e723c37205cb74600b0a" +
                   "5ab5337c8eb4ceae0494c2cf89529dcf94572ed267473d567aeed6ab873dee08",
            ProofRandomScalar: "419c4f4f5052c53c45f3da494d2b67b220d02118e0857cdbcf037f9ea84bbe0c",
            Output: Output1 + "," + Output2),
    ];

    public static TheoryData<Vector> AllVectors => new(Vectors);

    private static byte[][] List(string values) => [.. values.Split(',').Select(Hex)];

    // The group order ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian: the
    // smallest non-canonical scalar.
    private static readonly byte[] Order = Hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");

    // Encodings that are not a group element the RFC accepts: the identity, a "negative" field
    // element (odd, refused by ristretto255's decoding), and a field element above p.
    public static TheoryData<string> BadElements => new(
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");

    [Fact]
    public void DeriveKeyPair_gives_the_rfc_key_pair()
    {
        var sk = new byte[Voprf.ScalarSize];
        var pk = new byte[Voprf.ElementSize];
        Voprf.DeriveKeyPair(Seed, KeyInfo, sk, pk);
        Assert.Equal(SkSm, sk);
        Assert.Equal(PkSm, pk);
    }

    [Theory]
    [MemberData(nameof(AllVectors))]
    public void Rfc_vector_blind_evaluate_finalize_and_evaluate(Vector vector)
    {
        var inputs = List(vector.Input);
        var blinds = List(vector.Blind);
        var expectedBlinded = List(vector.BlindedElement);
        var expectedEvaluated = List(vector.EvaluationElement);
        var expectedOutputs = List(vector.Output);

        var blinded = new byte[inputs.Length][];
        for (int i = 0; i < inputs.Length; i++)
        {
            blinded[i] = new byte[Voprf.ElementSize];
            Voprf.BlindWith(inputs[i], blinds[i], blinded[i]);
        }
        Assert.Equal(expectedBlinded, blinded);

        var proof = Voprf.BlindEvaluate(SkSm, PkSm, blinded, Hex(vector.ProofRandomScalar), out var evaluated);
        Assert.Equal(expectedEvaluated, evaluated);
        Assert.Equal(Hex(vector.Proof), proof);

        Assert.Equal(expectedOutputs, Voprf.Finalize(inputs, blinds, evaluated, blinded, PkSm, proof));

        var output = new byte[Voprf.OutputSize];
        for (int i = 0; i < inputs.Length; i++)
        {
            Voprf.Evaluate(SkSm, inputs[i], output);
            Assert.Equal(expectedOutputs[i], output);
        }
    }

    [Fact]
    public void A_random_round_trip_finalizes_to_what_the_issuer_evaluates()
    {
        var seed = RandomNumberGenerator.GetBytes(Voprf.SeedSize);
        var sk = new byte[Voprf.ScalarSize];
        var pk = new byte[Voprf.ElementSize];
        Voprf.DeriveKeyPair(seed, "epoch 7"u8, sk, pk);

        byte[][] tokens = [RandomNumberGenerator.GetBytes(32), RandomNumberGenerator.GetBytes(32), []];
        var blinds = new byte[tokens.Length][];
        var blinded = new byte[tokens.Length][];
        for (int i = 0; i < tokens.Length; i++)
        {
            blinds[i] = new byte[Voprf.ScalarSize];
            blinded[i] = new byte[Voprf.ElementSize];
            Voprf.Blind(tokens[i], blinds[i], blinded[i]);
        }
        var proof = Voprf.BlindEvaluate(sk, pk, blinded, out var evaluated);
        var outputs = Voprf.Finalize(tokens, blinds, evaluated, blinded, pk, proof);

        var direct = new byte[Voprf.OutputSize];
        for (int i = 0; i < tokens.Length; i++)
        {
            Voprf.Evaluate(sk, tokens[i], direct);
            Assert.Equal(direct, outputs[i]);
        }
        Assert.Equal(tokens.Length, outputs.Distinct(new BytesComparer()).Count());

        // Fresh randomness each time: the same token blinds and proves differently.
        var blind = new byte[Voprf.ScalarSize];
        var again = new byte[Voprf.ElementSize];
        Voprf.Blind(tokens[0], blind, again);
        Assert.NotEqual(blinded[0], again);
        Assert.NotEqual(proof, Voprf.BlindEvaluate(sk, pk, blinded, out _));
    }

    [Theory]
    [InlineData(0)] // c
    [InlineData(Voprf.ScalarSize)] // s
    public void A_tampered_proof_is_refused(int at)
    {
        var (inputs, blinds, blinded) = RfcBatch();
        var proof = Voprf.BlindEvaluate(SkSm, PkSm, blinded, out var evaluated);
        proof[at] ^= 1;
        var refused = Assert.Throws<VoprfException>(() => Voprf.Finalize(inputs, blinds, evaluated, blinded, PkSm, proof));
        Assert.Equal(VoprfError.Verify, refused.Error);
    }

    [Fact]
    public void A_proof_does_not_cover_other_elements_or_another_order()
    {
        var (inputs, blinds, blinded) = RfcBatch();
        var proof = Voprf.BlindEvaluate(SkSm, PkSm, blinded, out var evaluated);

        byte[][] swapped = [evaluated[1], evaluated[0]];
        Assert.Equal(VoprfError.Verify,
            Assert.Throws<VoprfException>(() => Voprf.Finalize(inputs, blinds, swapped, blinded, PkSm, proof)).Error);

        // The first token on its own, with the batch's proof.
        Assert.Equal(VoprfError.Verify,
            Assert.Throws<VoprfException>(() => Voprf.Finalize([inputs[0]], [blinds[0]], [evaluated[0]], [blinded[0]], PkSm, proof)).Error);
    }

    [Fact]
    public void A_proof_under_another_key_is_refused()
    {
        var otherSk = new byte[Voprf.ScalarSize];
        var otherPk = new byte[Voprf.ElementSize];
        Voprf.DeriveKeyPair(Seed, "another epoch"u8, otherSk, otherPk);
        var (inputs, blinds, blinded) = RfcBatch();

        // An honest proof, checked against the wrong published key.
        var proof = Voprf.BlindEvaluate(SkSm, PkSm, blinded, out var evaluated);
        Assert.Equal(VoprfError.Verify,
            Assert.Throws<VoprfException>(() => Voprf.Finalize(inputs, blinds, evaluated, blinded, otherPk, proof)).Error);

        // An issuer evaluating with a key of its own (to mark these tokens) while claiming the published one.
        var marked = Voprf.BlindEvaluate(otherSk, PkSm, blinded, out var markedEvaluated);
        Assert.Equal(VoprfError.Verify,
            Assert.Throws<VoprfException>(() => Voprf.Finalize(inputs, blinds, markedEvaluated, blinded, PkSm, marked)).Error);
    }

    [Theory]
    [MemberData(nameof(BadElements))]
    public void An_invalid_or_identity_element_is_refused_wherever_it_comes_in(string hex)
    {
        var bad = Hex(hex);
        var (inputs, blinds, blinded) = RfcBatch();
        var proof = Voprf.BlindEvaluate(SkSm, PkSm, blinded, out var evaluated);

        void Refused(Action action) => Assert.Equal(VoprfError.Deserialize, Assert.Throws<VoprfException>(action).Error);
        Refused(() => Voprf.BlindEvaluate(SkSm, PkSm, [blinded[0], bad], out _));
        Refused(() => Voprf.BlindEvaluate(SkSm, bad, blinded, out _));
        Refused(() => Voprf.Finalize(inputs, blinds, [evaluated[0], bad], blinded, PkSm, proof));
        Refused(() => Voprf.Finalize(inputs, blinds, evaluated, [bad, blinded[1]], PkSm, proof));
        Refused(() => Voprf.Finalize(inputs, blinds, evaluated, blinded, bad, proof));
    }

    [Fact]
    public void Non_canonical_or_zero_scalars_are_refused()
    {
        var (inputs, blinds, blinded) = RfcBatch();
        var proof = Voprf.BlindEvaluate(SkSm, PkSm, blinded, out var evaluated);
        var zero = new byte[Voprf.ScalarSize];
        var element = new byte[Voprf.ElementSize];
        var output = new byte[Voprf.OutputSize];

        void Refused(Action action) => Assert.Equal(VoprfError.Deserialize, Assert.Throws<VoprfException>(action).Error);
        Refused(() => Voprf.Finalize(inputs, blinds, evaluated, blinded, PkSm, [.. Order, .. proof.AsSpan(Voprf.ScalarSize)]));
        Refused(() => Voprf.Finalize(inputs, blinds, evaluated, blinded, PkSm, [.. proof.AsSpan(0, Voprf.ScalarSize), .. Order]));
        Refused(() => Voprf.Finalize(inputs, [blinds[0], zero], evaluated, blinded, PkSm, proof));
        Refused(() => Voprf.BlindWith(inputs[0], Order, element));
        Refused(() => Voprf.BlindWith(inputs[0], zero, element));
        Refused(() => Voprf.BlindEvaluate(zero, PkSm, blinded, out _));
        Refused(() => Voprf.BlindEvaluate(Order, PkSm, blinded, out _));
        Refused(() => Voprf.Evaluate(Order, inputs[0], output));
    }

    [Fact]
    public void Wrong_lengths_throw_ArgumentException()
    {
        var (inputs, blinds, blinded) = RfcBatch();
        var proof = Voprf.BlindEvaluate(SkSm, PkSm, blinded, out var evaluated);
        var scalar = new byte[Voprf.ScalarSize];
        var element = new byte[Voprf.ElementSize];
        var output = new byte[Voprf.OutputSize];

        Assert.Throws<ArgumentException>(() => Voprf.DeriveKeyPair(Seed.AsSpan(1), KeyInfo, scalar, element));
        Assert.Throws<ArgumentException>(() => Voprf.DeriveKeyPair(Seed, new byte[Voprf.MaxInputSize + 1], scalar, element));
        Assert.Throws<ArgumentException>(() => Voprf.DeriveKeyPair(Seed, KeyInfo, new byte[31], element));
        Assert.Throws<ArgumentException>(() => Voprf.DeriveKeyPair(Seed, KeyInfo, scalar, new byte[33]));
        Assert.Throws<ArgumentException>(() => Voprf.Blind(inputs[0], new byte[31], element));
        Assert.Throws<ArgumentException>(() => Voprf.Blind(inputs[0], scalar, new byte[31]));
        Assert.Throws<ArgumentException>(() => Voprf.Blind(new byte[Voprf.MaxInputSize + 1], scalar, element));
        Assert.Throws<ArgumentException>(() => Voprf.BlindWith(inputs[0], new byte[31], element));
        Assert.Throws<ArgumentException>(() => Voprf.BlindEvaluate(SkSm.AsSpan(1), PkSm, blinded, out _));
        Assert.Throws<ArgumentException>(() => Voprf.BlindEvaluate(SkSm, PkSm.AsSpan(1), blinded, out _));
        Assert.Throws<ArgumentException>(() => Voprf.BlindEvaluate(SkSm, PkSm, [blinded[0], new byte[33]], out _));
        Assert.Throws<ArgumentException>(() => Voprf.BlindEvaluate(SkSm, PkSm, [], out _));
        Assert.Throws<ArgumentException>(() => Voprf.Finalize(inputs, blinds, evaluated, blinded, PkSm, proof.AsSpan(1)));
        Assert.Throws<ArgumentException>(() => Voprf.Finalize(inputs, blinds, evaluated, blinded, PkSm.AsSpan(1), proof));
        Assert.Throws<ArgumentException>(() => Voprf.Finalize(inputs, blinds, [evaluated[0], new byte[31]], blinded, PkSm, proof));
        Assert.Throws<ArgumentException>(() => Voprf.Finalize(inputs, [blinds[0], new byte[31]], evaluated, blinded, PkSm, proof));
        Assert.Throws<ArgumentException>(() => Voprf.Finalize([inputs[0]], blinds, evaluated, blinded, PkSm, proof));
        Assert.Throws<ArgumentException>(() => Voprf.Evaluate(SkSm, inputs[0], new byte[32]));
        Assert.Throws<ArgumentException>(() => Voprf.Evaluate(SkSm.AsSpan(1), inputs[0], output));
    }

    // The RFC's batch of two, blinded with the RFC's blinds.
    private static (byte[][] Inputs, byte[][] Blinds, byte[][] Blinded) RfcBatch()
    {
        var inputs = List(Input1 + "," + Input2);
        var blinds = List(Blind1 + "," + Blind2);
        var blinded = new byte[inputs.Length][];
        for (int i = 0; i < inputs.Length; i++)
        {
            blinded[i] = new byte[Voprf.ElementSize];
            Voprf.BlindWith(inputs[i], blinds[i], blinded[i]);
        }
        return (inputs, blinds, blinded);
    }

    private sealed class BytesComparer : IEqualityComparer<byte[]>
    {
        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);
        public int GetHashCode(byte[] obj) => obj.Length == 0 ? 0 : obj[0];
    }
}
