using System.Net;
using Quid.Crypto;
using Quid.Links;
using Quid.Links.PortMapping;
using Quid.Services;
using Quid.Wire;

namespace Quid.Fuzz;

/// <summary>
/// Valid inputs for each target, made with the real encoders, so AFL++ starts from messages that
/// reach deep into each parser instead of from bytes that fail at the first check.
/// </summary>
internal static class Seeds
{
    public static void Write(string directory)
    {
        using var identity = NodeIdentity.Generate(out _);
        using var peer = NodeIdentity.Generate(out _);
        var descriptor = new Descriptor
        {
            SigningKey = identity.SigningPublicKey,
            LinkKey = identity.LinkPublicKey,
            Published = DateTimeOffset.FromUnixTimeSeconds(1_750_000_000),
            Expires = DateTimeOffset.FromUnixTimeSeconds(1_750_003_600),
            Address = IPEndPoint.Parse("127.0.0.2:7843"),
            Offer = Block.FromKbps(512),
            Request = Block.FromKbps(256),
            FreeBlocks = [Block.FromKbps(256), Block.FromKbps(128)],
            Roles = NodeRoles.Ultrapeer,
            ExitPolicy = ExitPolicy.Default,
            Partners = [peer.Id],
        }.Sign(identity);
        var terms = AgreementTerms.Create(identity.Id, peer.Id, Block.FromKbps(64), Block.FromKbps(32), DateTimeOffset.FromUnixTimeSeconds(1_750_000_000));

        Write(directory, "socks",
            [0xC0, 5, 1, 0, 5, 1, 0, 3, 11, .. "example.com"u8, 0, 80],
            [0xC8, 5, 2, 0, 2, 1, 4, .. "user"u8, 4, .. "pass"u8, 5, 1, 0, 1, 93, 184, 216, 34, 1, 187],
            [0xC1, 5, 1, 0, 5, 1, 0, 4, .. new byte[15], 1, 1, 187],
            [0xFF, 4, 1, 0, 80, 0, 0, 0, 1, .. "alice"u8, 0, .. "example.com"u8, 0],
            [0x10, 4, 1, 0, 80, 93, 184, 216, 34, 0],
            [0xC3, 5, 1, 0, 5, 0xF0, 0, 3, 11, .. "example.com"u8, 0, 0]);

        Write(directory, "http-request",
            [0x40, .. "GET http://example.com/index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n"u8],
            [0x07, .. "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n"u8],
            [0x7F, .. "POST http://[::1]:8080/form?x=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nConnection: TE, X-Private\r\nTE: trailers\r\nX-Private: 1\r\n\r\n5\r\nhello\r\n0\r\n\r\n"u8],
            [0x00, .. "\r\nOPTIONS http://a HTTP/1.0\nContent-Length: 5, 5\n\nhello"u8]);
        Write(directory, "http-response",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nSet-Cookie: a=b\r\n\r\nhi"u8.ToArray(),
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.0 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"u8.ToArray(),
            "HTTP/1.1 204\r\nKeep-Alive: timeout=5\r\n\r\n"u8.ToArray());
        Write(directory, "http-chunked",
            [0x05, .. "5\r\nhello\r\n7;name=\"quoted value\"\r\n, world\r\n0\r\nExpires: never\r\n\r\n"u8],
            [0x00, .. "0001AB\r\n"u8, .. new byte[0x1AB], .. "\r\n0\r\n\r\n"u8]);

        using var initiator = LinkHandshake.Initiate(peer);
        using var responder = LinkHandshake.Respond(identity);
        byte[] message1 = initiator.Start();
        byte[] message2 = responder.Receive(message1, out _);
        Write(directory, "link-handshake", [0, .. message1], [1, .. message2]);

        byte[] frame1, frame3;
        using (var send = new LinkCipher(Targets.FrameKey))
        {
            frame1 = Frame(send, [.. RelayCellBytes(Relay(RelayCommand.Data, 1, "hello"u8))]);
            frame3 = Frame(send, [.. ControlCells(new byte[ControlFraming.MaxFragment * 2 + 5])]);
        }
        Write(directory, "link-frame", [0x00, .. frame1], [0x05, .. frame1, .. frame3], [0xFF, .. frame1, .. frame3[..^1]]);

        // The target's hop, so that a seed's request names it and reaches the key agreement.
        using var hop = NodeIdentity.FromSeed(Targets.HopSeed);
        using var toHop = Ntor.Start(hop.Id, hop.LinkPublicKey);
        var create = new byte[Cell.BodySize];
        new CreateBody(toHop.Request.ToArray()).Write(create);
        var otherHandshake = create.ToArray();
        otherHandshake[1] = 2;
        Write(directory, "create", create, otherHandshake, create[..CreateBody.Size]);
        var ntorReply = new byte[Ntor.ReplySize];
        Ntor.Respond(hop.Id, hop.LinkKey, toHop.Request, ntorReply, OnionLayer.KeyMaterialSize);
        var created = new byte[Cell.BodySize];
        new CreatedBody(ntorReply).Write(created);
        Write(directory, "created", created, created[..CreatedBody.Size]);

        using var blinded = KeyBlinding.KeyPair.FromSeed(Targets.HopSeed, 20_000, 1440);
        var record = ServiceRecord.Create(blinded, 20_000, 1440, DateTimeOffset.UnixEpoch.AddYears(56), DateTimeOffset.UnixEpoch.AddYears(56).AddHours(1), new byte[600]);
        byte[] descriptorMessage = ControlCodec.Encode(new DescriptorMessage(descriptor));
        byte[] proposal = ControlCodec.Encode(new AgreementProposal(terms, identity.Sign(terms.SignedMessage())));
        byte[] query = ControlCodec.Encode(new QueryMessage(QueryId.New(), 4, 0, Block.FromKbps(256), Block.FromKbps(128), 8));
        Write(directory, "control",
            descriptorMessage, proposal, query,
            ControlCodec.Encode(new PeersMessage([descriptor])),
            ControlCodec.Encode(new QueryHitMessage(QueryId.New(), [descriptor])),
            ControlCodec.Encode(new GoodbyeMessage(GoodbyeReason.Full)),
            ControlCodec.Encode(new AgreementEnd(terms.Id, AgreementEndReason.Requested)),
            ControlCodec.Encode(new GrantChanged(terms.Id, Block.FromKbps(32))),
            ControlCodec.Encode(new RecordPublishMessage(QueryId.New(), 3, record)),
            ControlCodec.Encode(new LookupMessage(QueryId.New(), 2, record.LookupId.ToArray(), new byte[300])),
            ControlCodec.Encode(new LookupHitMessage(QueryId.New(), record)),
            ControlCodec.Encode(new IntroduceMessage(QueryId.New(), QueryId.New(), new byte[300])),
            ControlCodec.Encode(new IntroduceFailedMessage(QueryId.New(), QueryId.New())),
            ControlCodec.Encode(new OfferSummaryMessage(OfferSummary.Empty)));
        Write(directory, "service-record", record.Encoded, record.Encoded[..^1]);

        // Sealed to the target's blinded key, so that they reach the tag; then another version, a
        // short one, and one whose E is the identity, a small-order point.
        using var serviceKeys = KeyBlinding.KeyPair.FromSeed(Targets.HopSeed, Targets.IntroductionPeriod, 1440);
        byte[] introduction = Introduction.Seal(serviceKeys.PublicKey, new Introduction([(hop.Id, RendezvousCookie.Random())], toHop.Request[^Introduction.ClientKeySize..]));
        byte[] otherVersion = [.. introduction];
        otherVersion[0] = 1;
        byte[] smallOrder = [.. introduction];
        smallOrder.AsSpan(1, 32).Clear();
        smallOrder[1] = 1;
        Write(directory, "introduction", introduction, Introduction.Seal(serviceKeys.PublicKey, new Introduction([(peer.Id, RendezvousCookie.Random()), (hop.Id, RendezvousCookie.Random())], new byte[32])),
            otherVersion, introduction[..^1], smallOrder);
        Write(directory, "introduction-gate", introduction, IntroductionWork.Solve(introduction, 8, IntroductionWork.Epoch(Targets.GateNow), CancellationToken.None),
            IntroductionWork.Solve(introduction, 8, IntroductionWork.Epoch(Targets.GateNow) + 5, CancellationToken.None), otherVersion, introduction[..^1]);

        Write(directory, "descriptor", descriptor.Encoded);

        // A gateway's answers, as miniupnpd 2.3.1 gave them (tests/testbed/portmap-check.sh), with the target's nonce.
        byte[] pcpMapped = [.. Convert.FromHexString("0281000000000e1000000002000000000000000000000000"), .. Targets.PcpNonce,
            .. Convert.FromHexString("060000001ea31ea300000000000000000000ffffc6120001")];
        byte[] pcpRefused = [.. pcpMapped];
        pcpRefused[3] = (byte)PcpResult.NoResources;
        byte[] natPmpAddress = Convert.FromHexString("0080000000000002c6120001");
        byte[] natPmpMapped = Convert.FromHexString("00820000000000021ea31ea300000e10");
        byte[] unsupportedVersion = Convert.FromHexString("0081000100000001");
        Write(directory, "pcp", pcpMapped, pcpRefused, pcpMapped[..Pcp.HeaderSize], [.. pcpMapped, .. Convert.FromHexString("03000004deadbeef")]);
        Write(directory, "natpmp", [0, .. unsupportedVersion], [1, .. natPmpAddress], [2, .. natPmpMapped], [2, .. unsupportedVersion]);
        Write(directory, "port-mapper",
            [0, (byte)pcpMapped.Length, .. pcpMapped, 0, 0, 1, 0],
            [0, (byte)unsupportedVersion.Length, .. unsupportedVersion, 0, (byte)natPmpAddress.Length, .. natPmpAddress, 0, (byte)natPmpMapped.Length, .. natPmpMapped, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

        Write(directory, "session-address",
            "qm4zbmefygtirqouzcy7nnlk7l22f3fgorcj4hlqj6bxmxglppddepib.quid"u8.ToArray(),
            "www.QM4ZBMEFYGTIRQOUZCY7NNLK7L22F3FGORCJ4HLQJ6BXMXGLPPDDEPIB.quid."u8.ToArray(),
            "quid-secret-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyp2m3ab"u8.ToArray());
        Write(directory, "share-request",
            "GET / HTTP/1.1\r\nHost: x.quid\r\nAccept: application/json\r\n\r\n"u8.ToArray(),
            "GET /file.bin HTTP/1.1\r\nHost: x.quid\r\nRange: bytes=100-199\r\n\r\nHEAD /sub/ HTTP/1.1\r\nHost: x.quid\r\n\r\n"u8.ToArray(),
            "GET /file.bin HTTP/1.1\r\nHost: x.quid\r\nIf-None-Match: \"x\"\r\nRange: bytes=-10\r\nConnection: close\r\n\r\n"u8.ToArray());

        Write(directory, "cache-exchange",
            CacheSeed(0, "GET /a HTTP/1.1\r\nHost: example.org\r\n\r\n", "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nETag: \"1\"\r\nContent-Length: 5\r\n\r\nhello"),
            CacheSeed(1, "GET /a HTTP/1.1\r\nHost: example.org\r\n\r\nHEAD /a HTTP/1.1\r\nHost: example.org\r\n\r\n",
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nETag: \"1\"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\n\r\n"),
            CacheSeed(0, "GET /v HTTP/1.1\r\nHost: example.org\r\nAccept-Language: en\r\n\r\n",
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nVary: Accept-Language\r\nLast-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\nuntil the close"));

        var asked = new BlindedCredit(3, Enumerable.Range(1, CreditCodec.ElementSize).Select(i => (byte)i).ToArray());
        var token = new CreditToken(4, Enumerable.Range(2, CreditCodec.InputSize).Select(i => (byte)i).ToArray(), Enumerable.Range(3, CreditCodec.OutputSize).Select(i => (byte)i).ToArray());
        var evaluation = new CreditEvaluation([new CreditProof(3, asked.Element, [.. token.Output])], [asked.Element]);
        Write(directory, "desk",
            DeskCodec.Encode(new DeskExchange(2900, [token], [asked, asked with { Order = 4 }])),
            DeskCodec.Encode(new DeskExchanged(evaluation)),
            DeskCodec.Encode(new DeskRefused(CreditRefusal.Spent, "A credit offered was spent before.")),
            DeskCodec.Encode(new DeskPut(asked.Element[..16], 1 << 20, 7, asked.Element, [new EpochCredit(2900, token)])),
            DeskCodec.Encode(new DeskAudit(asked.Element[..16], asked.Element)),
            DeskCodec.Encode(new DeskAudited(asked.Element, 1_800_000_000)),
            DeskCodec.Encode(new DeskRenew(asked.Element[..16], 1, [new EpochCredit(2901, token)])),
            DeskCodec.Encode(new DeskDeploy(40_000, 1, asked.Element, [new EpochCredit(2900, token)])),
            DeskCodec.Encode(new DeskProgram(asked.Element[..16], ProgramState.Paused, 1 << 30, 1 << 16, 4096, 1_800_000_000, asked.Element, true)),
            DeskCodec.Encode(new DeskTopup(asked.Element[..16], [new EpochCredit(2900, token)])),
            DeskCodec.Encode(new DeskStop(asked.Element[..16], asked.Element)));
        Write(directory, "program-post",
            ProgramPostCodec.Encode(new ProgramPost([new EpochCredit(2900, token)], [2, 5, .. "12345"u8, .. "hello"u8]))[ProgramPostCodec.LengthSize..],
            [0xFF, .. ProgramPostCodec.Encode(new ProgramAnswer(ProgramAnswerKind.Reply, [0x83, .. "hello"u8]))[ProgramPostCodec.LengthSize..]]);
        var credit = new Quid.Credits.Credit(hop.Id, 2900, 4, token.Input, token.Output);
        Write(directory, "credit-card",
            System.Text.Encoding.UTF8.GetBytes(Quid.Credits.CreditCard.Write([credit])),
            System.Text.Encoding.UTF8.GetBytes("Here you are:\n\n" + Quid.Credits.CreditCard.Write([credit, credit with { Input = token.Output[..32], Order = 0 }]) + "-- \nJoe\n"));

        Write(directory, "program", Wasmtime.Module.ConvertText("""
            (module
              (import "quid" "send" (func $send (param i32 i32 i32 i32) (result i32)))
              (import "quid" "kv_put" (func $put (param i32 i32 i32 i32) (result i32)))
              (import "quid" "timer" (func $timer (param i64)))
              (memory (export "memory") 1)
              (func (export "alloc") (param i32) (result i32) (i32.const 64))
              (func (export "on_message") (param $at i32) (param $length i32)
                (drop (call $send (local.get $at) (local.get $length) (local.get $at) (local.get $length)))
                (drop (call $put (local.get $at) (i32.const 1) (local.get $at) (local.get $length)))
                (call $timer (i64.const 10)))
              (func (export "on_timer")))
            """));

        byte[] begin = Relay(RelayCommand.Begin, 1, [0, 80, 11, .. "example.com"u8]);
        byte[] connected = Relay(RelayCommand.Connected, 1, [4, 127, 0, 0, 1]);
        byte[] data = Relay(RelayCommand.Data, 1, "GET / HTTP/1.1\r\n\r\n"u8);
        byte[] end = Relay(RelayCommand.End, 1, [(byte)EndReason.Done]);
        var echo = new byte[EchoProbe.Size];
        new EchoProbe(0x0123_4567_89AB_CDEF, 1).Write(echo);
        byte[] extend = Relay(RelayCommand.Extend, 0, Written(new ExtendBody(hop.Id, toHop.Request.ToArray()).Write, ExtendBody.Size));
        Write(directory, "relay", begin, connected, data, end, Relay(RelayCommand.Resolve, 2, [0, 0, 11, .. "example.com"u8]),
            Relay(RelayCommand.Connected, 3, Written(new ConnectedBody(IPAddress.Parse("2001:db8::1")).Write, ConnectedBody.MaxSize)),
            Relay(RelayCommand.Resolved, 2, Written(ResolvedBody.Found([IPAddress.Parse("192.0.2.1"), IPAddress.Parse("2001:db8::1")]).Write, ResolvedBody.MaxSize)),
            Relay(RelayCommand.Resolved, 2, Written(ResolvedBody.Refused(EndReason.ExitPolicy).Write, ResolvedBody.MaxSize)),
            extend,
            Relay(RelayCommand.Extended, 0, ntorReply),
            Relay(RelayCommand.ExtendFailed, 0, [(byte)ExtendFailure.NotAPartner]),
            Relay(RelayCommand.Echo, 0, echo),
            Relay(RelayCommand.EchoReply, 0, echo),
            Relay(RelayCommand.EstablishRendezvous, 0, Written(new EstablishRendezvousBody(RendezvousCookie.Random()).Write, EstablishRendezvousBody.Size)),
            Relay(RelayCommand.Rendezvous, 0, Written(new RendezvousBody(RendezvousCookie.Random(), ntorReply).Write, RendezvousBody.Size)),
            Relay(RelayCommand.Rendezvous2, 0, ntorReply),
            Relay(RelayCommand.RendezvousFailed, 0, [(byte)RendezvousFailure.UnknownCookie]),
            Relay(RelayCommand.RendezvousJoined, 0, []));

        Write(directory, "cell",
            [.. ControlCells(descriptorMessage), .. ControlCells(query)],
            ControlCells(new byte[ControlFraming.MaxFragment * 2 + 5]),
            RelayCellBytes(begin),
            [.. RelayCellBytes(data), .. RelayCellBytes(end)],
            [.. CircuitCell(CellCommand.Create, create), .. CircuitCell(CellCommand.Created, created), .. RelayCellBytes(extend)]);
    }

    private delegate int Writer(Span<byte> data);

    private static byte[] Written(Writer write, int size)
    {
        var data = new byte[size];
        return data[..write(data)];
    }

    private static byte[] Frame(LinkCipher send, byte[] cells)
    {
        var frame = new byte[LinkFraming.FrameSize(cells.Length / Cell.Size)];
        return frame[..LinkFraming.Encode(send, cells, frame)];
    }

    private static byte[] CircuitCell(CellCommand command, byte[] body)
    {
        var cell = new byte[Cell.Size];
        Cell.WriteHeader(cell, 0x8000_0001, command);
        body.CopyTo(Cell.Body(cell.AsSpan()));
        return cell;
    }

    private static byte[] Relay(RelayCommand command, ushort stream, ReadOnlySpan<byte> data)
    {
        var message = new byte[RelayCell.MessageSize];
        RelayCell.Write(message, command, stream, data);
        return message;
    }

    private static byte[] ControlCells(byte[] payload)
    {
        var cells = new byte[ControlFraming.CellCount(payload.Length) * Cell.Size];
        ControlFraming.WriteCells(payload, cells);
        return cells;
    }

    private static byte[] RelayCellBytes(byte[] message)
    {
        var cell = new byte[Cell.Size];
        Cell.WriteHeader(cell, 0x8000_0001, CellCommand.Relay);
        message.AsSpan().CopyTo(Cell.Body(cell.AsSpan()));
        return cell;
    }

    /// <summary>A cache-exchange input: the client's bytes' length, the circuit, the client's bytes, the origin's.</summary>
    private static byte[] CacheSeed(byte circuit, string client, string origin)
    {
        byte[] request = System.Text.Encoding.Latin1.GetBytes(client);
        return [(byte)(request.Length >> 8), (byte)request.Length, circuit, .. request, .. System.Text.Encoding.Latin1.GetBytes(origin)];
    }

    private static void Write(string directory, string target, params byte[][] inputs)
    {
        var folder = Directory.CreateDirectory(Path.Combine(directory, target)).FullName;
        for (int i = 0; i < inputs.Length; i++)
            File.WriteAllBytes(Path.Combine(folder, $"seed{i:00}"), inputs[i]);
    }
}
