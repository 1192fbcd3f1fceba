using System.Collections.Concurrent;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Links;
using Quid.Tests.Wire;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>
/// A last hop the test plays: it answers a CREATE with a real ntor handshake and reads the relay
/// messages of the one circuit that makes, but what it answers, and when, is up to the test
/// (<see cref="OnMessage"/> and <see cref="Send"/>). The template for a hop that lies about
/// echoes, floods Sendmes, or ignores windows: everything it sends is properly sealed, so only
/// what it says is wrong.
/// </summary>
internal sealed class FakeHop : ICircuitCells, IDisposable
{
    private readonly Lock _sendLock = new();
    private readonly ConcurrentQueue<(RelayCommand Command, ushort StreamId, byte[] Data)> _received = new();
    private ICellPort? _port;
    private uint _id;
    private OnionLayer? _layer;

    public FakeHop(CircuitHarness harness, CircuitNode origin)
    {
        Identity = NodeIdentity.Generate(out _);
        Descriptor = TestDescriptors.Make(Identity, Block.FromKbps(1024), null, policy: ExitPolicy.AcceptAll, published: harness.Time.GetUtcNow());
        var outward = new MemoryPort(harness.Wire, Identity.Id, outbound: true) { Cells = origin.Table };
        var inward = new MemoryPort(harness.Wire, origin.Id, outbound: false) { Cells = this, Other = outward };
        outward.Other = inward;
        origin.Ports[Identity.Id] = outward;
        origin.Grants[Identity.Id] = origin.GrantedBy[Identity.Id] = true;
        Port = inward;
    }

    public NodeIdentity Identity { get; }
    public NodeId Id => Identity.Id;
    public Descriptor Descriptor { get; }
    /// <summary>Our end of the link from the origin.</summary>
    public MemoryPort Port { get; }

    /// <summary>Each relay message read, with this hop to answer through; on the wire's delivery, in order.</summary>
    public Action<FakeHop, RelayCommand, ushort, byte[]>? OnMessage { get; set; }

    public IReadOnlyCollection<(RelayCommand Command, ushort StreamId, byte[] Data)> Received => _received;

    /// <summary>The reason of the DESTROY the origin sent, once it did.</summary>
    public DestroyReason? DestroyedBecause { get; private set; }

    /// <summary>Sends a relay message toward the origin, sealed with our layer as an honest exit would.</summary>
    public void Send(RelayCommand command, ushort streamId, ReadOnlySpan<byte> data)
    {
        var cell = new byte[Cell.Size];
        var body = Cell.Body(cell.AsSpan());
        RelayCell.Write(body, command, streamId, data);
        Filler.Fill(body[RelayCell.MessageSize..]);
        lock (_sendLock)
        {
            // Sealing and sending under one lock: the origin opens layers in the order they were sealed.
            _layer!.SealBackward(body);
            Cell.WriteHeader(cell, _id, CellCommand.Relay);
            _port!.TrySend(cell);
        }
    }

    public void OnCell(ICellPort link, Span<byte> cell)
    {
        var body = Cell.Body(cell);
        switch (Cell.Command(cell))
        {
            case CellCommand.Create:
                var reply = new byte[Cell.Size];
                var keys = Ntor.Respond(Id, Identity.LinkKey, body.Slice(2, Ntor.RequestSize), Cell.Body(reply.AsSpan()), OnionLayer.KeyMaterialSize);
                (_port, _id, _layer) = (link, Cell.CircuitId(cell), new OnionLayer(keys));
                Cell.WriteHeader(reply, _id, CellCommand.Created);
                link.TrySend(reply);
                break;
            case CellCommand.Relay or CellCommand.RelayEarly:
                Assert.True(_layer!.OpenForward(body), "a cell from the origin failed our layer");
                var message = RelayCell.Read(body[..RelayCell.MessageSize]);
                var data = message.Data.ToArray();
                _received.Enqueue((message.Command, message.StreamId, data));
                OnMessage?.Invoke(this, message.Command, message.StreamId, data);
                break;
            case CellCommand.Destroy:
                DestroyedBecause = (DestroyReason)body[0];
                break;
        }
    }

    public void OnClosed(ICellPort link)
    {
    }

    public void Dispose()
    {
        _layer?.Dispose();
        Identity.Dispose();
    }
}
