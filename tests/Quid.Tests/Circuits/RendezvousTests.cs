using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using NSec.Cryptography;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Tests.Integration;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>
/// A client and a session-address service meet at a rendezvous point R, each over its own
/// three-hop circuit, and talk through one more layer that R cannot open.
/// </summary>
public sealed class RendezvousTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private static readonly StreamTarget Service = new("qm4zbmefygtirqouzcy7nnlk7l22f3fgorcj4hlqj6bxmxglppddepib.quid", 80);

    /// <summary>What the introduction carries of the client's handshake: its ephemeral X, the request's last 32 bytes.</summary>
    private static byte[] EphemeralOf(Ntor.Client handshake) => handshake.Request[(NodeId.Size + 32)..].ToArray();

    /// <summary>Client → A1 → A2 → R and Service → B1 → B2 → R, built; the service's handshake key; what its handler was asked for.</summary>
    private sealed class Meeting(CircuitHarness net) : IDisposable
    {
        public CircuitNode Point { get; } = net.AddNode();
        public CircuitNode Client { get; private set; } = null!;
        public CircuitNode[] ClientHops { get; private set; } = null!;
        public CircuitNode ServiceNode { get; private set; } = null!;
        public CircuitNode[] ServiceHops { get; private set; } = null!;
        public Circuit ClientCircuit { get; private set; } = null!;
        public Circuit ServiceCircuit { get; private set; } = null!;
        public Key ServiceKey { get; } = Key.Create(KeyAgreementAlgorithm.X25519);
        public ConcurrentQueue<StreamTarget> Asked { get; } = new();

        public async Task<Meeting> BuildAsync()
        {
            (Client, var a) = net.Line(2);
            net.Partners(a[1], Point);
            ClientHops = [a[0], a[1], Point];
            (ServiceNode, var b) = net.Line(2);
            net.Partners(b[1], Point);
            ServiceHops = [b[0], b[1], Point];
            ClientCircuit = await Client.BuildAsync(ClientHops);
            ServiceCircuit = await ServiceNode.BuildAsync(ServiceHops);
            return this;
        }

        public byte[] ServicePublicKey => ServiceKey.PublicKey.Export(KeyBlobFormat.RawPublicKey);

        /// <summary>The node's handler: every stream to the service goes to the harness's loopback destination.</summary>
        public Task<Socket?> ConnectAsync(StreamTarget target, CancellationToken cancellationToken)
        {
            Asked.Enqueue(target);
            return Connect(net.Destination.Port, cancellationToken);
        }

        private static async Task<Socket?> Connect(int port, CancellationToken cancellationToken)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
            return socket;
        }

        /// <summary>The whole rendezvous, as the node will run it: establish, introduce (here: hand over the request), meet.</summary>
        public async Task MeetAsync()
        {
            using var handshake = ServiceHandshake.Start(ServicePublicKey, ServiceHandshake.NewEphemeral());
            var cookie = RendezvousCookie.Random();
            await ClientCircuit.EstablishRendezvousAsync(cookie, Timeout, default);
            await ServiceCircuit.MeetClientAsync(cookie, ServiceKey, EphemeralOf(handshake), ConnectAsync, Timeout, default);
            await ClientCircuit.MeetServiceAsync(handshake, Timeout, default);
        }

        /// <summary>R's two ends of the circuits, the client's and the service's.</summary>
        public IReadOnlyList<Circuit> AtPoint => Point.OpenCircuits;

        public void Dispose() => ServiceKey.Dispose();
    }

    /// <summary>Random bytes both ways at once between the client's stream and the service's socket, each end's arriving intact.</summary>
    private static async Task ExchangeAsync(RelayStream stream, Socket server, int size)
    {
        var upload = RandomNumberGenerator.GetBytes(size);
        var download = RandomNumberGenerator.GetBytes(size);
        var sending = Task.Run(async () =>
        {
            await stream.WriteAsync(upload);
            stream.CompleteWrites();
        });
        var serving = Task.Run(async () =>
        {
            await server.SendAsync(download, SocketFlags.None);
            server.Shutdown(SocketShutdown.Send);
        });
        var received = Bytes.ReadToEndAsync(server);
        var fetched = Bytes.ReadToEndAsync(stream);
        await Task.WhenAll(sending, serving).WaitAsync(Timeout);
        Assert.Equal(SHA256.HashData(upload), SHA256.HashData(await received));
        Assert.Equal(SHA256.HashData(download), SHA256.HashData(await fetched));
    }

    [Fact]
    public async Task Two_three_hop_circuits_meet_at_R_and_a_stream_carries_megabytes_both_ways_to_the_services_handler_intact()
    {
        using var net = new CircuitHarness();
        using var meeting = await new Meeting(net).BuildAsync();

        await meeting.MeetAsync();

        // To the client, the service is one more hop beyond R; R holds two joined exit ends.
        Assert.Equal(4, meeting.ClientCircuit.Hops.Count);
        Assert.Equal(ServiceHandshake.IdOf(meeting.ServicePublicKey), meeting.ClientCircuit.Hops[3].Id);
        Assert.True(meeting.ServiceCircuit.IsServiceEnd);
        Assert.Equal(2, meeting.AtPoint.Count);
        Assert.All(meeting.AtPoint, c => Assert.Equal(CircuitRole.Exit, c.Role));
        Assert.Same(meeting.AtPoint[0], meeting.AtPoint[1].Joined);
        Assert.Equal(0, meeting.Point.Table.Rendezvous.Count);

        var stream = await meeting.ClientCircuit.OpenStreamAsync(Service, Timeout, default);
        using var server = await net.Destination.AcceptAsync();
        // The handler, not the exit code (whose resolver knows no .quid name), opened it.
        Assert.Equal(Service, Assert.Single(meeting.Asked));

        await ExchangeAsync(stream, server, 3 << 20);
        await stream.DisposeAsync();
        await Eventually.WaitUntilAsync(() => meeting.ServiceCircuit.StreamCount == 0 && meeting.ClientCircuit.StreamCount == 0, Timeout, "both ends to finish the stream");
        Assert.All(meeting.AtPoint, c => Assert.Equal(0, c.StreamCount));
    }

    [Fact]
    public async Task A_client_whose_rendezvous_point_is_the_services_own_node_is_met_there_and_a_stream_carries_data_both_ways()
    {
        using var net = new CircuitHarness();
        using var meeting = await new Meeting(net).BuildAsync();
        using var handshake = ServiceHandshake.Start(meeting.ServicePublicKey, ServiceHandshake.NewEphemeral());
        var cookie = RendezvousCookie.Random();
        await meeting.ClientCircuit.EstablishRendezvousAsync(cookie, Timeout, default);

        // R is the service's node: it takes the waiting circuit and meets the client on it.
        var waiting = meeting.Point.Table.Rendezvous.TakeWaiting(cookie);
        Assert.NotNull(waiting);
        Assert.Null(meeting.Point.Table.Rendezvous.TakeWaiting(cookie));
        waiting.MeetClientHere(meeting.ServiceKey, EphemeralOf(handshake), meeting.ConnectAsync);
        await meeting.ClientCircuit.MeetServiceAsync(handshake, Timeout, default);

        Assert.Equal(4, meeting.ClientCircuit.Hops.Count);
        var stream = await meeting.ClientCircuit.OpenStreamAsync(Service, Timeout, default);
        using var server = await net.Destination.AcceptAsync();
        Assert.Equal(Service, Assert.Single(meeting.Asked));
        await ExchangeAsync(stream, server, 1 << 20);

        // The service's end extends nothing, as a joined R would pass no RelayEarly: a client may not
        // learn the node's partners by asking it to extend to them. (An Extend in a Relay cell is
        // not one, and is dropped as a message for no stream.)
        var extend = new byte[ExtendBody.Size];
        using var ntor = Ntor.Start(meeting.ClientHops[1].Id, meeting.ClientHops[1].Descriptor.LinkKey);
        new ExtendBody(meeting.ClientHops[1].Id, ntor.Request.ToArray()).Write(extend);
        Assert.True(meeting.ClientCircuit.SendRelay(RelayCommand.Extend, 0, extend, early: true));
        // A stream opened after it is answered after it: by then the Extend was read, and ignored.
        await using var after = await meeting.ClientCircuit.OpenStreamAsync(Service, Timeout, default);
        Assert.DoesNotContain(meeting.Point.OpenCircuits, c => c.Outward is not null);
        Assert.Equal(CircuitState.Open, waiting.State);
    }

    [Fact]
    public async Task A_marker_crossing_the_joined_circuits_both_ways_appears_in_nothing_the_rendezvous_point_decrypts()
    {
        using var net = new CircuitHarness();
        var point = net.AddCuriousPoint();
        var (client, a) = net.Line(2);
        var (service, b) = net.Line(2);
        point.LinkFrom(a[1]);
        point.LinkFrom(b[1]);
        var clientCircuit = await client.Builder.BuildAsync(client.PortTo(a[0]), [a[0].Descriptor, a[1].Descriptor, point.Descriptor], null, default).WaitAsync(Timeout);
        var serviceCircuit = await service.Builder.BuildAsync(service.PortTo(b[0]), [b[0].Descriptor, b[1].Descriptor, point.Descriptor], null, default).WaitAsync(Timeout);
        using var serviceKey = Key.Create(KeyAgreementAlgorithm.X25519);
        using var handshake = ServiceHandshake.Start(serviceKey.PublicKey.Export(KeyBlobFormat.RawPublicKey), ServiceHandshake.NewEphemeral());
        var cookie = RendezvousCookie.Random();
        await clientCircuit.EstablishRendezvousAsync(cookie, Timeout, default);
        await serviceCircuit.MeetClientAsync(cookie, serviceKey, EphemeralOf(handshake),
            async (_, token) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, net.Destination.Port), token);
                return socket;
            }, Timeout, default);
        await clientCircuit.MeetServiceAsync(handshake, Timeout, default);
        var stream = await clientCircuit.OpenStreamAsync(Service, Timeout, default);
        using var server = await net.Destination.AcceptAsync();
        var marker = System.Text.Encoding.ASCII.GetBytes($"QUID-MARKER-{Guid.NewGuid():N}");
        var payload = Enumerable.Repeat(marker, 2_000).SelectMany(m => m).ToArray();

        await stream.WriteAsync(payload);
        stream.CompleteWrites();
        Assert.Equal(payload, await Bytes.ReadToEndAsync(server));
        await server.SendAsync(payload, SocketFlags.None);
        server.Shutdown(SocketShutdown.Send);
        Assert.Equal(payload, await Bytes.ReadToEndAsync(stream));
        await net.Wire.SettleAsync();

        // The point read its own messages in the clear (the cookie is there), and the rest only as ciphertext.
        var cookieBytes = new byte[RendezvousCookie.Size];
        cookie.WriteTo(cookieBytes);
        Assert.Contains(point.Read, m => m.AsSpan().IndexOf(cookieBytes) >= 0);
        Assert.True(point.Read.Count > 2 * payload.Length / RelayCell.MaxData, $"the point saw only {point.Read.Count} cells");
        Assert.DoesNotContain(point.Read, m => m.AsSpan().IndexOf(marker) >= 0);
        Assert.DoesNotContain(point.Read, m => m.AsSpan().IndexOf(marker.AsSpan(0, 8)) >= 0);
    }

    [Fact]
    public async Task A_service_that_names_no_waiting_cookie_is_refused_with_UnknownCookie_and_nothing_is_joined()
    {
        using var net = new CircuitHarness();
        using var meeting = await new Meeting(net).BuildAsync();
        using var handshake = ServiceHandshake.Start(meeting.ServicePublicKey, ServiceHandshake.NewEphemeral());
        await meeting.ClientCircuit.EstablishRendezvousAsync(RendezvousCookie.Random(), Timeout, default);

        var refused = await Assert.ThrowsAsync<RendezvousException>(() =>
            meeting.ServiceCircuit.MeetClientAsync(RendezvousCookie.Random(), meeting.ServiceKey, EphemeralOf(handshake), meeting.ConnectAsync, Timeout, default));

        Assert.Equal(RendezvousFailure.UnknownCookie, refused.Reason);
        await net.Wire.SettleAsync();
        // The service let its circuit go; the client's still waits, unjoined, under its cookie.
        Assert.Equal(CircuitState.Closed, meeting.ServiceCircuit.State);
        Assert.Equal(CircuitState.Open, meeting.ClientCircuit.State);
        var waiting = Assert.Single(meeting.AtPoint);
        Assert.Null(waiting.Joined);
        Assert.Equal(1, meeting.Point.Table.Rendezvous.Count);
    }

    [Fact]
    public async Task A_cookie_serves_once_and_a_cookie_already_waiting_is_refused_to_another_client()
    {
        using var net = new CircuitHarness();
        using var meeting = await new Meeting(net).BuildAsync();
        await meeting.MeetAsync();
        // A second service circuit (through the same hops) and a second client circuit to R.
        var secondService = await meeting.ServiceNode.BuildAsync(meeting.ServiceHops);
        var secondClient = await meeting.Client.BuildAsync(meeting.ClientHops);
        using var handshake = ServiceHandshake.Start(meeting.ServicePublicKey, ServiceHandshake.NewEphemeral());
        var cookie = RendezvousCookie.Random();
        await secondClient.EstablishRendezvousAsync(cookie, Timeout, default);
        var thirdClient = await meeting.Client.BuildAsync(meeting.ClientHops);

        var inUse = await Assert.ThrowsAsync<RendezvousException>(() => thirdClient.EstablishRendezvousAsync(cookie, Timeout, default));
        await secondService.MeetClientAsync(cookie, meeting.ServiceKey, EphemeralOf(handshake), meeting.ConnectAsync, Timeout, default);
        var reused = await Assert.ThrowsAsync<RendezvousException>(async () =>
        {
            var thirdService = await meeting.ServiceNode.BuildAsync(meeting.ServiceHops);
            await thirdService.MeetClientAsync(cookie, meeting.ServiceKey, EphemeralOf(handshake), meeting.ConnectAsync, Timeout, default);
        });

        Assert.Equal(RendezvousFailure.CookieInUse, inUse.Reason);
        Assert.Equal(RendezvousFailure.UnknownCookie, reused.Reason);
        // The refused client circuit stays open, unjoined, and may try another cookie.
        Assert.Equal(CircuitState.Open, thirdClient.State);
        await thirdClient.EstablishRendezvousAsync(RendezvousCookie.Random(), Timeout, default);
        Assert.Equal(2, meeting.AtPoint.Count(c => c.Joined is not null) / 2);
    }

    [Fact]
    public async Task A_circuit_waits_under_one_cookie_only()
    {
        using var net = new CircuitHarness();
        using var meeting = await new Meeting(net).BuildAsync();
        using var handshake = ServiceHandshake.Start(meeting.ServicePublicKey, ServiceHandshake.NewEphemeral());
        await meeting.ClientCircuit.EstablishRendezvousAsync(RendezvousCookie.Random(), Timeout, default);

        // The API allows one rendezvous per circuit; a hostile client that sends a second anyway is refused by R.
        await Assert.ThrowsAsync<InvalidOperationException>(() => meeting.ClientCircuit.EstablishRendezvousAsync(RendezvousCookie.Random(), Timeout, default));
        var data = new byte[EstablishRendezvousBody.Size];
        new EstablishRendezvousBody(RendezvousCookie.Random()).Write(data);
        // What R answers is held at A2, so R's table is seen before the client reacts.
        var toClient = meeting.ClientHops[1].PortTo(meeting.ClientHops[0]);
        toClient.Stall();
        Assert.True(meeting.ClientCircuit.SendRelay(RelayCommand.EstablishRendezvous, 0, data));
        await Eventually.WaitUntilAsync(() => toClient.Held == 1, Timeout, "R's answer");
        Assert.Equal(1, meeting.Point.Table.Rendezvous.Count);

        // R refused (RendezvousFailed), and the client, which asked for nothing, takes that as a violation.
        toClient.Resume();
        await net.Wire.SettleAsync();
        Assert.Equal(CircuitState.Closed, meeting.ClientCircuit.State);
        Assert.Equal(0, meeting.Point.Table.Rendezvous.Count);
    }

    [Fact]
    public async Task A_flood_of_cookies_fills_the_table_to_its_bound_and_no_further_and_expired_ones_make_room()
    {
        const int capacity = 16;
        using var net = new CircuitHarness { Options = new CircuitOptions { MaxRendezvousCookies = capacity, RendezvousCookieLifetime = TimeSpan.FromMinutes(5) } };
        var point = net.AddNode();
        var (flooder, hops) = net.Line(1);
        net.Partners(hops[0], point);
        var circuits = new List<Circuit>();
        for (int i = 0; i < capacity + 8; i++) circuits.Add(await flooder.BuildAsync(hops[0], point));
        using var handshake = ServiceHandshake.Start(new byte[32].Select((_, i) => (byte)(i + 1)).ToArray(), ServiceHandshake.NewEphemeral());

        var outcomes = new List<RendezvousFailure?>();
        foreach (var circuit in circuits)
        {
            try
            {
                await circuit.EstablishRendezvousAsync(RendezvousCookie.Random(), Timeout, default);
                outcomes.Add(null);
            }
            catch (RendezvousException e)
            {
                outcomes.Add(e.Reason);
            }
        }

        Assert.Equal(capacity, outcomes.Count(o => o is null));
        Assert.All(outcomes.Skip(capacity), o => Assert.Equal(RendezvousFailure.ResourceLimit, o));
        Assert.Equal(capacity, point.Table.Rendezvous.Count);

        // Five minutes on, the old cookies are worth nothing, and new ones find room.
        net.Time.Advance(TimeSpan.FromMinutes(5));
        await circuits[^1].EstablishRendezvousAsync(RendezvousCookie.Random(), Timeout, default);
        Assert.Equal(1, point.Table.Rendezvous.Count);

        // A closed circuit takes its cookie with it.
        circuits[^1].Destroy(DestroyReason.Finished);
        await net.Wire.SettleAsync();
        Assert.Equal(0, point.Table.Rendezvous.Count);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Destroying_either_side_tears_down_the_other_through_R(bool client)
    {
        using var net = new CircuitHarness();
        using var meeting = await new Meeting(net).BuildAsync();
        await meeting.MeetAsync();
        var stream = await meeting.ClientCircuit.OpenStreamAsync(Service, Timeout, default);
        using var server = await net.Destination.AcceptAsync();

        (client ? meeting.ClientCircuit : meeting.ServiceCircuit).Destroy(DestroyReason.Finished);
        await net.Wire.SettleAsync();

        Assert.Equal(CircuitState.Closed, meeting.ClientCircuit.State);
        Assert.Equal(CircuitState.Closed, meeting.ServiceCircuit.State);
        Assert.Empty(meeting.AtPoint);
        Assert.All(meeting.ClientHops.Concat(meeting.ServiceHops), h => Assert.Empty(h.OpenCircuits));
        await Assert.ThrowsAsync<StreamException>(() => stream.WriteAsync(new byte[10]).AsTask());
        Assert.Empty(await Bytes.ReadToEndAsync(server));
    }

    [Fact]
    public async Task A_reply_from_a_service_that_does_not_hold_the_key_the_client_expects_fails_the_handshake_and_ends_the_client_circuit()
    {
        using var net = new CircuitHarness();
        using var meeting = await new Meeting(net).BuildAsync();
        using var other = Key.Create(KeyAgreementAlgorithm.X25519);
        // The client expects the key `other` (say, a record forged by someone else); the service answers with its own.
        using var handshake = ServiceHandshake.Start(other.PublicKey.Export(KeyBlobFormat.RawPublicKey), ServiceHandshake.NewEphemeral());
        var cookie = RendezvousCookie.Random();
        await meeting.ClientCircuit.EstablishRendezvousAsync(cookie, Timeout, default);
        await meeting.ServiceCircuit.MeetClientAsync(cookie, meeting.ServiceKey, EphemeralOf(handshake), meeting.ConnectAsync, Timeout, default);

        var failed = await Assert.ThrowsAsync<StreamException>(() => meeting.ClientCircuit.MeetServiceAsync(handshake, Timeout, default));

        Assert.Equal(EndReason.Protocol, failed.Reason);
        await Eventually.WaitUntilAsync(() => meeting.ClientCircuit.State == CircuitState.Closed && meeting.ServiceCircuit.State == CircuitState.Closed, Timeout, "both circuits to close");
    }

    [Fact]
    public async Task A_stream_the_services_handler_refuses_ends_with_connection_refused_and_the_meeting_stays()
    {
        using var net = new CircuitHarness();
        using var meeting = await new Meeting(net).BuildAsync();
        using var handshake = ServiceHandshake.Start(meeting.ServicePublicKey, ServiceHandshake.NewEphemeral());
        var cookie = RendezvousCookie.Random();
        await meeting.ClientCircuit.EstablishRendezvousAsync(cookie, Timeout, default);
        await meeting.ServiceCircuit.MeetClientAsync(cookie, meeting.ServiceKey, EphemeralOf(handshake),
            (target, _) => Task.FromResult<Socket?>(null), Timeout, default);
        await meeting.ClientCircuit.MeetServiceAsync(handshake, Timeout, default);

        var refused = await Assert.ThrowsAsync<StreamException>(() => meeting.ClientCircuit.OpenStreamAsync(Service, Timeout, default));

        Assert.Equal(EndReason.ConnectionRefused, refused.Reason);
        Assert.Equal(CircuitState.Open, meeting.ClientCircuit.State);
        // The service resolves nothing for its clients either.
        var failed = await Assert.ThrowsAsync<StreamException>(() => meeting.ClientCircuit.ResolveAsync("example.org", Timeout, default));
        Assert.Equal(EndReason.ResolveFailed, failed.Reason);
    }

    [Fact]
    public async Task A_circuit_with_more_hops_than_leave_room_for_the_virtual_hop_cannot_be_used_for_a_rendezvous()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(Circuit.MaxHopsToRendezvous + 1);
        var circuit = await origin.BuildAsync(hops);
        using var handshake = ServiceHandshake.Start(new byte[32].Select((_, i) => (byte)(i + 1)).ToArray(), ServiceHandshake.NewEphemeral());

        await Assert.ThrowsAsync<InvalidOperationException>(() => circuit.EstablishRendezvousAsync(RendezvousCookie.Random(), Timeout, default));
        using var key = Key.Create(KeyAgreementAlgorithm.X25519);
        await Assert.ThrowsAsync<InvalidOperationException>(() => circuit.MeetClientAsync(RendezvousCookie.Random(), key, EphemeralOf(handshake), (_, _) => Task.FromResult<Socket?>(null), Timeout, default));
    }
}
