using System.Buffers;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Cache;
using Quid.Credits;
using Quid.Crypto;
using Quid.Links;
using Quid.Links.PortMapping;
using Quid.Programs;
using Quid.Proxy.Http;
using Quid.Proxy.Socks;
using Quid.Services;
using Quid.Services.Share;
using Quid.Wire;
using Quid.Wire.Http;

namespace Quid.Fuzz;

/// <summary>
/// One target per parser. Each lets the parser's own typed error pass (that is a refusal, not a
/// crash) and lets anything else escape, which AFL++ records as a crash. A target also checks the
/// parser's contract and throws <see cref="ContractBroken"/> when it is broken.
/// </summary>
internal static class Targets
{
    public static readonly IReadOnlyDictionary<string, Action<byte[]>> All = new Dictionary<string, Action<byte[]>>
    {
        ["socks"] = Socks,
        ["http-request"] = HttpRequest,
        ["http-response"] = HttpResponse,
        ["http-chunked"] = HttpChunked,
        ["link-handshake"] = LinkHandshakeMessages,
        ["link-frame"] = LinkFrames,
        ["cell"] = Cells,
        ["create"] = Create,
        ["created"] = Created,
        ["relay"] = Relay,
        ["control"] = Control,
        ["descriptor"] = DescriptorDecode,
        ["pcp"] = PcpMap,
        ["natpmp"] = NatPmpResponses,
        ["port-mapper"] = PortMapperSteps,
        ["session-address"] = SessionAddressText,
        ["service-record"] = ServiceRecordDecode,
        ["introduction"] = IntroductionOpen,
        ["introduction-gate"] = IntroductionGateOffer,
        ["share-request"] = ShareRequest,
        ["cache-exchange"] = CacheExchange,
        ["desk"] = Desk,
        ["credit-card"] = CreditCardText,
        ["program"] = ProgramModule,
        ["program-post"] = ProgramPostFrame,
    };

    /// <summary>The nonce the pcp target expects, and its seeds carry.</summary>
    internal static readonly byte[] PcpNonce = [.. Enumerable.Range(0x10, Pcp.NonceSize).Select(i => (byte)i)];

    // Made once, and lazily: key generation per input would measure Ed25519, not the parser, and
    // instrumented code must not run before Fuzzer.Run has set up AFL++'s shared memory.
    private static readonly Lazy<NodeIdentity> Identity = new(() => NodeIdentity.Generate(out _));

    /// <summary>
    /// The hop the circuit targets answer as. Fixed, so that the seeds (made in another process)
    /// name it, and a Create reaches the Diffie-Hellman steps instead of stopping at "not me".
    /// </summary>
    internal static readonly byte[] HopSeed = [.. Enumerable.Range(0x40, NodeIdentity.SeedSize).Select(i => (byte)i)];
    private static readonly Lazy<NodeIdentity> Hop = new(() => NodeIdentity.FromSeed(HopSeed));
    private static readonly Lazy<Ntor.Client> HopClient = new(() => Ntor.Start(Hop.Value.Id, Hop.Value.LinkPublicKey));

    /// <summary>The period (of 1440 minutes) whose blinded key of <see cref="HopSeed"/> the introduction target opens with, and its seeds are sealed to.</summary>
    internal const ulong IntroductionPeriod = 20_000;
    private static readonly Lazy<KeyBlinding.KeyPair> IntroductionKeys = new(() => KeyBlinding.KeyPair.FromSeed(HopSeed, IntroductionPeriod, 1440));

    /// <summary>The Noise split key the link-frame target's receiving side is keyed from, and its seeds sealed with.</summary>
    internal static readonly byte[] FrameKey = [.. Enumerable.Range(0x80, 32).Select(i => (byte)i)];
    private static readonly byte[] FrameCells = new byte[LinkFraming.MaxCellsPerFrame * Cell.Size];

    /// <summary>
    /// The SOCKS handshake as the listener drives it: the input arrives in reads of a size chosen by
    /// its first byte, replies drop what they consumed, and the loop stops when the input runs out.
    /// </summary>
    private static void Socks(byte[] input)
    {
        if (input.Length == 0) return;
        int readSize = 1 + input[0] % 64;
        var handshake = (input[0] >> 6) switch
        {
            0 => new SocksServerHandshake(acceptNoAuth: true, acceptUsernamePassword: false),
            1 => new SocksServerHandshake(acceptNoAuth: false, acceptUsernamePassword: true),
            _ => new SocksServerHandshake(),
        };
        var buffer = new List<byte>();
        int next = 1;
        while (true)
        {
            var step = handshake.Step(buffer.ToArray());
            Check(step.Consumed >= 0 && step.Consumed <= buffer.Count, "consumed more than it was given");
            switch (step.Kind)
            {
                case SocksStepKind.Reply:
                    Check(step.Consumed > 0, "a reply that consumed nothing would loop forever");
                    buffer.RemoveRange(0, step.Consumed);
                    continue;
                case SocksStepKind.Finished:
                    Check(step.Request is not null && step.Consumed > 0, "finished without a request");
                    return;
                case SocksStepKind.Failed:
                    Check(step.Error is not null, "failed without an error");
                    return;
            }
            Check(buffer.Count < SocksServerHandshake.MaxMessageSize, "asked for more with a full message's worth buffered");
            if (next >= input.Length) return;
            int take = Math.Min(readSize, input.Length - next);
            buffer.AddRange(input.AsSpan(next, take));
            next += take;
        }
    }

    /// <summary>
    /// A request head as the HTTP proxy reads it (in reads sized by the first byte, against a
    /// small limit so the size check is reached too), then the proxy's decision about it.
    /// </summary>
    private static void HttpRequest(byte[] input)
    {
        if (input.Length == 0) return;
        var parser = new HttpHeadParser(4096);
        int readSize = 1 + input[0] % 128;
        for (int length = Math.Min(1 + readSize, input.Length); ; length = Math.Min(length + readSize, input.Length))
        {
            var parse = parser.ParseRequest(input.AsSpan(1, length - 1));
            CheckParse(parse.Status, parse.Consumed, parse.Head, parse.Error, length - 1);
            if (parse.Status == HttpParseStatus.Complete)
            {
                var request = ProxyRequest.Interpret(parse.Head!);
                if (request is ForwardRequest forward)
                {
                    // What goes on must itself be one well-formed head, ending exactly where it should.
                    var again = new HttpHeadParser(64 * 1024).ParseRequest(forward.Head);
                    // Only the field count may grow past the limit: Connection and TE are added.
                    if (again.Error?.Kind == HttpErrorKind.TooManyFields) return;
                    Check(again.Status == HttpParseStatus.Complete && again.Consumed == forward.Head.Length, "the forwarded head does not parse back whole");
                    Check(!again.Head!.Fields.Any(f => f.Is("Proxy-Authorization") || f.Is("Proxy-Connection") || f.Is("Keep-Alive")), "a hop-by-hop field was forwarded");
                }
                Check(request is not RefusedRequest { Error: null }, "a refusal without a reason");
                return;
            }
            if (parse.Status == HttpParseStatus.Failed || length == input.Length) return;
        }
    }

    /// <summary>A destination's response heads (interim ones first, as the proxy reads them) and their rewriting for the application.</summary>
    private static void HttpResponse(byte[] input)
    {
        var parser = new HttpHeadParser(4096);
        ReadOnlySpan<byte> rest = input;
        while (true)
        {
            var parse = parser.ParseResponse(rest);
            CheckParse(parse.Status, parse.Consumed, parse.Head, parse.Error, rest.Length);
            if (parse.Status != HttpParseStatus.Complete) return;
            var rewritten = ProxyResponses.Forward(parse.Head!, dechunk: ProxyResponses.IsChunkedOnly(parse.Head!));
            var again = new HttpHeadParser(64 * 1024).ParseResponse(rewritten);
            Check(again.Status == HttpParseStatus.Complete && again.Consumed == rewritten.Length, "the rewritten head does not parse back whole");
            if (!parse.Head!.IsInterim) return;
            rest = rest[parse.Consumed..];
        }
    }

    /// <summary>A chunked body split into reads sized by the first byte; the data found must not depend on the split.</summary>
    private static void HttpChunked(byte[] input)
    {
        if (input.Length == 0) return;
        var body = input.AsSpan(1);
        var whole = Dechunk(body, body.Length);
        Check(whole == Dechunk(body, 1 + input[0] % 64), "the content depends on how the body was split");
    }

    private static (int End, int DataBytes, bool Failed) Dechunk(ReadOnlySpan<byte> body, int readSize)
    {
        var reader = new ChunkedBodyReader();
        int at = 0, data = 0;
        for (int end = Math.Min(readSize, body.Length); ; end = Math.Min(end + readSize, body.Length))
        {
            while (at < end && !reader.IsDone)
            {
                var run = reader.Read(body[at..end]);
                Check(run.Length >= 0 && run.Length <= end - at, "a run longer than its input");
                if (run.Kind == ChunkedRunKind.Failed) return (-1, data, true);
                // The proxy opens nothing until a first size line is read: no content may come before one.
                Check(reader.FirstChunkLineRead || (run.Kind == ChunkedRunKind.Framing && !reader.IsDone), "content or the end before a chunk-size line");
                if (run.Kind == ChunkedRunKind.Data) data += run.Length;
                at += run.Length;
            }
            if (reader.IsDone || end == body.Length) return (reader.IsDone ? at : -1, data, false);
        }
    }

    private static void CheckParse(HttpParseStatus status, int consumed, HttpHead? head, HttpError? error, int length)
    {
        Check(consumed >= 0 && consumed <= length, "consumed more than it was given");
        Check((status == HttpParseStatus.Complete) == (head is not null) && (status == HttpParseStatus.Failed) == (error is not null), "a result inconsistent with its status");
        Check(status != HttpParseStatus.NeedMore || length < 4096, "asked for more past the size limit");
    }

    /// <summary>
    /// The first byte picks the side; the rest is what the peer sends. Only message 1 is
    /// unauthenticated, so this mostly exercises framing, lengths and Noise's refusals.
    /// </summary>
    private static void LinkHandshakeMessages(byte[] input)
    {
        if (input.Length == 0) return;
        bool initiator = (input[0] & 1) != 0;
        using var handshake = initiator ? LinkHandshake.Initiate(Identity.Value) : LinkHandshake.Respond(Identity.Value);
        handshake.Start();
        ReadOnlySpan<byte> rest = input.AsSpan(1);
        try
        {
            while (!handshake.IsComplete)
            {
                handshake.Receive(rest, out int consumed);
                Check(consumed >= 0 && consumed <= rest.Length, "consumed more than it was given");
                if (consumed == 0) return;
                rest = rest[consumed..];
            }
        }
        catch (LinkException)
        {
            // A refused handshake closes the connection: the expected outcome for most inputs.
        }
    }

    /// <summary>
    /// Frames as a link's read loop meets them: the rest of the input after the first byte, whole
    /// and in reads sized by the first byte. What is decoded, and where it fails, must not depend
    /// on the split; a frame is never asked for past the largest a frame can be.
    /// </summary>
    private static void LinkFrames(byte[] input)
    {
        if (input.Length == 0) return;
        var stream = input.AsSpan(1);
        Check(Frames(stream, stream.Length) == Frames(stream, 1 + input[0] * 16), "the frames decoded depend on how the bytes were split");
    }

    private static (int Frames, int CellBytes, bool Failed) Frames(ReadOnlySpan<byte> input, int readSize)
    {
        using var receive = new LinkCipher(FrameKey);
        int at = 0, frames = 0, cellBytes = 0;
        for (int end = Math.Min(readSize, input.Length); ; end = Math.Min(end + readSize, input.Length))
        {
            while (true)
            {
                OperationStatus status;
                int consumed, cells;
                try
                {
                    status = LinkFraming.Decode(receive, input[at..end], FrameCells, out consumed, out cells);
                }
                catch (LinkException)
                {
                    // A malformed or forged frame: the link closes.
                    return (frames, cellBytes, true);
                }
                if (status != OperationStatus.Done)
                {
                    Check(status == OperationStatus.NeedMoreData && end - at < LinkFraming.MaxFrameSize, "asked for more with a whole frame's worth buffered");
                    break;
                }
                Check(consumed > LinkFraming.LengthPrefix && consumed <= end - at, "consumed more than it was given");
                Check(cells > 0 && cells % Cell.Size == 0 && cells <= FrameCells.Length, "a frame that is not whole cells");
                at += consumed;
                frames++;
                cellBytes += cells;
            }
            if (end == input.Length) return (frames, cellBytes, false);
        }
    }

    /// <summary>A sequence of cells as a link's read loop sees them once decrypted: each validated, control fragments joined and decoded.</summary>
    private static void Cells(byte[] input)
    {
        var reassembler = new ControlReassembler();
        for (int offset = 0; offset < input.Length; offset += Cell.Size)
        {
            var cell = input.AsSpan(offset, Math.Min(Cell.Size, input.Length - offset));
            try
            {
                Cell.Validate(cell);
                var body = Cell.Body(cell);
                switch (Cell.Command(cell))
                {
                    case CellCommand.Control when reassembler.Add(body) is { } message:
                        ControlCodec.Decode(message);
                        break;
                    case CellCommand.Relay or CellCommand.RelayEarly:
                        RelayMessage(body[..RelayCell.MessageSize]);
                        break;
                    case CellCommand.Create:
                        CreateBody.TryRead(body, out _);
                        break;
                    case CellCommand.Created:
                        CreatedBody.Read(body);
                        break;
                }
            }
            catch (WireException)
            {
                // The link would close here; the next cell tests the reassembler after a refusal.
            }
        }
    }

    /// <summary>A Create cell's body as a hop reads it, then the hop's half of ntor on the request.</summary>
    private static void Create(byte[] input)
    {
        if (!CreateBody.TryRead(input, out var create)) return;
        var body = new byte[Cell.BodySize];
        new CreateBody(create.NtorRequest).Write(body);
        Check(CreateBody.TryRead(body, out var again) && again.NtorRequest.AsSpan().SequenceEqual(create.NtorRequest), "a Create does not read back as written");
        var reply = new byte[Ntor.ReplySize];
        try
        {
            Ntor.Respond(Hop.Value.Id, Hop.Value.LinkKey, create.NtorRequest, reply, OnionLayer.KeyMaterialSize);
        }
        catch (CircuitHandshakeException)
        {
            // Refused: the hop answers Destroy.
        }
    }

    /// <summary>A Created cell's body as the origin (or an extending hop) reads it, then the client's half of ntor on the reply.</summary>
    private static void Created(byte[] input)
    {
        try
        {
            var created = CreatedBody.Read(input);
            HopClient.Value.Finish(created.NtorReply, OnionLayer.KeyMaterialSize);
        }
        catch (WireException)
        {
            // Refused: the link closes.
        }
        catch (CircuitHandshakeException)
        {
            // The hop's reply does not prove its key: the build fails.
        }
    }

    private static void Relay(byte[] input)
    {
        try
        {
            RelayMessage(input);
        }
        catch (WireException)
        {
            // Refused: the circuit is destroyed.
        }
    }

    /// <summary>
    /// A relay message once its layers are off, and its data as the end that receives it reads it.
    /// Whatever reads must write back to bytes that read the same.
    /// </summary>
    private static void RelayMessage(ReadOnlySpan<byte> body)
    {
        var message = RelayCell.Read(body);
        Check(message.Data.Length <= body.Length - RelayCell.HeaderSize, "relay data past the end of the message");
        var data = message.Data;
        Span<byte> again = stackalloc byte[RelayCell.MaxData];
        switch (message.Command)
        {
            case RelayCommand.Begin or RelayCommand.Resolve:
                var target = StreamTarget.Decode(data);
                Check(target.Host.Length is > 0 and <= StreamTarget.MaxHostLength, "a decoded host outside 1..255");
                Check(StreamTarget.Decode(again[..target.Encode(again)]) == target, "a target does not read back as written");
                break;
            case RelayCommand.Connected:
                var connected = ConnectedBody.Read(data);
                Check(ConnectedBody.Read(again[..connected.Write(again)]).Address.Equals(connected.Address.IsIPv4MappedToIPv6 ? connected.Address.MapToIPv4() : connected.Address), "an address does not read back as written");
                break;
            case RelayCommand.Resolved:
                var resolved = ResolvedBody.Read(data);
                var reread = ResolvedBody.Read(again[..resolved.Write(again)]);
                Check(reread.Failure == resolved.Failure && reread.Addresses.Count == resolved.Addresses.Count, "a Resolved does not read back as written");
                break;
            case RelayCommand.End:
                var end = EndBody.Read(data);
                Check(EndBody.Read(again[..end.Write(again)]) == end && data.Length == EndBody.Size, "an End does not read back as written");
                break;
            case RelayCommand.Extend:
                var extend = ExtendBody.Read(data);
                Check(again[..extend.Write(again)].SequenceEqual(data), "an Extend does not write back the bytes it was read from");
                break;
            case RelayCommand.Extended:
                var extended = ExtendedBody.Read(data);
                Check(again[..extended.Write(again)].SequenceEqual(data), "an Extended does not write back the bytes it was read from");
                break;
            case RelayCommand.ExtendFailed:
                var failed = ExtendFailedBody.Read(data);
                Check(again[..failed.Write(again)].SequenceEqual(data), "an ExtendFailed does not write back the bytes it was read from");
                break;
            case RelayCommand.EstablishRendezvous:
                var establish = EstablishRendezvousBody.Read(data);
                Check(again[..establish.Write(again)].SequenceEqual(data), "an EstablishRendezvous does not write back the bytes it was read from");
                break;
            case RelayCommand.Rendezvous:
                var rendezvous = RendezvousBody.Read(data);
                Check(again[..rendezvous.Write(again)].SequenceEqual(data), "a Rendezvous does not write back the bytes it was read from");
                break;
            case RelayCommand.Rendezvous2:
                var rendezvous2 = Rendezvous2Body.Read(data);
                Check(again[..rendezvous2.Write(again)].SequenceEqual(data), "a Rendezvous2 does not write back the bytes it was read from");
                break;
            case RelayCommand.RendezvousFailed:
                var refused = RendezvousFailedBody.Read(data);
                Check(again[..refused.Write(again)].SequenceEqual(data), "a RendezvousFailed does not write back the bytes it was read from");
                break;
            case RelayCommand.RendezvousEstablished or RelayCommand.RendezvousJoined:
                EmptyBody.Read(data);
                break;
            case RelayCommand.ServiceLookup:
                var lookup = ServiceLookupBody.Read(data);
                Check(again[..lookup.Write(again)].SequenceEqual(data), "a ServiceLookup does not write back the bytes it was read from");
                break;
            case RelayCommand.ServiceLookupAnswered:
                var answered = ServiceLookupAnsweredBody.Read(data);
                Check(answered.ToBytes().AsSpan().SequenceEqual(data), "a ServiceLookupAnswered does not write back the bytes it was read from");
                break;
            case RelayCommand.EstablishIntroduction:
                Check(ServiceRecord.Decode(data).Encoded.AsSpan().SequenceEqual(data), "an EstablishIntroduction's record does not write back the bytes it was read from");
                break;
            case RelayCommand.IntroductionEstablished:
                IntroductionEstablishedBody.Read(data);
                break;
            case RelayCommand.Introduction:
                Check(IntroductionBody.Read(data).AsSpan().SequenceEqual(data), "an Introduction is not the bytes it was read from");
                break;
            case RelayCommand.Echo or RelayCommand.EchoReply:
                if (EchoProbe.TryRead(data, out var echo))
                {
                    echo.Write(again);
                    Check(EchoProbe.TryRead(again, out var echoed) && echoed == echo, "an echo's marks do not read back as written");
                }
                break;
        }
    }

    private static void Control(byte[] input)
    {
        try
        {
            ControlCodec.Decode(input);
        }
        catch (WireException)
        {
            // Refused: the link closes.
        }
    }

    /// <summary>A desk frame from anyone's circuit (PROTOCOL §10.4): only a <see cref="WireException"/> may escape, and what decodes encodes back to itself.</summary>
    private static void Desk(byte[] input)
    {
        if (input.Length < DeskCodec.LengthSize) return;
        DeskMessage message;
        try
        {
            int length = DeskCodec.ReadLength(input);
            if (input.Length - DeskCodec.LengthSize < length) return;
            message = DeskCodec.Decode(input.AsSpan(DeskCodec.LengthSize, length));
        }
        catch (WireException)
        {
            return;
        }
        var again = DeskCodec.Encode(message);
        Check(again.AsSpan(DeskCodec.LengthSize).SequenceEqual(input.AsSpan(DeskCodec.LengthSize, again.Length - DeskCodec.LengthSize))
            && again.Length - DeskCodec.LengthSize == DeskCodec.ReadLength(input), "a desk frame does not encode back to its bytes");
    }

    /// <summary>
    /// A frame's body on a program's stream (PROTOCOL §11.3): a post as the host reads it, or, when
    /// the first byte is 0xFF, an answer as the poster reads it. Only a <see cref="WireException"/>
    /// may escape, and what decodes must encode back to the same bytes.
    /// </summary>
    private static void ProgramPostFrame(byte[] input)
    {
        bool answer = input.Length > 0 && input[0] == 0xFF;
        var body = answer ? input.AsSpan(1) : input;
        byte[] again;
        try
        {
            again = answer ? ProgramPostCodec.Encode(ProgramPostCodec.DecodeAnswer(body)) : ProgramPostCodec.Encode(ProgramPostCodec.DecodePost(body));
        }
        catch (WireException)
        {
            return;
        }
        Check(again.AsSpan(ProgramPostCodec.LengthSize).SequenceEqual(body), "a program frame does not encode back to its bytes");
    }

    /// <summary>A credit card, as UTF-8 text (PROTOCOL §10.5): only a <see cref="WireException"/> may escape, and what reads writes back to a card that reads the same.</summary>
    // One engine for every input, made lazily for the reason Identity is.
    private static readonly Lazy<ProgramEngine> Programs = new(() => new ProgramEngine(TimeProvider.System));
    private static readonly ProgramLimits FuzzLimits = new() { CallDeadline = TimeSpan.FromMilliseconds(100), StoreBytes = 4096 };

    /// <summary>A module as a host takes one from anyone (PROTOCOL §11): refused with a reason, or run within its limits.</summary>
    private static void ProgramModule(byte[] input)
    {
        HostedProgram program;
        try
        {
            program = HostedProgram.Load(Programs.Value, input, FuzzLimits, fuel: 200_000);
        }
        catch (ProgramException)
        {
            return;
        }
        using (program)
        {
            try
            {
                program.Deliver("fuzz"u8);
                program.Wake();
            }
            catch (ProgramException)
            {
                // A program that traps, runs out of fuel or of time is stopped, not a crash.
            }
            Check(program.StoredBytes <= FuzzLimits.StoreBytes, "a program's store holds more than its limit");
            Check(program.TakeOutbox().Count <= 2 * HostedProgram.MaxOutbox, "a program sent more than its outbox takes");
        }
    }

    private static void CreditCardText(byte[] input)
    {
        IReadOnlyList<Credit> credits;
        try
        {
            credits = CreditCard.Read(System.Text.Encoding.UTF8.GetString(input));
        }
        catch (WireException)
        {
            return;
        }
        var again = CreditCard.Read(CreditCard.Write(credits));
        Check(again.Count == credits.Count && again.Zip(credits).All(p => p.First.Issuer == p.Second.Issuer && p.First.Epoch == p.Second.Epoch
            && p.First.Order == p.Second.Order && p.First.Input.AsSpan().SequenceEqual(p.Second.Input) && p.First.Output.AsSpan().SequenceEqual(p.Second.Output)),
            "a card does not read back to the credits it was written from");
    }

    /// <summary>
    /// A service record from any neighbour (PROTOCOL §9.9): decoding refuses with a
    /// <see cref="WireException"/> only, and checking what decoded answers, never throws.
    /// </summary>
    private static void ServiceRecordDecode(byte[] input)
    {
        ServiceRecord record;
        try
        {
            record = ServiceRecord.Decode(input);
        }
        catch (WireException)
        {
            return;
        }
        record.Verify(record.Published, TimeSpan.FromMinutes(5));
        Check(record.Encoded.AsSpan().SequenceEqual(input), "a record does not encode back to its input");
    }

    /// <summary>
    /// An introduction from any client (PROTOCOL §9.12), opened with a fixed blinded key pair:
    /// only <see cref="IntroductionException"/> may escape, and what opens has the replay key of
    /// its input and rebuilds a whole handshake request.
    /// </summary>
    private static void IntroductionOpen(byte[] input)
    {
        Introduction introduction;
        try
        {
            introduction = Introduction.Open(IntroductionKeys.Value, input);
        }
        catch (IntroductionException)
        {
            return;
        }
        Check(Introduction.ReplayKey(input).SequenceEqual(input.AsSpan(1, 32)), "an introduction's replay key is not its ephemeral key");
        Check(introduction.ClientKey.Length == Introduction.ClientKeySize, "an opened introduction's client key is not 32 bytes");
    }

    /// <summary>The epoch the introduction-gate target's clock is in, and its seeds' work is for.</summary>
    internal static readonly DateTimeOffset GateNow = new(2026, 12, 6, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// An introduction as an introduction point is handed it: <see cref="IntroductionWork.TryRead"/>,
    /// then a fresh <see cref="IntroductionGate"/> offered it twice. It must never throw, pass only
    /// 121-byte introductions of version 1, and pass the same one once.
    /// </summary>
    private static void IntroductionGateOffer(byte[] input)
    {
        if (IntroductionWork.TryRead(input, IntroductionWork.Epoch(GateNow), out var introduction, out int effort))
            Check(introduction.Length == Introduction.SealedSize && effort is >= 0 and <= 256, "a read introduction of the wrong size or effort");
        var gate = new IntroductionGate(new FixedTime(GateNow));
        var passed = gate.Offer(input).Concat(gate.Offer(input)).ToList();
        Check(passed.Count <= 1, "the same introduction passed twice");
        Check(passed.All(p => p.Length == Introduction.SealedSize && p[0] == Introduction.Version), "a gate passed what no service opens");
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    /// <summary>
    /// A name typed or pasted by anyone: <see cref="SessionAddress"/> and <see cref="ServiceSecret"/>
    /// text, every byte as a Latin-1 character. A parsed address must print back to itself.
    /// </summary>
    private static void SessionAddressText(byte[] input)
    {
        string text = System.Text.Encoding.Latin1.GetString(input);
        try
        {
            var address = SessionAddress.Parse(text);
            Check(SessionAddress.Parse(address.ToString()) == address, "an address does not parse back from its own text");
        }
        catch (SessionAddressException)
        {
            // Refused: the name is not an address.
        }
        if (ServiceSecret.TryParse(text, out var secret))
        {
            using (secret)
                Check(ServiceSecret.Parse(secret!.ToText()).ToText() == secret.ToText(), "a secret does not parse back from its own text");
        }
    }

    // One shared folder for every input, made once; a file in it lets requests reach the range code.
    private static readonly Lazy<ShareServer> Share = new(() =>
    {
        string folder = Directory.CreateTempSubdirectory("quid-fuzz-share-").FullName;
        File.WriteAllBytes(Path.Join(folder, "file.bin"), new byte[100_000]);
        Directory.CreateDirectory(Path.Join(folder, "sub"));
        return new ShareServer(new SharedFiles([folder]), TimeProvider.System, NullLogger.Instance);
    });

    /// <summary>
    /// A connection's bytes to the share server, as a stranger on a rendezvous would send them:
    /// whatever comes, <see cref="ShareServer.ServeAsync"/> answers or closes, and never throws.
    /// </summary>
    private static void ShareRequest(byte[] input)
    {
        using var connection = new ReplayConnection(input);
        Share.Value.ServeAsync(connection, CancellationToken.None).GetAwaiter().GetResult();
    }

    private static readonly Lazy<ExitCache> Cache = new(() => new ExitCache(
        CacheStore.Open(Directory.CreateTempSubdirectory("quid-fuzz-cache-").FullName, 8 << 20, TimeProvider.System, NullLogger.Instance),
        TimeProvider.System, NullLogger.Instance));
    private static readonly object[] Circuits = [new(), new()];

    /// <summary>
    /// The exit cache's relay between a client and an origin that each sent their part and closed:
    /// the first two bytes say how much of the rest is the client's, the third which circuit asks.
    /// The cache is kept from one input to the next, so hits and revalidations are reached too. It
    /// must end, never throw, and keep its store within the quota.
    /// </summary>
    private static void CacheExchange(byte[] input)
    {
        if (input.Length < 3) return;
        int split = Math.Min(input.Length - 3, (input[0] << 8) | input[1]);
        using var client = new ReplayConnection(input[3..(3 + split)]);
        using var origin = new ReplayConnection(input[(3 + split)..]);
        Cache.Value.RelayAsync(client, origin, "example.org", 80, Circuits[input[2] & 1], (_, _) => Task.CompletedTask).GetAwaiter().GetResult();
        Check(Cache.Value.Store.Used <= Cache.Value.Store.Quota, "the cache grew past its quota");
    }

    /// <summary>A connection whose client sent <c>input</c> and closed its side; what the server writes is dropped.</summary>
    private sealed class ReplayConnection(byte[] input) : Stream
    {
        private readonly MemoryStream _input = new(input, writable: false);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => _input.Read(buffer, offset, count);
        public override void Write(byte[] buffer, int offset, int count) { }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private static void DescriptorDecode(byte[] input)
    {
        try
        {
            var descriptor = Descriptor.Decode(input);
            Check(descriptor.Encoded.AsSpan().SequenceEqual(input), "a decoded descriptor must keep its exact bytes");
        }
        catch (WireException)
        {
            // Refused: the descriptor is dropped.
        }
    }

    /// <summary>A gateway's answer to our MAP request: a success must carry the MAP fields, and a mapped IPv4 address comes out as IPv4.</summary>
    private static void PcpMap(byte[] input)
    {
        try
        {
            var response = Pcp.DecodeMapResponse(input, PcpNonce);
            Check(response.Result != PcpResult.Success || input.Length >= Pcp.MapSize, "a success without the MAP fields");
            Check(!response.ExternalAddress.IsIPv4MappedToIPv6, "an IPv4-mapped address left mapped");
        }
        catch (WireException)
        {
            // Refused: the datagram is ignored, as RFC 6887 says.
        }
    }

    /// <summary>The first byte picks the decoder (header, external address, TCP mapping); a success must be whole.</summary>
    private static void NatPmpResponses(byte[] input)
    {
        if (input.Length == 0) return;
        var data = input.AsSpan(1);
        try
        {
            switch (input[0] % 3)
            {
                case 0:
                    Check((NatPmp.DecodeHeader(data).Opcode & NatPmp.ResponseBit) != 0, "a request read as a response");
                    break;
                case 1:
                    Check(NatPmp.DecodeExternalAddress(data).Result != NatPmpResult.Success || data.Length == NatPmp.ExternalAddressResponseSize, "a success of the wrong size");
                    break;
                default:
                    Check(NatPmp.DecodeMapTcp(data).Result != NatPmpResult.Success || data.Length == NatPmp.MapResponseSize, "a success of the wrong size");
                    break;
            }
        }
        catch (WireException)
        {
            // Refused: the datagram is ignored, as RFC 6886 says.
        }
    }

    /// <summary>
    /// The port mapper fed a gateway's datagrams, each a length byte and that many bytes, with the
    /// clock moved on by a byte before each (in seconds, or to the wake asked for when it is 0).
    /// Version-2 datagrams get the mapper's own nonce, so they reach past the nonce check. It
    /// must never throw, and must only ever send well-formed requests, waking when it says.
    /// </summary>
    private static void PortMapperSteps(byte[] input)
    {
        var time = new SteppedTime();
        var mapper = new PortMapper(System.Net.IPAddress.Parse("10.0.0.2"), 7843, time);
        var step = mapper.Start();
        byte[] nonce = step.Send[0][24..36];
        for (int at = 0; at + 1 < input.Length;)
        {
            CheckRequests(step);
            int advance = input[at++];
            int length = Math.Min(input[at++], input.Length - at);
            time.Now = advance == 0 && step.WakeAt is { } wake ? Max(wake, time.Now) : time.Now + TimeSpan.FromSeconds(advance);
            if (length == 0)
            {
                step = (advance & 1) == 0 ? mapper.Wake() : mapper.Stop();
                continue;
            }
            var datagram = input.AsSpan(at, length).ToArray();
            at += length;
            if (datagram[0] == Pcp.Version && datagram.Length >= 36) nonce.CopyTo(datagram, 24);
            step = mapper.Receive(datagram);
        }
        CheckRequests(step);
        Check(mapper.State == MapperState.Mapped == (mapper.Current is not null) || mapper.State == MapperState.Deleting, "a mapping held outside the Mapped state");
    }

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private static void CheckRequests(MapperStep step)
    {
        foreach (var datagram in step.Send)
            Check(datagram is [Pcp.Version, Pcp.MapOpcode, ..] ? datagram.Length == Pcp.MapSize : datagram is [NatPmp.Version, NatPmp.ExternalAddressOpcode] || datagram is [NatPmp.Version, NatPmp.MapTcpOpcode, ..] && datagram.Length == 12,
                "a malformed request");
        Check(step.Send.Count == 0 || step.WakeAt is not null, "a request with no wake to retransmit it");
    }

    /// <summary>A clock the port-mapper target moves by hand.</summary>
    private sealed class SteppedTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 12, 4, 0, 0, 0, TimeSpan.Zero);
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static void Check(bool condition, string contract)
    {
        if (!condition) throw new ContractBroken(contract);
    }
}

/// <summary>A parser returned something its contract forbids: a bug, reported to AFL++ as a crash.</summary>
internal sealed class ContractBroken(string contract) : Exception(contract);
