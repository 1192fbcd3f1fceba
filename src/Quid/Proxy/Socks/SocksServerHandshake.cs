using System.Buffers.Binary;
using System.Net;
using System.Text;
using static System.FormattableString;

namespace Quid.Proxy.Socks;

/// <summary>
/// The server side of a SOCKS4, SOCKS4a or SOCKS5 handshake (RFC 1928, RFC 1929), over bytes only:
/// the caller owns the socket and the buffer, this object owns the protocol state. It never buffers
/// and never throws on input, so a hostile client can neither grow memory nor crash the listener.
/// </summary>
/// <remarks>
/// Loop: call <see cref="Step"/> with every byte received and not yet consumed. On
/// <see cref="SocksStepKind.Reply"/> send the reply, drop the consumed bytes and call again at once
/// (clients may pipeline the next message). On <see cref="SocksStepKind.NeedMore"/> read more. On
/// <see cref="SocksStepKind.Finished"/> act on the request and answer with <see cref="SocksReply"/>;
/// unconsumed bytes belong to the stream. On <see cref="SocksStepKind.Failed"/> send the reply and close.
/// </remarks>
public sealed class SocksServerHandshake
{
    /// <summary>
    /// The longest message a client can send: SOCKS4a with a 255-byte USERID and a 255-byte host name,
    /// both NUL-terminated. <see cref="Step"/> answers <see cref="SocksStepKind.NeedMore"/> only for
    /// shorter input, so a buffer of this size never deadlocks.
    /// </summary>
    public const int MaxMessageSize = Socks4HeaderLength + 2 * (MaxSocks4Field + 1);

    private const byte Socks4Version = 0x04;
    private const byte Socks5Version = 0x05;
    private const byte MethodNoAuth = 0x00;
    private const byte MethodUsernamePassword = 0x02;
    private const byte MethodNoneAcceptable = 0xFF;
    private const byte UserPassVersion = 0x01;
    private const byte AtypIPv4 = 0x01;
    private const byte AtypDomainName = 0x03;
    private const byte AtypIPv6 = 0x04;
    private const int Socks4HeaderLength = 8;
    private const int MaxSocks4Field = 255;
    private const int NulMissing = -1;
    private const int FieldTooLong = -2;

    private static readonly byte[] NoAcceptableMethodReply = [Socks5Version, MethodNoneAcceptable];
    private static readonly byte[] UserPassSucceededReply = [UserPassVersion, 0x00];
    private static readonly byte[] UserPassFailedReply = [UserPassVersion, 0x01];

    private readonly bool _acceptNoAuth;
    private readonly bool _acceptUsernamePassword;
    private State _state = State.Start;
    private SocksAuth _auth = SocksAuth.None;

    /// <summary>The flags choose the SOCKS5 methods offered; SOCKS4 has no negotiation and is always served.</summary>
    /// <exception cref="ArgumentException">Both methods are refused, so no SOCKS5 client could ever connect.</exception>
    public SocksServerHandshake(bool acceptNoAuth = true, bool acceptUsernamePassword = true)
    {
        if (!acceptNoAuth && !acceptUsernamePassword)
            throw new ArgumentException("At least one SOCKS5 method must be accepted.", nameof(acceptUsernamePassword));
        _acceptNoAuth = acceptNoAuth;
        _acceptUsernamePassword = acceptUsernamePassword;
    }

    private enum State
    {
        Start,
        Socks5UserPass,
        Socks5Request,
        Done,
    }

    /// <param name="input">Every byte received and not yet consumed, oldest first.</param>
    public SocksStep Step(ReadOnlySpan<byte> input)
    {
        SocksStep step = _state switch
        {
            State.Start => StepStart(input),
            State.Socks5UserPass => StepUserPass(input),
            State.Socks5Request => StepSocks5Request(input),
            _ => SocksStep.Fail(SocksErrorKind.HandshakeOver, "The handshake is already over."),
        };
        if (step.Kind is SocksStepKind.Finished or SocksStepKind.Failed)
            _state = State.Done;
        return step;
    }

    private SocksStep StepStart(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
            return SocksStep.NeedMore;
        return input[0] switch
        {
            Socks5Version => StepMethods(input),
            Socks4Version => StepSocks4(input),
            // No reply: whatever is talking, it is not SOCKS, and any answer would be noise to it.
            _ => SocksStep.Fail(SocksErrorKind.UnknownVersion, Invariant($"Unknown SOCKS version 0x{input[0]:X2}.")),
        };
    }

    // RFC 1928 §3: VER NMETHODS METHODS.
    private SocksStep StepMethods(ReadOnlySpan<byte> input)
    {
        if (input.Length < 2)
            return SocksStep.NeedMore;
        int count = input[1];
        int length = 2 + count;
        if (input.Length < length)
            return SocksStep.NeedMore;
        ReadOnlySpan<byte> methods = input.Slice(2, count);

        // Credentials win when both are possible: they are how a client asks for stream isolation.
        if (_acceptUsernamePassword && methods.Contains(MethodUsernamePassword))
        {
            _state = State.Socks5UserPass;
            return SocksStep.Send(length, [Socks5Version, MethodUsernamePassword]);
        }
        if (_acceptNoAuth && methods.Contains(MethodNoAuth))
        {
            _state = State.Socks5Request;
            return SocksStep.Send(length, [Socks5Version, MethodNoAuth]);
        }
        // Also covers NMETHODS = 0, which offers nothing.
        return SocksStep.Fail(SocksErrorKind.NoAcceptableMethod, "The client offered no acceptable authentication method.", NoAcceptableMethodReply);
    }

    // RFC 1929: VER ULEN UNAME PLEN PASSWD. Any credentials are accepted: they only select isolation.
    private SocksStep StepUserPass(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
            return SocksStep.NeedMore;
        if (input[0] != UserPassVersion)
            return SocksStep.Fail(SocksErrorKind.BadAuthVersion, Invariant($"Unknown username/password version 0x{input[0]:X2}."), UserPassFailedReply);
        if (input.Length < 2)
            return SocksStep.NeedMore;
        int userLength = input[1];
        if (userLength == 0)
            return SocksStep.Fail(SocksErrorKind.BadField, "Empty username.", UserPassFailedReply);
        if (input.Length < 2 + userLength + 1)
            return SocksStep.NeedMore;
        // RFC 1929 demands PLEN >= 1, but curl sends an empty password when given only a user.
        int passwordLength = input[2 + userLength];
        int length = 3 + userLength + passwordLength;
        if (input.Length < length)
            return SocksStep.NeedMore;

        _auth = SocksAuth.FromUsernamePassword(input.Slice(2, userLength), input.Slice(3 + userLength, passwordLength));
        _state = State.Socks5Request;
        return SocksStep.Send(length, UserPassSucceededReply);
    }

    // RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT.
    private SocksStep StepSocks5Request(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
            return SocksStep.NeedMore;
        if (input[0] != Socks5Version)
            return Socks5Fail(SocksErrorKind.BadField, Invariant($"Request version 0x{input[0]:X2}, expected 0x05."), SocksReplyCode.GeneralFailure);
        if (input.Length < 2)
            return SocksStep.NeedMore;
        var command = (SocksCommand)input[1];
        if (!IsSocks5Command(command))
            return Socks5Fail(SocksErrorKind.UnsupportedCommand, Invariant($"Unknown command 0x{input[1]:X2}."), SocksReplyCode.CommandNotSupported);
        // input[2] is RSV. It means nothing, so a non-zero value is ignored rather than fatal:
        // being lenient here costs nothing and spares odd clients.
        if (input.Length < 4)
            return SocksStep.NeedMore;

        int addressStart;
        int addressLength;
        switch (input[3])
        {
            case AtypIPv4:
                (addressStart, addressLength) = (4, 4);
                break;
            case AtypIPv6:
                (addressStart, addressLength) = (4, 16);
                break;
            case AtypDomainName:
                if (input.Length < 5)
                    return SocksStep.NeedMore;
                (addressStart, addressLength) = (5, input[4]);
                if (addressLength == 0)
                    return Socks5Fail(SocksErrorKind.BadHostName, "Empty host name.", SocksReplyCode.GeneralFailure);
                break;
            default:
                return Socks5Fail(SocksErrorKind.UnsupportedAddressType, Invariant($"Unknown address type 0x{input[3]:X2}."), SocksReplyCode.AddressTypeNotSupported);
        }
        int length = addressStart + addressLength + 2;
        if (input.Length < length)
            return SocksStep.NeedMore;

        ReadOnlySpan<byte> address = input.Slice(addressStart, addressLength);
        ushort port = BinaryPrimitives.ReadUInt16BigEndian(input.Slice(addressStart + addressLength));
        SocksTarget target;
        if (input[3] == AtypDomainName)
        {
            if (!SocksTarget.IsValidHostName(address))
                return Socks5Fail(SocksErrorKind.BadHostName, "Host name holds bytes outside printable ASCII.", SocksReplyCode.GeneralFailure);
            target = new SocksTarget(Encoding.ASCII.GetString(address), port);
        }
        else
        {
            target = new SocksTarget(new IPAddress(address), port);
        }
        return SocksStep.Finish(length, new SocksRequest(SocksVersion.Socks5, command, target, _auth));
    }

    // SOCKS4: VN CD DSTPORT DSTIP USERID NUL; SOCKS4a appends HOSTNAME NUL when DSTIP is 0.0.0.x, x != 0.
    private static SocksStep StepSocks4(ReadOnlySpan<byte> input)
    {
        if (input.Length < 2)
            return SocksStep.NeedMore;
        var command = (SocksCommand)input[1];
        if (command is not (SocksCommand.Connect or SocksCommand.Bind))
            return Socks4Fail(SocksErrorKind.UnsupportedCommand, Invariant($"Unknown SOCKS4 command 0x{input[1]:X2}."));
        if (input.Length < Socks4HeaderLength)
            return SocksStep.NeedMore;
        ushort port = BinaryPrimitives.ReadUInt16BigEndian(input.Slice(2));
        ReadOnlySpan<byte> ip = input.Slice(4, 4);

        int userIdEnd = FindNul(input, Socks4HeaderLength);
        if (userIdEnd == NulMissing)
            return SocksStep.NeedMore;
        if (userIdEnd == FieldTooLong)
            return Socks4Fail(SocksErrorKind.Oversized, "SOCKS4 USERID longer than 255 bytes.");
        var auth = SocksAuth.FromSocks4UserId(input[Socks4HeaderLength..userIdEnd]);
        int length = userIdEnd + 1;

        if (ip[0] != 0 || ip[1] != 0 || ip[2] != 0 || ip[3] == 0)
            return SocksStep.Finish(length, new SocksRequest(SocksVersion.Socks4, command, new SocksTarget(new IPAddress(ip), port), auth));

        int hostEnd = FindNul(input, length);
        if (hostEnd == NulMissing)
            return SocksStep.NeedMore;
        if (hostEnd == FieldTooLong)
            return Socks4Fail(SocksErrorKind.Oversized, "SOCKS4a host name longer than 255 bytes.");
        ReadOnlySpan<byte> host = input[length..hostEnd];
        if (!SocksTarget.IsValidHostName(host))
            return Socks4Fail(SocksErrorKind.BadHostName, "SOCKS4a host name is empty or holds bytes outside printable ASCII.");
        var target = new SocksTarget(Encoding.ASCII.GetString(host), port);
        return SocksStep.Finish(hostEnd + 1, new SocksRequest(SocksVersion.Socks4a, command, target, auth));
    }

    /// <summary>
    /// The index of the NUL ending the field at <paramref name="start"/>; <see cref="NulMissing"/> if
    /// the input stops first, <see cref="FieldTooLong"/> if 256 bytes pass without one.
    /// </summary>
    private static int FindNul(ReadOnlySpan<byte> input, int start)
    {
        ReadOnlySpan<byte> window = input[start..];
        if (window.Length > MaxSocks4Field + 1)
            window = window[..(MaxSocks4Field + 1)];
        int index = window.IndexOf((byte)0);
        if (index >= 0)
            return start + index;
        return window.Length > MaxSocks4Field ? FieldTooLong : NulMissing;
    }

    private static bool IsSocks5Command(SocksCommand command) =>
        command is SocksCommand.Connect or SocksCommand.Bind or SocksCommand.UdpAssociate
            or SocksCommand.Resolve or SocksCommand.ResolvePtr;

    private static SocksStep Socks5Fail(SocksErrorKind kind, string message, SocksReplyCode code) =>
        SocksStep.Fail(kind, message, SocksReply.Encode(SocksVersion.Socks5, code));

    private static SocksStep Socks4Fail(SocksErrorKind kind, string message) =>
        SocksStep.Fail(kind, message, SocksReply.Encode(SocksVersion.Socks4, SocksReplyCode.GeneralFailure));
}
