using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Quid.Crypto;

/// <summary>Why <see cref="Voprf"/> refused: the error names of RFC 9497 §5.3.</summary>
public enum VoprfError
{
    /// <summary>An element or scalar is not the canonical encoding of one, or an element is the identity.</summary>
    Deserialize,
    /// <summary>The issuer's proof does not show it evaluated with the key it published.</summary>
    Verify,
    /// <summary>The input hashes to the identity element (never by chance, only by a broken hash).</summary>
    InvalidInput,
    /// <summary>No non-zero key came from the seed in 256 tries (never by chance either).</summary>
    DeriveKeyPair,
}

/// <summary>
/// The only exception <see cref="Voprf"/> throws for bytes that are the right length but not
/// acceptable (wrong lengths are the caller's framing bug and throw <see cref="ArgumentException"/>),
/// so whoever handles a peer's message catches one type.
/// </summary>
public sealed class VoprfException(VoprfError error, string message) : CryptographicException(message)
{
    public VoprfError Error { get; } = error;
}

/// <summary>
/// RFC 9497's verifiable oblivious PRF, VOPRF mode, ciphersuite ristretto255-SHA512, byte for
/// byte (checked against the RFC's vectors). It is what blind credits are made of: a client
/// blinds a random token, an issuer evaluates it under its key of the epoch without seeing it and
/// proves (a batched DLEQ proof) that it used the key it published, so it cannot mark one client's
/// tokens with a key of their own and link them when spent; at redemption the issuer evaluates the
/// input itself and compares. The group arithmetic is libsodium's (the library NSec ships), called
/// as <see cref="KeyBlinding"/> calls it; only the RFC's hashing and framing are written here.
/// </summary>
public static partial class Voprf
{
    public const int ElementSize = 32;
    public const int ScalarSize = 32;
    public const int SeedSize = ScalarSize;
    public const int ProofSize = 2 * ScalarSize;
    public const int OutputSize = 64;
    /// <summary>The longest input or key info: the RFC frames both with a two-byte length.</summary>
    public const int MaxInputSize = ushort.MaxValue;
    /// <summary>The most elements one proof covers: the RFC numbers them with two bytes.</summary>
    public const int MaxBatchSize = ushort.MaxValue + 1;

    // contextString = "OPRFV1-" || I2OSP(modeVOPRF, 1) || "-" || identifier.
    private static readonly byte[] ContextString = [.. "OPRFV1-"u8.ToArray(), 0x01, .. "-ristretto255-SHA512"u8.ToArray()];
    private static readonly byte[] GroupDst = [.. "HashToGroup-"u8.ToArray(), .. ContextString];
    private static readonly byte[] ScalarDst = [.. "HashToScalar-"u8.ToArray(), .. ContextString];
    private static readonly byte[] DeriveKeyPairDst = [.. "DeriveKeyPair"u8.ToArray(), .. ContextString];
    private static readonly byte[] SeedDst = [.. "Seed-"u8.ToArray(), .. ContextString];

    static Voprf()
    {
        if (sodium_init() < 0) throw new CryptographicException("libsodium failed to initialise.");
    }

    /// <summary>
    /// DeriveKeyPair (RFC 9497 §3.2.1): the issuer's key pair from a secret
    /// <see cref="SeedSize"/>-byte seed and public <paramref name="info"/> (an epoch's name, say),
    /// so a key can be remade from its seed rather than stored.
    /// </summary>
    public static void DeriveKeyPair(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> info, Span<byte> secretKey, Span<byte> publicKey)
    {
        RequireLength(seed, SeedSize, nameof(seed), "A seed");
        if (info.Length > MaxInputSize) throw new ArgumentException($"Key info is at most {MaxInputSize} bytes.", nameof(info));
        RequireLength(secretKey, ScalarSize, nameof(secretKey), "A secret key");
        RequireLength(publicKey, ElementSize, nameof(publicKey), "A public key");

        // deriveInput || I2OSP(counter, 1), deriveInput = seed || I2OSP(len(info), 2) || info.
        var derive = new byte[SeedSize + 2 + info.Length + 1];
        try
        {
            seed.CopyTo(derive);
            BinaryPrimitives.WriteUInt16BigEndian(derive.AsSpan(SeedSize), (ushort)info.Length);
            info.CopyTo(derive.AsSpan(SeedSize + 2));
            for (int counter = 0; counter <= 255; counter++)
            {
                derive[^1] = (byte)counter;
                HashToScalar(derive, DeriveKeyPairDst, secretKey);
                if (!IsZero(secretKey))
                {
                    MulBase(secretKey, publicKey);
                    return;
                }
            }
            throw new VoprfException(VoprfError.DeriveKeyPair, "No non-zero key came from this seed and info.");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(derive);
        }
    }

    /// <summary>
    /// Blind (RFC 9497 §3.3.1) with a fresh random blind: the client keeps <paramref name="blind"/>
    /// secret until <see cref="Finalize"/> and sends <paramref name="blindedElement"/>.
    /// </summary>
    public static void Blind(ReadOnlySpan<byte> input, Span<byte> blind, Span<byte> blindedElement)
    {
        RequireLength(blind, ScalarSize, nameof(blind), "A blind");
        crypto_core_ristretto255_scalar_random(blind);
        BlindWith(input, blind, blindedElement);
    }

    /// <summary>
    /// Blind with a given blind (a canonical non-zero scalar), for the RFC's vectors: a blind used
    /// twice links the two tokens. Not an overload of <see cref="Blind"/>, which a byte[] blind
    /// would silently pick and overwrite with a random one.
    /// </summary>
    internal static void BlindWith(ReadOnlySpan<byte> input, ReadOnlySpan<byte> blind, Span<byte> blindedElement)
    {
        RequireInput(input);
        RequireLength(blind, ScalarSize, nameof(blind), "A blind");
        RequireLength(blindedElement, ElementSize, nameof(blindedElement), "A blinded element");
        RequireSecretScalar(blind, "The blind");
        Span<byte> inputElement = stackalloc byte[ElementSize];
        try
        {
            HashToGroup(input, inputElement);
            Mul(blind, inputElement, blindedElement);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(inputElement);
        }
    }

    /// <summary>
    /// BlindEvaluate (RFC 9497 §3.3.2) for a batch: the issuer's evaluations of a client's blinded
    /// elements, in order, and one proof covering them all; returns the proof. Refuses (with
    /// <see cref="VoprfException"/>) an element that is not a valid non-identity encoding, since
    /// the elements come from the client.
    /// </summary>
    public static byte[] BlindEvaluate(ReadOnlySpan<byte> secretKey, ReadOnlySpan<byte> publicKey,
        IReadOnlyList<byte[]> blindedElements, out byte[][] evaluatedElements)
    {
        Span<byte> r = stackalloc byte[ScalarSize];
        try
        {
            crypto_core_ristretto255_scalar_random(r);
            return BlindEvaluate(secretKey, publicKey, blindedElements, r, out evaluatedElements);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(r);
        }
    }

    /// <summary>
    /// BlindEvaluate with the proof's random scalar given, for the RFC's vectors only: the same
    /// scalar in two proofs under one key gives the key away.
    /// </summary>
    internal static byte[] BlindEvaluate(ReadOnlySpan<byte> secretKey, ReadOnlySpan<byte> publicKey,
        IReadOnlyList<byte[]> blindedElements, ReadOnlySpan<byte> proofRandomScalar, out byte[][] evaluatedElements)
    {
        RequireLength(secretKey, ScalarSize, nameof(secretKey), "A secret key");
        RequireLength(publicKey, ElementSize, nameof(publicKey), "A public key");
        RequireLength(proofRandomScalar, ScalarSize, nameof(proofRandomScalar), "The proof's random scalar");
        RequireBatch(blindedElements, nameof(blindedElements), "A blinded element");
        RequireSecretScalar(secretKey, "The secret key");
        RequireSecretScalar(proofRandomScalar, "The proof's random scalar");
        RequireElement(publicKey, "The public key");
        for (int i = 0; i < blindedElements.Count; i++)
            RequireElement(blindedElements[i], "A blinded element");

        var evaluated = new byte[blindedElements.Count][];
        for (int i = 0; i < evaluated.Length; i++)
        {
            evaluated[i] = new byte[ElementSize];
            Mul(secretKey, blindedElements[i], evaluated[i]);
        }
        var proof = new byte[ProofSize];
        GenerateProof(secretKey, publicKey, blindedElements, evaluated, proofRandomScalar, proof);
        evaluatedElements = evaluated;
        return proof;
    }

    /// <summary>
    /// Finalize (RFC 9497 §3.3.2) for a batch: checks the issuer's proof over all the pairs of
    /// blinded and evaluated elements under <paramref name="publicKey"/>, then unblinds each and
    /// returns the outputs, in order. Throws <see cref="VoprfException"/> if an element does not
    /// decode or the proof does not verify; then no output is returned.
    /// </summary>
    public static byte[][] Finalize(IReadOnlyList<byte[]> inputs, IReadOnlyList<byte[]> blinds,
        IReadOnlyList<byte[]> evaluatedElements, IReadOnlyList<byte[]> blindedElements,
        ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> proof)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(blinds);
        RequireBatch(blindedElements, nameof(blindedElements), "A blinded element");
        RequireBatch(evaluatedElements, nameof(evaluatedElements), "An evaluated element");
        int count = blindedElements.Count;
        if (inputs.Count != count || blinds.Count != count || evaluatedElements.Count != count)
            throw new ArgumentException("Inputs, blinds, evaluated and blinded elements come one of each per token.", nameof(inputs));
        for (int i = 0; i < count; i++)
        {
            ArgumentNullException.ThrowIfNull(inputs[i], nameof(inputs));
            RequireInput(inputs[i], nameof(inputs));
            ArgumentNullException.ThrowIfNull(blinds[i], nameof(blinds));
            RequireLength(blinds[i], ScalarSize, nameof(blinds), "A blind");
        }
        RequireLength(publicKey, ElementSize, nameof(publicKey), "A public key");
        RequireLength(proof, ProofSize, nameof(proof), "A proof");

        RequireElement(publicKey, "The public key");
        for (int i = 0; i < count; i++)
        {
            RequireElement(blindedElements[i], "A blinded element");
            RequireElement(evaluatedElements[i], "An evaluated element");
            RequireSecretScalar(blinds[i], "A blind");
        }
        if (!VerifyProof(publicKey, blindedElements, evaluatedElements, proof))
            throw new VoprfException(VoprfError.Verify, "The issuer's proof does not verify under its public key.");

        var outputs = new byte[count][];
        Span<byte> inverse = stackalloc byte[ScalarSize];
        Span<byte> unblinded = stackalloc byte[ElementSize];
        try
        {
            for (int i = 0; i < count; i++)
            {
                if (crypto_core_ristretto255_scalar_invert(inverse, blinds[i]) != 0)
                    throw new VoprfException(VoprfError.Deserialize, "A blind is zero.");
                Mul(inverse, evaluatedElements[i], unblinded);
                outputs[i] = new byte[OutputSize];
                FinalHash(inputs[i], unblinded, outputs[i]);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(inverse);
            CryptographicOperations.ZeroMemory(unblinded);
        }
        return outputs;
    }

    /// <summary>
    /// Evaluate (RFC 9497 §3.3.1): the output for <paramref name="input"/> computed directly with
    /// the secret key, the same as a client's <see cref="Finalize"/> gives; how an issuer checks a
    /// redeemed (input, output).
    /// </summary>
    public static void Evaluate(ReadOnlySpan<byte> secretKey, ReadOnlySpan<byte> input, Span<byte> output)
    {
        RequireLength(secretKey, ScalarSize, nameof(secretKey), "A secret key");
        RequireInput(input);
        RequireLength(output, OutputSize, nameof(output), "An output");
        RequireSecretScalar(secretKey, "The secret key");
        Span<byte> element = stackalloc byte[ElementSize];
        Span<byte> evaluated = stackalloc byte[ElementSize];
        try
        {
            HashToGroup(input, element);
            Mul(secretKey, element, evaluated);
            FinalHash(input, evaluated, output);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(element);
            CryptographicOperations.ZeroMemory(evaluated);
        }
    }

    // GenerateProof (RFC 9497 §2.2.1) with A = G, B = pkS, C = blinded, D = evaluated.
    private static void GenerateProof(ReadOnlySpan<byte> k, ReadOnlySpan<byte> publicKey,
        IReadOnlyList<byte[]> c, IReadOnlyList<byte[]> d, ReadOnlySpan<byte> r, Span<byte> proof)
    {
        Span<byte> m = stackalloc byte[ElementSize];
        Span<byte> z = stackalloc byte[ElementSize];
        Span<byte> t2 = stackalloc byte[ElementSize];
        Span<byte> t3 = stackalloc byte[ElementSize];
        Span<byte> ck = stackalloc byte[ScalarSize];
        try
        {
            // ComputeCompositesFast: the issuer knows k, so Z = k·M instead of summing the D's.
            ComputeComposites(publicKey, c, d, m, z: default);
            Mul(k, m, z);
            MulBase(r, t2);
            Mul(r, m, t3);
            var challenge = proof[..ScalarSize];
            Challenge(publicKey, m, z, t2, t3, challenge);
            crypto_core_ristretto255_scalar_mul(ck, challenge, k);
            crypto_core_ristretto255_scalar_sub(proof[ScalarSize..], r, ck);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(ck);
        }
    }

    // VerifyProof (RFC 9497 §2.2.2) with A = G, B = pkS, C = blinded, D = evaluated.
    private static bool VerifyProof(ReadOnlySpan<byte> publicKey, IReadOnlyList<byte[]> c, IReadOnlyList<byte[]> d, ReadOnlySpan<byte> proof)
    {
        var challenge = proof[..ScalarSize];
        var s = proof[ScalarSize..];
        if (!IsCanonicalScalar(challenge) || !IsCanonicalScalar(s))
            throw new VoprfException(VoprfError.Deserialize, "The proof's scalars are not canonical.");

        Span<byte> m = stackalloc byte[ElementSize];
        Span<byte> z = stackalloc byte[ElementSize];
        Span<byte> t2 = stackalloc byte[ElementSize];
        Span<byte> t3 = stackalloc byte[ElementSize];
        Span<byte> term = stackalloc byte[ElementSize];
        Span<byte> expected = stackalloc byte[ScalarSize];
        ComputeComposites(publicKey, c, d, m, z);
        MulBase(s, t2);
        Mul(challenge, publicKey, term);
        Add(t2, term, t2);
        Mul(s, m, t3);
        Mul(challenge, z, term);
        Add(t3, term, t3);
        Challenge(publicKey, m, z, t2, t3, expected);
        return CryptographicOperations.FixedTimeEquals(expected, challenge);
    }

    // ComputeComposites (RFC 9497 §2.2.2): M = Σ dᵢ·Cᵢ and, unless z is empty (the issuer's fast
    // variant, which gets Z from its key), Z = Σ dᵢ·Dᵢ.
    private static void ComputeComposites(ReadOnlySpan<byte> b, IReadOnlyList<byte[]> c, IReadOnlyList<byte[]> d, Span<byte> m, Span<byte> z)
    {
        // seed = Hash(I2OSP(len(Bm), 2) || Bm || I2OSP(len(seedDST), 2) || seedDST)
        Span<byte> seed = stackalloc byte[64];
        using (var sha512 = IncrementalHash.CreateHash(HashAlgorithmName.SHA512))
        {
            AppendFramed(sha512, b);
            AppendFramed(sha512, SeedDst);
            sha512.GetHashAndReset(seed);
        }

        // I2OSP(len(seed), 2) || seed || I2OSP(i, 2) || I2OSP(len(Ci), 2) || Ci || I2OSP(len(Di), 2) || Di || "Composite"
        ReadOnlySpan<byte> label = "Composite"u8;
        const int AtIndex = 2 + 64, AtC = AtIndex + 2 + 2, AtD = AtC + ElementSize + 2, AtLabel = AtD + ElementSize;
        Span<byte> transcript = stackalloc byte[AtLabel + 9];
        BinaryPrimitives.WriteUInt16BigEndian(transcript, 64);
        seed.CopyTo(transcript[2..]);
        BinaryPrimitives.WriteUInt16BigEndian(transcript[(AtC - 2)..], ElementSize);
        BinaryPrimitives.WriteUInt16BigEndian(transcript[(AtD - 2)..], ElementSize);
        label.CopyTo(transcript[AtLabel..]);

        Span<byte> di = stackalloc byte[ScalarSize];
        Span<byte> term = stackalloc byte[ElementSize];
        m.Clear(); // the identity
        z.Clear();
        for (int i = 0; i < c.Count; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(transcript[AtIndex..], (ushort)i);
            c[i].CopyTo(transcript[AtC..]);
            d[i].CopyTo(transcript[AtD..]);
            HashToScalar(transcript, ScalarDst, di);
            Mul(di, c[i], term);
            Add(term, m, m);
            if (!z.IsEmpty)
            {
                Mul(di, d[i], term);
                Add(term, z, z);
            }
        }
    }

    // c = HashToScalar(I2OSP(len(Bm), 2) || Bm || ... || I2OSP(len(a3), 2) || a3 || "Challenge")
    private static void Challenge(ReadOnlySpan<byte> b, ReadOnlySpan<byte> m, ReadOnlySpan<byte> z,
        ReadOnlySpan<byte> t2, ReadOnlySpan<byte> t3, Span<byte> challenge)
    {
        ReadOnlySpan<byte> label = "Challenge"u8;
        Span<byte> transcript = stackalloc byte[5 * (2 + ElementSize) + 9];
        var rest = transcript;
        Frame(ref rest, b);
        Frame(ref rest, m);
        Frame(ref rest, z);
        Frame(ref rest, t2);
        Frame(ref rest, t3);
        label.CopyTo(rest);
        HashToScalar(transcript, ScalarDst, challenge);

        static void Frame(ref Span<byte> to, ReadOnlySpan<byte> element)
        {
            BinaryPrimitives.WriteUInt16BigEndian(to, (ushort)element.Length);
            element.CopyTo(to[2..]);
            to = to[(2 + element.Length)..];
        }
    }

    // Hash(I2OSP(len(input), 2) || input || I2OSP(len(unblindedElement), 2) || unblindedElement || "Finalize")
    private static void FinalHash(ReadOnlySpan<byte> input, ReadOnlySpan<byte> unblinded, Span<byte> output)
    {
        using var sha512 = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);
        AppendFramed(sha512, input);
        AppendFramed(sha512, unblinded);
        sha512.AppendData("Finalize"u8);
        sha512.GetHashAndReset(output);
    }

    private static void AppendFramed(IncrementalHash hash, ReadOnlySpan<byte> data)
    {
        Span<byte> length = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(length, (ushort)data.Length);
        hash.AppendData(length);
        hash.AppendData(data);
    }

    // hash_to_ristretto255 (RFC 9380 Appendix B, RFC 9496 §4.3.4): 64 uniform bytes, then libsodium's
    // one-way map of them onto the group.
    private static void HashToGroup(ReadOnlySpan<byte> input, Span<byte> element)
    {
        Span<byte> uniform = stackalloc byte[64];
        try
        {
            ExpandMessageXmd(input, GroupDst, uniform);
            crypto_core_ristretto255_from_hash(element, uniform);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(uniform);
        }
        if (IsZero(element))
            throw new VoprfException(VoprfError.InvalidInput, "The input hashes to the identity element.");
    }

    // 64 uniform bytes as a little-endian integer, reduced mod the group order.
    private static void HashToScalar(ReadOnlySpan<byte> message, ReadOnlySpan<byte> dst, Span<byte> scalar)
    {
        Span<byte> uniform = stackalloc byte[64];
        try
        {
            ExpandMessageXmd(message, dst, uniform);
            crypto_core_ristretto255_scalar_reduce(scalar, uniform);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(uniform);
        }
    }

    // expand_message_xmd (RFC 9380 §5.3.1) with SHA-512 for len_in_bytes = 64, the only length this
    // suite asks for: then ell = 1 and the output is b_1. Every DST here is under 255 bytes.
    private static void ExpandMessageXmd(ReadOnlySpan<byte> message, ReadOnlySpan<byte> dst, Span<byte> uniform)
    {
        ReadOnlySpan<byte> zPad = stackalloc byte[128]; // SHA-512's block size in zeros
        ReadOnlySpan<byte> lengthAndZero = [0, 64, 0]; // I2OSP(len_in_bytes, 2) || I2OSP(0, 1)
        ReadOnlySpan<byte> one = [1];
        ReadOnlySpan<byte> dstLength = [(byte)dst.Length];
        Span<byte> b0 = stackalloc byte[64];
        using var sha512 = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);
        try
        {
            // b_0 = H(Z_pad || msg || l_i_b_str || I2OSP(0, 1) || DST_prime)
            sha512.AppendData(zPad);
            sha512.AppendData(message);
            sha512.AppendData(lengthAndZero);
            sha512.AppendData(dst);
            sha512.AppendData(dstLength);
            sha512.GetHashAndReset(b0);
            // b_1 = H(b_0 || I2OSP(1, 1) || DST_prime)
            sha512.AppendData(b0);
            sha512.AppendData(one);
            sha512.AppendData(dst);
            sha512.AppendData(dstLength);
            sha512.GetHashAndReset(uniform);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(b0);
        }
    }

    // n·P. libsodium returns -1 when the product is the identity; every P here is already known
    // valid, so that is the only reason, and the RFC's arithmetic carries on with the identity.
    private static void Mul(ReadOnlySpan<byte> n, ReadOnlySpan<byte> p, Span<byte> q)
    {
        if (crypto_scalarmult_ristretto255(q, n, p) != 0) q[..ElementSize].Clear();
    }

    private static void MulBase(ReadOnlySpan<byte> n, Span<byte> q)
    {
        if (crypto_scalarmult_ristretto255_base(q, n) != 0) q[..ElementSize].Clear();
    }

    private static void Add(ReadOnlySpan<byte> p, ReadOnlySpan<byte> q, Span<byte> r)
    {
        if (crypto_core_ristretto255_add(r, p, q) != 0)
            throw new VoprfException(VoprfError.Deserialize, "An element does not decode.");
    }

    // DeserializeElement: a canonical encoding of a group element other than the identity, which
    // libsodium's check lets through and the RFC refuses.
    private static void RequireElement(ReadOnlySpan<byte> element, string what)
    {
        if (crypto_core_ristretto255_is_valid_point(element) != 1 || IsZero(element))
            throw new VoprfException(VoprfError.Deserialize, $"{what} is not the canonical encoding of a ristretto255 element other than the identity.");
    }

    // A key, blind or proof scalar must be below the group order (DeserializeScalar) and, to be
    // invertible or a key at all, not zero.
    private static void RequireSecretScalar(ReadOnlySpan<byte> scalar, string what)
    {
        if (!IsCanonicalScalar(scalar) || IsZero(scalar))
            throw new VoprfException(VoprfError.Deserialize, $"{what} is not a canonical non-zero scalar.");
    }

    // Canonical iff reducing it mod the order changes nothing.
    private static bool IsCanonicalScalar(ReadOnlySpan<byte> scalar)
    {
        Span<byte> wide = stackalloc byte[2 * ScalarSize];
        Span<byte> reduced = stackalloc byte[ScalarSize];
        try
        {
            scalar.CopyTo(wide);
            crypto_core_ristretto255_scalar_reduce(reduced, wide);
            return CryptographicOperations.FixedTimeEquals(reduced, scalar);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(wide);
            CryptographicOperations.ZeroMemory(reduced);
        }
    }

    private static bool IsZero(ReadOnlySpan<byte> bytes)
    {
        int any = 0;
        foreach (byte b in bytes) any |= b;
        return any == 0;
    }

    private static void RequireLength(ReadOnlySpan<byte> bytes, int size, string name, string what)
    {
        if (bytes.Length != size) throw new ArgumentException($"{what} is {size} bytes.", name);
    }

    private static void RequireInput(ReadOnlySpan<byte> input, string name = "input")
    {
        if (input.Length > MaxInputSize) throw new ArgumentException($"An input is at most {MaxInputSize} bytes.", name);
    }

    private static void RequireBatch(IReadOnlyList<byte[]> elements, string name, string what)
    {
        ArgumentNullException.ThrowIfNull(elements, name);
        if (elements.Count == 0) throw new ArgumentException("A batch has at least one element.", name);
        if (elements.Count > MaxBatchSize) throw new ArgumentException($"A batch has at most {MaxBatchSize} elements.", name);
        foreach (var element in elements)
        {
            ArgumentNullException.ThrowIfNull(element, name);
            RequireLength(element, ElementSize, name, what);
        }
    }

    [LibraryImport("libsodium")]
    private static partial int sodium_init();

    [LibraryImport("libsodium")]
    private static partial int crypto_core_ristretto255_is_valid_point(ReadOnlySpan<byte> p);

    [LibraryImport("libsodium")]
    private static partial int crypto_core_ristretto255_from_hash(Span<byte> p, ReadOnlySpan<byte> r);

    [LibraryImport("libsodium")]
    private static partial int crypto_core_ristretto255_add(Span<byte> r, ReadOnlySpan<byte> p, ReadOnlySpan<byte> q);

    [LibraryImport("libsodium")]
    private static partial int crypto_scalarmult_ristretto255(Span<byte> q, ReadOnlySpan<byte> n, ReadOnlySpan<byte> p);

    [LibraryImport("libsodium")]
    private static partial int crypto_scalarmult_ristretto255_base(Span<byte> q, ReadOnlySpan<byte> n);

    [LibraryImport("libsodium")]
    private static partial void crypto_core_ristretto255_scalar_random(Span<byte> r);

    [LibraryImport("libsodium")]
    private static partial void crypto_core_ristretto255_scalar_reduce(Span<byte> r, ReadOnlySpan<byte> s);

    [LibraryImport("libsodium")]
    private static partial int crypto_core_ristretto255_scalar_invert(Span<byte> recip, ReadOnlySpan<byte> s);

    [LibraryImport("libsodium")]
    private static partial void crypto_core_ristretto255_scalar_mul(Span<byte> z, ReadOnlySpan<byte> x, ReadOnlySpan<byte> y);

    [LibraryImport("libsodium")]
    private static partial void crypto_core_ristretto255_scalar_sub(Span<byte> z, ReadOnlySpan<byte> x, ReadOnlySpan<byte> y);
}
