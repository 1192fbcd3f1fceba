using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Links.PortMapping;
using Quid.Node;
using Quid.Node.Control;
using Quid.Tests.Integration;

namespace Quid.Tests.Node;

/// <summary>
/// The port mapping in a real node, against a fake gateway on 127.0.17.1: the gateway address is
/// injected, so nothing is sent beyond loopback. And when the node asks at all.
/// </summary>
public sealed class PortMappingHostTests
{
    [Fact]
    public void The_default_gateway_is_read_from_proc_net_routes_default_route()
    {
        const string table = """
            Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
            eth0	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
            eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0
            """;
        Assert.Equal(IPAddress.Parse("192.0.2.1"), PortMappingHost.DefaultGateway(table));
        Assert.Null(PortMappingHost.DefaultGateway(table.Split('\n')[0] + "\n" + table.Split('\n')[1]));
        Assert.Null(PortMappingHost.DefaultGateway(""));
        Assert.Null(PortMappingHost.DefaultGateway("Iface\tDestination\nwhat\tever\n"));
    }

    [Theory]
    [InlineData("0.0.0.0", null, "auto", null)]
    [InlineData("::", null, "auto", null)]
    [InlineData("10.0.0.2", null, "auto", null)]
    [InlineData("192.168.1.20", null, "auto", null)]
    [InlineData("172.20.0.3", null, "auto", null)]
    [InlineData("100.64.1.1", null, "auto", null)]
    [InlineData("127.0.0.1", null, "auto", "not tried: listening on loopback")]
    [InlineData("127.0.17.2", null, "auto", "not tried: listening on loopback")]
    [InlineData("198.18.0.5", null, "auto", "not needed: the listen address is public")]
    [InlineData("0.0.0.0", "203.0.113.7:7843", "auto", "not needed: advertise is set")]
    [InlineData("0.0.0.0", null, "off", "port-mapping = off")]
    [InlineData("127.0.0.1", "203.0.113.7:7843", "auto", "not needed: advertise is set")]
    public void Auto_asks_only_when_no_address_is_advertised_and_the_listen_address_is_a_wildcard_or_private(string listen, string? advertise, string mode, string? whyNot)
    {
        var options = new NodeOptions
        {
            DataDirectory = "unused",
            Listen = new IPEndPoint(IPAddress.Parse(listen), 7843),
            Advertise = advertise is null ? null : IPEndPoint.Parse(advertise),
            PortMapping = mode == "off" ? PortMappingMode.Off : PortMappingMode.Auto,
        };
        Assert.Equal(whyNot, PortMappingHost.WhyNot(options));
    }

    [Fact]
    public async Task A_port_mapped_by_PCP_becomes_the_advertised_address_and_is_deleted_when_the_node_stops()
    {
        await using var gateway = new FakeGateway(IPAddress.Parse("127.0.17.1"), FakeGateway.Speaks.Pcp);
        string directory = Directory.CreateTempSubdirectory("quid-portmap-").FullName;
        var logs = new LogCapture(LogLevel.Information);
        try
        {
            var node = await QuidNode.StartAsync(Options(directory, gateway), logs);
            ReachabilityStatus reachability = null!;
            await using (node)
            {
                await Eventually.WaitUntilAsync(async () => (reachability = (await node.StatusAsync()).Reachability).Origin == AddressOrigin.PortMapping,
                    TimeSpan.FromSeconds(10), "the mapped address to be advertised");
                Assert.Equal(new IPEndPoint(FakeGateway.Outside, 7843), reachability.Advertised);
                Assert.Equal("mapped", reachability.PortMapping.State);
                var report = ControlViews.Reachable(reachability);
                Assert.Equal(Reachability.Advertised, report.State);
                Assert.Equal("advertised at 198.18.0.5:7843 (mapped by PCP on gateway 127.0.17.1), no link dialed in yet", report.Text);
                // The request named our listener's port, from the address the gateway sees.
                var request = gateway.Received.First();
                Assert.Equal((ushort)node.LinkEndPoint.Port, BinaryPrimitives.ReadUInt16BigEndian(request.AsSpan(40)));
                Assert.Equal(IPAddress.Parse("127.0.17.2").MapToIPv6(), new IPAddress(request.AsSpan(8, 16)));
            }
            // Stopping deleted the mapping: the same nonce, lifetime 0.
            var delete = gateway.Received.Last();
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(delete.AsSpan(4)));
            Assert.Equal(gateway.Received.First().AsSpan(24, 12).ToArray(), delete.AsSpan(24, 12).ToArray());
            Assert.Single(logs.Lines, l => l.Text.Contains("Gateway 127.0.17.1 maps 198.18.0.5:7843 to our port", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task A_NAT_PMP_gateway_maps_after_refusing_PCPs_version_and_a_refusing_gateway_leaves_the_listen_address_advertised()
    {
        await using var natPmp = new FakeGateway(IPAddress.Parse("127.0.17.1"), FakeGateway.Speaks.NatPmp);
        await using var refusing = new FakeGateway(IPAddress.Parse("127.0.17.3"), FakeGateway.Speaks.Refuses);
        string directory = Directory.CreateTempSubdirectory("quid-portmap-").FullName;
        string other = Directory.CreateTempSubdirectory("quid-portmap-").FullName;
        var logs = new LogCapture(LogLevel.Information);
        try
        {
            await using var mapped = await QuidNode.StartAsync(Options(directory, natPmp), logs);
            await Eventually.WaitUntilAsync(async () => (await mapped.StatusAsync()).Reachability.PortMapping.Protocol == MappingProtocol.NatPmp,
                TimeSpan.FromSeconds(10), "a NAT-PMP mapping");
            Assert.Equal(new IPEndPoint(FakeGateway.Outside, 7843), (await mapped.StatusAsync()).Reachability.Advertised);

            await using var refused = await QuidNode.StartAsync(Options(other, refusing) with { Listen = new IPEndPoint(IPAddress.Parse("127.0.17.4"), 0) }, logs);
            await Eventually.WaitUntilAsync(async () => (await refused.StatusAsync()).Reachability.PortMapping.State == "failed", TimeSpan.FromSeconds(10), "the refusal");
            var reachability = (await refused.StatusAsync()).Reachability;
            Assert.Equal(refused.LinkEndPoint, reachability.Advertised);
            Assert.Equal(AddressOrigin.ListenAddress, reachability.Origin);
            Assert.Equal("gateway 127.0.17.3: the gateway refused the mapping: PCP NotAuthorized", ControlViews.Reachable(reachability).PortMappingText);
            Assert.Single(logs.Lines, l => l.Text.Contains("No port mapping from gateway 127.0.17.3: the gateway refused the mapping: PCP NotAuthorized", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
            Directory.Delete(other, recursive: true);
        }
    }

    [Fact]
    public async Task A_gateway_where_nothing_listens_on_5351_is_one_failure_said_once_after_the_bounded_tries()
    {
        // A closed port: each request comes back as ICMP port unreachable, an error on the connected socket.
        IPEndPoint closed;
        using (var probe = new UdpClient(new IPEndPoint(IPAddress.Parse("127.0.17.5"), 0))) closed = (IPEndPoint)probe.Client.LocalEndPoint!;
        var changes = new ConcurrentQueue<Mapping?>();
        var logs = new LogCapture(LogLevel.Information);
        var quick = new PortMapperOptions { InitialTimeout = TimeSpan.FromMilliseconds(5), PcpTries = 2, NatPmpTries = 2 };
        var host = PortMappingHost.Start(closed, IPAddress.Parse("127.0.17.6"), 7843, TimeProvider.System, logs.CreateLogger("test"), changes.Enqueue, quick);
        await using (host)
        {
            await Eventually.WaitUntilAsync(() => host.Status.State == "failed", TimeSpan.FromSeconds(10), "the failure");
            Assert.Equal("the gateway answered neither PCP nor NAT-PMP (2 + 2 tries)", host.Status.Reason);
            Assert.Null(Assert.Single(changes));
        }
        Assert.Single(logs.Lines, l => l.Text.Contains("No port mapping from gateway 127.0.17.5: the gateway answered neither", StringComparison.Ordinal));
    }

    [Fact]
    public void Status_says_reachable_only_once_a_link_has_dialed_in_and_otherwise_why_not()
    {
        var mapped = new PortMappingStatus("mapped", IPAddress.Parse("10.0.0.1"), new IPEndPoint(FakeGateway.Outside, 7843), MappingProtocol.NatPmp, null);
        Assert.Equal("reachable at 198.18.0.5:7843 (mapped by NAT-PMP on gateway 10.0.0.1; 3 links dialed in)",
            ControlViews.Reachable(new ReachabilityStatus(new IPEndPoint(FakeGateway.Outside, 7843), AddressOrigin.PortMapping, 3, mapped)).Text);
        var failed = new PortMappingStatus("failed", IPAddress.Parse("10.0.0.1"), null, null, "the gateway answered neither PCP nor NAT-PMP (4 + 9 tries)");
        var report = ControlViews.Reachable(new ReachabilityStatus(null, AddressOrigin.None, 0, failed));
        Assert.Equal(Reachability.NotReachable, report.State);
        Assert.Equal("not reachable: no public address, dial-out only (port mapping: gateway 10.0.0.1: the gateway answered neither PCP nor NAT-PMP (4 + 9 tries))", report.Text);
        Assert.Equal("advertised at 203.0.113.7:7843 (set by advertise), no link dialed in yet",
            ControlViews.Reachable(new ReachabilityStatus(IPEndPoint.Parse("203.0.113.7:7843"), AddressOrigin.Advertise, 0, PortMappingStatus.NotTried("not needed: advertise is set"))).Text);
    }

    private static NodeOptions Options(string directory, FakeGateway gateway) => new()
    {
        DataDirectory = directory,
        Listen = new IPEndPoint(IPAddress.Parse("127.0.17.2"), 0),
        Socks = null,
        HttpProxy = null,
        Gateway = gateway.EndPoint,
    };

    /// <summary>A NAT gateway's port-mapping server on loopback that speaks PCP, only NAT-PMP, or refuses; it keeps what it received.</summary>
    private sealed class FakeGateway : IAsyncDisposable
    {
        public enum Speaks { Pcp, NatPmp, Refuses }

        public static readonly IPAddress Outside = IPAddress.Parse("198.18.0.5");

        private readonly UdpClient _udp;
        private readonly Speaks _speaks;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _serving;

        public FakeGateway(IPAddress address, Speaks speaks)
        {
            _udp = new UdpClient(new IPEndPoint(address, 0));
            _speaks = speaks;
            _serving = ServeAsync();
        }

        public IPEndPoint EndPoint => (IPEndPoint)_udp.Client.LocalEndPoint!;
        public ConcurrentQueue<byte[]> Received { get; } = new();

        private async Task ServeAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                UdpReceiveResult datagram;
                try
                {
                    datagram = await _udp.ReceiveAsync(_stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                Received.Enqueue(datagram.Buffer);
                if (Answer(datagram.Buffer) is { } answer) await _udp.SendAsync(answer, datagram.RemoteEndPoint);
            }
        }

        private byte[]? Answer(byte[] request)
        {
            if (request[0] == Pcp.Version)
            {
                if (_speaks == Speaks.NatPmp) return [0, (byte)(128 + request[1]), 0, 1, 0, 0, 0, 9];
                var answer = new byte[Pcp.MapSize];
                answer[0] = 2;
                answer[1] = 0x81;
                answer[3] = (byte)(_speaks == Speaks.Refuses ? PcpResult.NotAuthorized : PcpResult.Success);
                request.AsSpan(4, 4).CopyTo(answer.AsSpan(4));
                request.AsSpan(24, 36).CopyTo(answer.AsSpan(24));
                BinaryPrimitives.WriteUInt16BigEndian(answer.AsSpan(42), 7843);
                Outside.MapToIPv6().TryWriteBytes(answer.AsSpan(44, 16), out _);
                return answer;
            }
            if (request.Length == 2) return [0, 128, 0, 0, 0, 0, 0, 9, .. Outside.GetAddressBytes()];
            var mapped = new byte[16];
            mapped[1] = 130;
            request.AsSpan(4, 2).CopyTo(mapped.AsSpan(8));
            BinaryPrimitives.WriteUInt16BigEndian(mapped.AsSpan(10), 7843);
            request.AsSpan(8, 4).CopyTo(mapped.AsSpan(12));
            return mapped;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _serving;
            _udp.Dispose();
            _stop.Dispose();
        }
    }
}
