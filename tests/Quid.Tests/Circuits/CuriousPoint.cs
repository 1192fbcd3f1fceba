using Quid.Crypto;
using Quid.Links;
using Quid.Tests.Wire;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>
/// A rendezvous point the test plays, written from the protocol notes alone (not with the
/// node's classes), that keeps everything it decrypts: every relay message body as it is once
/// its own layer is off, on either circuit. It follows the rules honestly, so what it records is
/// exactly what a curious R can read. It carries no flow control and no limits: a test has one
/// client and one service.
/// </summary>
internal sealed class CuriousPoint : ICircuitCells, IDisposable
{
    private sealed class Leg(ICellPort port, uint id, OnionLayer layer)
    {
        public ICellPort Port => port;
        public uint Id => id;
        public OnionLayer Layer => layer;
        public Leg? Joined { get; set; }
    }

    private readonly CircuitHarness _net;
    private readonly Dictionary<(ICellPort, uint), Leg> _legs = [];
    private readonly Dictionary<RendezvousCookie, Leg> _waiting = [];
    private readonly List<byte[]> _read = [];

    public CuriousPoint(CircuitHarness net)
    {
        _net = net;
        Identity = NodeIdentity.Generate(out _);
        Descriptor = TestDescriptors.Make(Identity, Block.FromKbps(1024), null, policy: ExitPolicy.AcceptAll, published: net.Time.GetUtcNow());
    }

    public NodeIdentity Identity { get; }
    public NodeId Id => Identity.Id;
    public Descriptor Descriptor { get; }

    /// <summary>Every message body this point had in the clear after opening its layer, in order (on the wire's delivery thread).</summary>
    public IReadOnlyList<byte[]> Read => _read;

    /// <summary>Links <paramref name="dialer"/> to this point as partners, so it may extend circuits here.</summary>
    public void LinkFrom(CircuitNode dialer)
    {
        var outward = new MemoryPort(_net.Wire, Id, outbound: true) { Cells = dialer.Table };
        var inward = new MemoryPort(_net.Wire, dialer.Id, outbound: false) { Cells = this, Other = outward };
        outward.Other = inward;
        dialer.Ports[Id] = outward;
        dialer.Grants[Id] = dialer.GrantedBy[Id] = true;
    }

    public void OnCell(ICellPort link, Span<byte> cell)
    {
        var body = Cell.Body(cell);
        uint id = Cell.CircuitId(cell);
        switch (Cell.Command(cell))
        {
            case CellCommand.Create:
                var reply = new byte[Cell.Size];
                var keys = Ntor.Respond(Id, Identity.LinkKey, body.Slice(2, Ntor.RequestSize), Cell.Body(reply.AsSpan()), OnionLayer.KeyMaterialSize);
                _legs[(link, id)] = new Leg(link, id, new OnionLayer(keys));
                Cell.WriteHeader(reply, id, CellCommand.Created);
                link.TrySend(reply);
                break;
            case CellCommand.Relay or CellCommand.RelayEarly when _legs.TryGetValue((link, id), out var leg):
                Assert.True(leg.Layer.OpenForward(body), "a cell failed the point's layer");
                _read.Add(body[..RelayCell.MessageSize].ToArray());
                if (leg.Joined is { } joined)
                {
                    // The splice rule: on into the other circuit, sealed as its last hop seals a cell toward its origin.
                    joined.Layer.SealBackward(body);
                    Cell.WriteHeader(cell, joined.Id, CellCommand.Relay);
                    joined.Port.TrySend(cell);
                    return;
                }
                OnMessage(leg, RelayCell.Read(body[..RelayCell.MessageSize]));
                break;
        }
    }

    private void OnMessage(Leg leg, RelayMessage message)
    {
        switch (message.Command)
        {
            case RelayCommand.EstablishRendezvous:
                _waiting.Add(EstablishRendezvousBody.Read(message.Data).Cookie, leg);
                Send(leg, RelayCommand.RendezvousEstablished, []);
                break;
            case RelayCommand.Rendezvous:
                var rendezvous = RendezvousBody.Read(message.Data);
                Assert.True(_waiting.Remove(rendezvous.Cookie, out var client), "a Rendezvous for a cookie nobody established");
                Send(leg, RelayCommand.RendezvousJoined, []);
                (client.Joined, leg.Joined) = (leg, client);
                Send(client, RelayCommand.Rendezvous2, rendezvous.HandshakeReply);
                break;
            default:
                Assert.Fail($"{message.Command} reached the point itself");
                break;
        }
    }

    private static void Send(Leg leg, RelayCommand command, ReadOnlySpan<byte> data)
    {
        var cell = new byte[Cell.Size];
        var body = Cell.Body(cell.AsSpan());
        RelayCell.Write(body, command, 0, data);
        Filler.Fill(body[RelayCell.MessageSize..]);
        leg.Layer.SealBackward(body);
        Cell.WriteHeader(cell, leg.Id, CellCommand.Relay);
        leg.Port.TrySend(cell);
    }

    public void OnClosed(ICellPort link)
    {
    }

    public void Dispose()
    {
        foreach (var leg in _legs.Values) leg.Layer.Dispose();
        Identity.Dispose();
    }
}
