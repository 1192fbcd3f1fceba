namespace Quid.Crypto.Noise;

/// <summary>A token of a handshake message pattern (Noise §7.1), without PSK tokens.</summary>
internal enum Token : byte
{
    E,
    S,
    EE,
    ES,
    SE,
    SS,
}

/// <summary>
/// One of the supported Noise handshake patterns: the one-way N, K, X and the interactive
/// NN, NK, XX, XK, IK, KK (Noise §7.4, §7.5).
/// </summary>
public sealed class HandshakePattern
{
    private static readonly HandshakePattern N = new("N", false, true, [[Token.E, Token.ES]]);
    private static readonly HandshakePattern K = new("K", true, true, [[Token.E, Token.ES, Token.SS]]);
    private static readonly HandshakePattern X = new("X", false, true, [[Token.E, Token.ES, Token.S, Token.SS]]);
    private static readonly HandshakePattern NN = new("NN", false, false, [[Token.E], [Token.E, Token.EE]]);
    private static readonly HandshakePattern NK = new("NK", false, true, [[Token.E, Token.ES], [Token.E, Token.EE]]);
    private static readonly HandshakePattern XX = new(
        "XX", false, false, [[Token.E], [Token.E, Token.EE, Token.S, Token.ES], [Token.S, Token.SE]]);
    private static readonly HandshakePattern XK = new(
        "XK", false, true, [[Token.E, Token.ES], [Token.E, Token.EE], [Token.S, Token.SE]]);
    private static readonly HandshakePattern IK = new(
        "IK", false, true, [[Token.E, Token.ES, Token.S, Token.SS], [Token.E, Token.EE, Token.SE]]);
    private static readonly HandshakePattern KK = new(
        "KK", true, true, [[Token.E, Token.ES, Token.SS], [Token.E, Token.EE, Token.SE]]);

    // Pre-messages of the supported patterns only ever carry a static key, so two flags describe them.
    private HandshakePattern(string name, bool initiatorStaticPreMessage, bool responderStaticPreMessage, Token[][] messages)
    {
        Name = name;
        InitiatorStaticPreMessage = initiatorStaticPreMessage;
        ResponderStaticPreMessage = responderStaticPreMessage;
        Messages = messages;
    }

    public string Name { get; }

    /// <summary>True for N, K and X: a single message, after which only the initiator may send.</summary>
    public bool IsOneWay => Messages.Length == 1;

    /// <summary><c>-&gt; s</c> before the handshake: the responder already knows the initiator's static key.</summary>
    internal bool InitiatorStaticPreMessage { get; }

    /// <summary><c>&lt;- s</c> before the handshake: the initiator already knows the responder's static key.</summary>
    internal bool ResponderStaticPreMessage { get; }

    /// <summary>Message i is sent by the initiator when i is even.</summary>
    internal Token[][] Messages { get; }

    public override string ToString() => Name;

    /// <summary>Whether this side needs a static key pair: it is pre-known to the peer or sent in a message.</summary>
    internal bool UsesLocalStatic(bool initiator)
    {
        if (initiator ? InitiatorStaticPreMessage : ResponderStaticPreMessage)
        {
            return true;
        }

        for (int i = initiator ? 0 : 1; i < Messages.Length; i += 2)
        {
            if (Array.IndexOf(Messages[i], Token.S) >= 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether this side must be given the peer's static public key before the handshake.</summary>
    internal bool KnowsRemoteStatic(bool initiator) =>
        initiator ? ResponderStaticPreMessage : InitiatorStaticPreMessage;

    internal static HandshakePattern? Find(string name) => name switch
    {
        "N" => N,
        "K" => K,
        "X" => X,
        "NN" => NN,
        "NK" => NK,
        "XX" => XX,
        "XK" => XK,
        "IK" => IK,
        "KK" => KK,
        _ => null,
    };
}
