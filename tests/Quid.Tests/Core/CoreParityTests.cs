using System.Net;
using Quid.Core;
using Quid.Node;
using Quid.Sim;
using Quid.Wire;

namespace Quid.Tests.Core;

/// <summary>
/// The real node and the simulator host the same core; what could still differ is how each
/// configures it. The same script of events, fed to the core as each host builds it for the same
/// user (offer, request, hops, bootstrap peer, pace), must give the same effects, byte for byte.
/// </summary>
public sealed class CoreParityTests
{
    private static readonly IPEndPoint Self = new(IPAddress.Parse("198.18.0.1"), 7843);
    private static readonly IPEndPoint Bootstrap = new(IPAddress.Parse("198.18.0.2"), 7843);

    [Fact]
    public void The_same_events_give_the_same_effects_from_the_core_as_the_node_hosts_it_and_as_the_simulator_hosts_it()
    {
        var asNode = QuidNode.CoreOptionsFor(new NodeOptions
        {
            DataDirectory = "unused",
            Offer = Block.FromKbps(1024),
            Request = Block.FromKbps(1024),
            Hops = 3,
            Peers = [Bootstrap.ToString()],
        }, Self);
        var agent = new Agent { Class = AgentClass.Honest, CapacityKbps = 1024, Offer = Block.FromKbps(1024), Request = Block.FromKbps(1024) };
        var asSimulated = SimNode.CoreOptionsFor(new SimOptions { Hops = 3 }, agent, new Host(0, Self, 0, 0, 1024), [Bootstrap], seed: 1);

        var node = Run(asNode);
        var simulated = Run(asSimulated);

        Assert.True(node.Count > 30, $"The script made the core do too little to compare ({node.Count} effects).");
        Assert.Contains(node, e => e.StartsWith("AgreementFormed", StringComparison.Ordinal));
        Assert.Contains(node, e => e.StartsWith("VerdictReached", StringComparison.Ordinal));
        Assert.Equal(node, simulated);
    }

    /// <summary>
    /// A node joins through a bootstrap peer, trades with it, probes it, cuts it, loses the link and
    /// stops; what the core under test did, rendered so that equal effects render equal. Only the
    /// sources of randomness are set by the test (a real node draws from the operating system).
    /// </summary>
    private static List<string> Run(CoreOptions options)
    {
        using var h = new CoreHarness();
        var peer = h.Add(CoreHarness.Options(1024, 256, seed: 7) with { Address = Bootstrap }, CoreHarness.Identity(2));
        var node = h.Add(options with
        {
            Overlay = options.Overlay with { Random = new Random(1) },
            Market = options.Market with { Random = new Random(2), FirstProbeMin = TimeSpan.FromSeconds(5), FirstProbeMax = TimeSpan.FromSeconds(5) },
        }, CoreHarness.Identity(1));

        h.Tick(times: 10);
        h.Execute(node, node.Core.ProbeMeasured(peer.Id, 10, 256));
        h.Execute(node, node.Core.ProbeMeasured(peer.Id, 10, 256));
        h.Deliver();
        h.Tick(times: 5);
        h.Close(peer, peer.Core.LinkTo(node.Id)!);
        h.Tick(times: 5);
        h.Execute(node, node.Core.Stop());
        return [.. node.Effects.Select(Render)];
    }

    private static string Render(NodeEffect effect) => effect switch
    {
        NodeEffect.Send send => $"Send {send.To} {Convert.ToHexString(ControlCodec.Encode(send.Message))}",
        NodeEffect.DescriptorPublished published => $"Published {Convert.ToHexString(published.Descriptor.Encoded)}",
        NodeEffect.AgreementFormed formed => $"AgreementFormed {formed.Agreement.Id} {formed.Agreement.WeGrant} {formed.Agreement.TheyGrant}",
        NodeEffect.AgreementEnded ended => $"AgreementEnded {ended.Agreement.Id} {ended.Reason}",
        _ => effect.ToString(),
    };
}
