using System.Buffers.Binary;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Tests.Wire;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>
/// A last hop whose relay messages have the right command but a body that is not what
/// docs/PROTOCOL.md §6.2 says: the origin refuses the body as a whole, never reads a prefix of it.
/// </summary>
public sealed class MalformedBodyTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static async Task<(CircuitNode Origin, FakeHop Hop, Circuit Circuit)> CircuitToFakeAsync(CircuitHarness net, Action<FakeHop, RelayCommand, ushort, byte[]> answer)
    {
        var origin = net.AddNode();
        var hop = net.AddFake(origin);
        hop.OnMessage = answer;
        var circuit = await origin.Builder.BuildAsync(origin.Ports[hop.Id], [hop.Descriptor], isolation: null, default).WaitAsync(Timeout);
        return (origin, hop, circuit);
    }

    [Theory]
    [InlineData((ushort)0)]
    [InlineData((ushort)2)]
    [InlineData((ushort)0xFFFF)]
    public async Task A_Create_for_another_handshake_is_refused_with_Destroy_and_the_link_carries_on(ushort handshake)
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        var cell = CircuitBuildTests.Create(0x8000_0007, hops[0]);
        BinaryPrimitives.WriteUInt16BigEndian(Cell.Body(cell.AsSpan()), handshake);

        origin.PortTo(hops[0]).TrySend(cell);
        await net.Wire.SettleAsync();

        Assert.Empty(hops[0].OpenCircuits);
        Assert.Contains(hops[0].PortTo(origin).SentCells(CellCommand.Destroy), c => Cell.CircuitId(c) == 0x8000_0007 && Cell.Body(c)[0] == (byte)DestroyReason.Refused);
        Assert.True(origin.PortTo(hops[0]).IsOpen);
        await origin.BuildAsync(hops);
    }

    [Theory]
    [InlineData(new byte[] { 4, 127, 0, 0 })]
    [InlineData(new byte[] { 4, 127, 0, 0, 1, 0 })]
    [InlineData(new byte[] { 5, 127, 0, 0, 1 })]
    [InlineData(new byte[0])]
    public async Task A_Connected_whose_address_is_malformed_fails_the_stream_as_a_protocol_error(byte[] connected)
    {
        using var net = new CircuitHarness();
        var (_, hop, circuit) = await CircuitToFakeAsync(net, (self, command, stream, _) =>
        {
            if (command == RelayCommand.Begin) self.Send(RelayCommand.Connected, stream, connected);
        });

        var failed = await Assert.ThrowsAsync<StreamException>(() => circuit.OpenStreamAsync(new StreamTarget("example.org", 80), Timeout, default));

        Assert.Equal(EndReason.Protocol, failed.Reason);
        await net.Wire.SettleAsync();
        Assert.Contains(hop.Received, r => r.Command == RelayCommand.End && r.Data.SequenceEqual(new[] { (byte)EndReason.Protocol }));
    }

    [Theory]
    [InlineData(new byte[] { 0, 1, 4, 127, 0, 0, 1, 0xFF })]
    [InlineData(new byte[] { 0, 0 })]
    [InlineData(new byte[] { 200, 0 })]
    [InlineData(new byte[] { (byte)EndReason.ResolveFailed, 1, 4, 127, 0, 0, 1 })]
    public async Task A_Resolved_that_is_malformed_fails_the_lookup_as_a_protocol_error(byte[] resolved)
    {
        using var net = new CircuitHarness();
        var (_, _, circuit) = await CircuitToFakeAsync(net, (self, command, stream, _) =>
        {
            if (command == RelayCommand.Resolve) self.Send(RelayCommand.Resolved, stream, resolved);
        });

        var failed = await Assert.ThrowsAsync<StreamException>(() => circuit.ResolveAsync("example.org", Timeout, default));

        Assert.Equal(EndReason.Protocol, failed.Reason);
    }

    [Theory]
    [InlineData(new byte[] { (byte)EndReason.Done, 0 })]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0xEE })]
    public async Task An_End_that_is_malformed_aborts_the_stream_as_a_protocol_error_instead_of_closing_it(byte[] end)
    {
        using var net = new CircuitHarness();
        var (_, hop, circuit) = await CircuitToFakeAsync(net, (self, command, stream, _) =>
        {
            if (command == RelayCommand.Begin) self.Send(RelayCommand.Connected, stream, [4, 127, 0, 0, 1]);
        });
        await using var stream = await circuit.OpenStreamAsync(new StreamTarget("example.org", 80), Timeout, default);

        hop.Send(RelayCommand.End, stream.Id, end);

        var failed = await Assert.ThrowsAsync<StreamException>(() => stream.ReadAsync(new byte[1]).AsTask().WaitAsync(Timeout));
        Assert.Equal(EndReason.Protocol, failed.Reason);
    }

    /// <summary>
    /// A two-hop build through a fake first hop that answers the EXTEND itself, with
    /// <paramref name="answer"/>: what the next hop's handshake reply became, or anything else.
    /// </summary>
    private static (FakeHop Hop, Task<Circuit> Build) ExtendThroughFake(CircuitHarness net, NodeIdentity next, Func<byte[], (RelayCommand, byte[])> answer)
    {
        var origin = net.AddNode();
        var hop = net.AddFake(origin);
        var nextDescriptor = TestDescriptors.Make(next, Block.FromKbps(1024), null, policy: ExitPolicy.AcceptAll, published: net.Time.GetUtcNow());
        hop.OnMessage = (self, command, _, data) =>
        {
            if (command != RelayCommand.Extend) return;
            var (reply, body) = answer(data);
            self.Send(reply, 0, body);
        };
        return (hop, origin.Builder.BuildAsync(origin.Ports[hop.Id], [hop.Descriptor, nextDescriptor], isolation: null, default).WaitAsync(Timeout));
    }

    [Fact]
    public async Task An_Extended_with_bytes_after_the_handshake_reply_fails_the_build_as_a_violation()
    {
        using var net = new CircuitHarness();
        using var next = NodeIdentity.Generate(out _);
        var (hop, build) = ExtendThroughFake(net, next, extend =>
        {
            // The next hop's real reply, so only the extra byte is wrong.
            var reply = new byte[Ntor.ReplySize];
            Ntor.Respond(next.Id, next.LinkKey, extend.AsSpan(NodeId.Size), reply, OnionLayer.KeyMaterialSize);
            return (RelayCommand.Extended, [.. reply, 0]);
        });

        await Assert.ThrowsAsync<StreamException>(() => build);

        await net.Wire.SettleAsync();
        Assert.Equal(DestroyReason.Protocol, hop.DestroyedBecause);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0 })]
    [InlineData(new byte[] { 0xEE })]
    [InlineData(new byte[] { (byte)ExtendFailure.Refused, 0 })]
    public async Task An_ExtendFailed_that_is_malformed_fails_the_build_as_a_violation(byte[] extendFailed)
    {
        using var net = new CircuitHarness();
        using var next = NodeIdentity.Generate(out _);
        var (hop, build) = ExtendThroughFake(net, next, _ => (RelayCommand.ExtendFailed, extendFailed));

        await Assert.ThrowsAsync<StreamException>(() => build);

        await net.Wire.SettleAsync();
        Assert.Equal(DestroyReason.Protocol, hop.DestroyedBecause);
    }
}
