using NSec.Cryptography;

namespace Quid.Crypto.Noise;

/// <summary>
/// One side of a Noise handshake (Noise §5.3), over bytes only: the caller moves messages between peers.
/// Messages alternate, the initiator writing first. Every problem with a received message is reported
/// as <see cref="NoiseException"/>. Errors found before any state changes (turn, size, buffer) leave the
/// handshake usable; any later one aborts it. Not thread-safe. Dispose it once done;
/// <see cref="HandshakeHash"/> stays readable until then.
/// </summary>
public sealed class HandshakeState : IDisposable
{
    private const int DhLength = 32;

    private readonly NoiseProtocol _protocol;
    private readonly bool _initiator;
    private readonly SymmetricState _symmetric;
    private readonly Key? _s;
    private readonly byte[]? _sPublic;
    private Key? _e;
    private bool _ownsE;
    private PublicKey? _re;
    private PublicKey? _rs;
    private byte[]? _rsBytes;
    private int _messageIndex;
    private bool _failed;
    private bool _split;
    private bool _disposed;

    /// <summary>
    /// Starts a handshake. <paramref name="localStatic"/> (an X25519 key, still owned by the caller) must
    /// be given exactly when the pattern uses this side's static key, and
    /// <paramref name="remoteStaticPublicKey"/> exactly when the pattern has the peer's static key as a
    /// pre-message; otherwise <see cref="ArgumentException"/> is thrown.
    /// </summary>
    public HandshakeState(
        NoiseProtocol protocol,
        bool initiator,
        ReadOnlySpan<byte> prologue,
        Key? localStatic = null,
        ReadOnlySpan<byte> remoteStaticPublicKey = default)
        : this(protocol, initiator, prologue, localStatic, remoteStaticPublicKey, localEphemeral: null)
    {
    }

    /// <summary>
    /// As the public constructor, but with an injected ephemeral key so tests can reproduce published
    /// vectors. Internal because reusing an ephemeral destroys Noise's security.
    /// </summary>
    internal HandshakeState(
        NoiseProtocol protocol,
        bool initiator,
        ReadOnlySpan<byte> prologue,
        Key? localStatic,
        ReadOnlySpan<byte> remoteStaticPublicKey,
        Key? localEphemeral)
    {
        ArgumentNullException.ThrowIfNull(protocol);
        HandshakePattern pattern = protocol.Pattern;
        RequireKey(localStatic, pattern.UsesLocalStatic(initiator), pattern, nameof(localStatic));
        RequireX25519(localEphemeral, nameof(localEphemeral));

        bool knowsRemote = pattern.KnowsRemoteStatic(initiator);
        if (remoteStaticPublicKey.IsEmpty == knowsRemote)
        {
            throw new ArgumentException(
                knowsRemote
                    ? $"Pattern {pattern.Name} needs the peer's static public key."
                    : $"Pattern {pattern.Name} learns the peer's static key during the handshake; none may be given.",
                nameof(remoteStaticPublicKey));
        }

        if (knowsRemote)
        {
            if (remoteStaticPublicKey.Length != DhLength
                || !PublicKey.TryImport(KeyAgreementAlgorithm.X25519, remoteStaticPublicKey, KeyBlobFormat.RawPublicKey, out _rs))
            {
                throw new ArgumentException("Not a raw X25519 public key.", nameof(remoteStaticPublicKey));
            }

            _rsBytes = remoteStaticPublicKey.ToArray();
        }

        _protocol = protocol;
        _initiator = initiator;
        _s = localStatic;
        _sPublic = localStatic?.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        _e = localEphemeral;
        _symmetric = new SymmetricState(protocol);
        _symmetric.MixHash(prologue);

        // Pre-message keys are hashed initiator's first, then responder's (Noise §5.3 Initialize).
        if (pattern.InitiatorStaticPreMessage)
        {
            _symmetric.MixHash(initiator ? _sPublic : _rsBytes);
        }

        if (pattern.ResponderStaticPreMessage)
        {
            _symmetric.MixHash(initiator ? _rsBytes : _sPublic);
        }
    }

    public NoiseProtocol Protocol => _protocol;

    /// <summary>True once every handshake message has been written or read; then call <see cref="Split"/>.</summary>
    public bool IsComplete => _messageIndex == _protocol.Pattern.Messages.Length;

    /// <summary>The transcript hash h; once complete, a unique handshake identifier for channel binding.</summary>
    public ReadOnlySpan<byte> HandshakeHash => _symmetric.HandshakeHash;

    /// <summary>The peer's static public key once given or received; empty before that.</summary>
    public ReadOnlySpan<byte> RemoteStaticPublicKey => _rsBytes;

    /// <summary>
    /// Writes the next handshake message carrying <paramref name="payload"/> (which must not overlap
    /// <paramref name="message"/>) and returns its length.
    /// </summary>
    public int WriteMessage(ReadOnlySpan<byte> payload, Span<byte> message)
    {
        Token[] tokens = NextMessage(writing: true);
        if (payload.Overlaps(message))
        {
            throw new ArgumentException("The payload must not overlap the message buffer.", nameof(payload));
        }

        // Sizes are checked before any state changes, so a too-small buffer can simply be retried.
        int length = Overhead(tokens) + payload.Length;
        if (length > CipherState.MaxMessageLength)
        {
            throw new NoiseException(NoiseError.TooLong, "A Noise message cannot exceed 65535 bytes.");
        }

        if (length > message.Length)
        {
            throw new NoiseException(NoiseError.BufferTooSmall, $"The message needs {length} bytes.");
        }

        try
        {
            int offset = 0;
            foreach (Token token in tokens)
            {
                switch (token)
                {
                    case Token.E:
                        if (_e is null)
                        {
                            _e = Key.Create(KeyAgreementAlgorithm.X25519);
                            _ownsE = true;
                        }

                        Span<byte> ePublic = message.Slice(offset, DhLength);
                        _e.PublicKey.TryExport(KeyBlobFormat.RawPublicKey, ePublic, out _);
                        _symmetric.MixHash(ePublic);
                        offset += DhLength;
                        break;
                    case Token.S:
                        offset += _symmetric.EncryptAndHash(_sPublic, message[offset..]);
                        break;
                    default:
                        MixDh(token);
                        break;
                }
            }

            offset += _symmetric.EncryptAndHash(payload, message[offset..]);
            _messageIndex++;
            return offset;
        }
        catch (NoiseException)
        {
            _failed = true;
            throw;
        }
    }

    /// <summary>
    /// Reads the next handshake message, writes its payload to <paramref name="payload"/> (which must not
    /// overlap <paramref name="message"/>) and returns the payload length.
    /// </summary>
    public int ReadMessage(ReadOnlySpan<byte> message, Span<byte> payload)
    {
        Token[] tokens = NextMessage(writing: false);
        if (payload.Overlaps(message))
        {
            throw new ArgumentException("The payload must not overlap the message.", nameof(payload));
        }

        // Sizes are checked before any state changes, so the handshake survives a bad length.
        if (message.Length > CipherState.MaxMessageLength)
        {
            throw new NoiseException(NoiseError.TooLong, "A Noise message cannot exceed 65535 bytes.");
        }

        int overhead = Overhead(tokens);
        if (message.Length < overhead)
        {
            throw new NoiseException(NoiseError.Truncated, $"The handshake message needs at least {overhead} bytes.");
        }

        int payloadLength = message.Length - overhead;
        if (payload.Length < payloadLength)
        {
            throw new NoiseException(NoiseError.BufferTooSmall, $"The payload needs {payloadLength} bytes.");
        }

        try
        {
            int offset = 0;
            foreach (Token token in tokens)
            {
                switch (token)
                {
                    case Token.E:
                        ReadOnlySpan<byte> re = message.Slice(offset, DhLength);
                        _re = ImportRemoteKey(re);
                        _symmetric.MixHash(re);
                        offset += DhLength;
                        break;
                    case Token.S:
                        int sLength = _symmetric.HasKey ? DhLength + CipherState.TagLength : DhLength;
                        byte[] rs = new byte[DhLength];
                        if (!_symmetric.DecryptAndHash(message.Slice(offset, sLength), rs))
                        {
                            throw new NoiseException(NoiseError.DecryptionFailed, "The peer's static key failed authentication.");
                        }

                        _rs = ImportRemoteKey(rs);
                        _rsBytes = rs;
                        offset += sLength;
                        break;
                    default:
                        MixDh(token);
                        break;
                }
            }

            if (!_symmetric.DecryptAndHash(message[offset..], payload))
            {
                throw new NoiseException(NoiseError.DecryptionFailed, "The handshake payload failed authentication.");
            }

            _messageIndex++;
            return payloadLength;
        }
        catch (NoiseException)
        {
            _failed = true;
            throw;
        }
    }

    /// <summary>
    /// Once complete, derives the transport CipherStates, oriented for this side, and erases the handshake's
    /// secrets. Callable once, since a second pair would reuse nonces. In a one-way pattern only the initiator
    /// sends, so the responder's Send and the initiator's Receive have no key: they refuse to encrypt and never decrypt.
    /// </summary>
    /// <summary>
    /// Split for a transport with its own cipher: the two keys, oriented for this side (what
    /// we send with, what we receive with), 32 bytes each. The caller erases them. Once only.
    /// </summary>
    public void SplitKeys(Span<byte> send, Span<byte> receive)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!IsComplete) throw new InvalidOperationException("The handshake is not complete.");
        if (_split) throw new InvalidOperationException("Split was already called; a second pair would reuse nonces.");
        _split = true;
        if (_initiator) _symmetric.SplitKeys(send, receive);
        else _symmetric.SplitKeys(receive, send);
        DisposeEphemeral();
    }

    public (CipherState Send, CipherState Receive) Split()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!IsComplete)
        {
            throw new InvalidOperationException("The handshake is not complete.");
        }

        if (_split)
        {
            throw new InvalidOperationException("Split was already called; a second pair would reuse nonces.");
        }

        _split = true;
        (CipherState initiatorToResponder, CipherState responderToInitiator) = _symmetric.Split();
        if (_protocol.Pattern.IsOneWay)
        {
            responderToInitiator.Dispose();
        }

        DisposeEphemeral();
        return _initiator
            ? (initiatorToResponder, responderToInitiator)
            : (responderToInitiator, initiatorToResponder);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        DisposeEphemeral();
        _symmetric.Dispose();
    }

    private static void RequireKey(Key? key, bool wanted, HandshakePattern pattern, string parameter)
    {
        if ((key is not null) != wanted)
        {
            throw new ArgumentException(
                wanted ? $"Pattern {pattern.Name} needs this key." : $"Pattern {pattern.Name} does not use this key.",
                parameter);
        }

        RequireX25519(key, parameter);
    }

    private static void RequireX25519(Key? key, string parameter)
    {
        if (key is not null && key.Algorithm is not X25519)
        {
            throw new ArgumentException("Noise 25519 needs an X25519 key.", parameter);
        }
    }

    private static PublicKey ImportRemoteKey(ReadOnlySpan<byte> bytes) =>
        PublicKey.TryImport(KeyAgreementAlgorithm.X25519, bytes, KeyBlobFormat.RawPublicKey, out PublicKey? key)
            ? key!
            : throw new NoiseException(NoiseError.InvalidPublicKey, "The peer sent an invalid X25519 public key.");

    private Token[] NextMessage(bool writing)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_failed)
        {
            throw new NoiseException(NoiseError.HandshakeFailed, "An earlier error aborted this handshake.");
        }

        if (IsComplete)
        {
            throw new NoiseException(NoiseError.OutOfTurn, "The handshake is already complete.");
        }

        bool initiatorsTurn = _messageIndex % 2 == 0;
        if ((initiatorsTurn == _initiator) != writing)
        {
            throw new NoiseException(
                NoiseError.OutOfTurn,
                writing ? "It is the peer's turn to send." : "It is this side's turn to send.");
        }

        return _protocol.Pattern.Messages[_messageIndex];
    }

    // Bytes a message needs besides its payload: keys, plus a tag on each field encrypted once a DH has keyed the cipher.
    private int Overhead(Token[] tokens)
    {
        bool hasKey = _symmetric.HasKey;
        int length = 0;
        foreach (Token token in tokens)
        {
            switch (token)
            {
                case Token.E:
                    length += DhLength;
                    break;
                case Token.S:
                    length += hasKey ? DhLength + CipherState.TagLength : DhLength;
                    break;
                default:
                    hasKey = true;
                    break;
            }
        }

        return hasKey ? length + CipherState.TagLength : length;
    }

    private void MixDh(Token token)
    {
        // The pattern and the constructor's checks guarantee both keys exist when a DH token is reached.
        (Key? local, PublicKey? remote) = token switch
        {
            Token.EE => (_e, _re),
            Token.ES => _initiator ? (_e, _rs) : (_s, _re),
            Token.SE => _initiator ? (_s, _re) : (_e, _rs),
            _ => (_s, _rs),
        };

        // NSec returns null when the result is all zeros, i.e. for a low-order point: a peer
        // sending one is trying to force a known key.
        using SharedSecret? secret = KeyAgreementAlgorithm.X25519.Agree(local!, remote!);
        if (secret is null)
        {
            throw new NoiseException(NoiseError.InvalidPublicKey, "X25519 with the peer's key gave no shared secret (low-order point).");
        }

        _symmetric.MixKey(secret);
    }

    private void DisposeEphemeral()
    {
        if (_ownsE)
        {
            _e?.Dispose();
        }

        _e = null;
    }
}
