using System.Net;
using Quid.Links.PortMapping;
using Quid.Wire;

namespace Quid.Tests.Links.PortMapping;

/// <summary>
/// The NAT-PMP and PCP messages against the RFCs' layouts, and against responses Debian's
/// miniupnpd 2.3.1 sent to the same requests (captured in tests/testbed/portmap-check.sh's
/// namespaces); refusals of everything else are typed.
/// </summary>
public sealed class PortMappingCodecTests
{
    private static readonly byte[] Nonce = Convert.FromHexString("000102030405060708090a0b");

    [Fact]
    public void A_NAT_PMP_TCP_mapping_request_is_RFC_6886s_12_bytes_and_a_delete_has_lifetime_and_suggested_port_0()
    {
        // Version 0, opcode 2 (TCP), reserved 0, internal port, suggested external port, lifetime (§3.3).
        Assert.Equal(Convert.FromHexString("000200001ea31ea300001c20"), NatPmp.MapTcpRequest(7843, 7843, 7200));
        Assert.Equal(Convert.FromHexString("000200001ea3000000000000"), NatPmp.MapTcpRequest(7843, 0, 0));
        Assert.Equal(Convert.FromHexString("0000"), NatPmp.ExternalAddressRequest());
    }

    [Fact]
    public void Miniupnpds_NAT_PMP_answers_decode_to_the_address_port_and_lifetime_it_gave()
    {
        var address = NatPmp.DecodeExternalAddress(Convert.FromHexString("0080000000000002c6120001"));
        Assert.Equal(new NatPmpExternalAddress(NatPmpResult.Success, 2, IPAddress.Parse("198.18.0.1")), address);
        var mapping = NatPmp.DecodeMapTcp(Convert.FromHexString("00820000000000021ea31ea300000e10"));
        Assert.Equal(new NatPmpMapResponse(NatPmpResult.Success, 2, 7843, 7843, 3600), mapping);
        // Its refusal when its outside address is reserved and no STUN said otherwise.
        Assert.Equal(NatPmpResult.NetworkFailure, NatPmp.DecodeMapTcp(Convert.FromHexString("00820003000000011ea31ea300000e10")).Result);
        // Its answer to a request of another version: the header alone.
        Assert.Equal(new NatPmpHeader(129, NatPmpResult.UnsupportedVersion, 1), NatPmp.DecodeHeader(Convert.FromHexString("0081000100000001")));
        Assert.Equal(NatPmpResult.NotAuthorized, NatPmp.DecodeMapTcp(Convert.FromHexString("0082000200000001")).Result);
    }

    public static TheoryData<string, string, WireError> BadNatPmpMappings => new()
    {
        { "empty", "", WireError.Truncated },
        { "header cut", "00820000000000", WireError.Truncated },
        { "success cut short", "00820000000000021ea31ea300000e", WireError.Truncated },
        { "error of 12 bytes, neither header nor whole", "00820002000000011ea31ea3", WireError.Truncated },
        { "a byte too many", "00820000000000021ea31ea300000e1000", WireError.Oversized },
        { "version 1", "01820000000000021ea31ea300000e10", WireError.BadVersion },
        { "a request, not a response", "00020000000000021ea31ea300000e10", WireError.UnknownCommand },
        { "the UDP mapping's answer", "00810000000000021ea31ea300000e10", WireError.UnknownCommand },
    };

    [Theory]
    [MemberData(nameof(BadNatPmpMappings))]
    public void A_malformed_NAT_PMP_mapping_response_is_refused_with_a_typed_error(string _, string hex, WireError error) =>
        Assert.Equal(error, Assert.Throws<WireException>(() => NatPmp.DecodeMapTcp(Convert.FromHexString(hex))).Error);

    [Fact]
    public void A_malformed_NAT_PMP_address_response_is_refused_with_a_typed_error()
    {
        Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => NatPmp.DecodeExternalAddress(Convert.FromHexString("0080000000000002c612"))).Error);
        Assert.Equal(WireError.Oversized, Assert.Throws<WireException>(() => NatPmp.DecodeExternalAddress(Convert.FromHexString("0080000000000002c612000100"))).Error);
        Assert.Equal(WireError.UnknownCommand, Assert.Throws<WireException>(() => NatPmp.DecodeExternalAddress(Convert.FromHexString("00820000000000021ea31ea300000e10"))).Error);
    }

    [Fact]
    public void A_PCP_MAP_request_is_RFC_6887s_60_bytes_with_IPv4_mapped_addresses()
    {
        var request = Pcp.MapRequest(Nonce, IPAddress.Parse("10.0.0.2"), 7843, 7843, null, 3600);
        // Header (§7.1): version 2, R=0 opcode MAP, reserved, lifetime, client address.
        // MAP (§11.1): nonce, protocol 6, reserved, internal port, suggested port, suggested address (none).
        Assert.Equal(Convert.FromHexString(
            "0201000000000e10" + "00000000000000000000ffff0a000002" +
            "000102030405060708090a0b" + "06000000" + "1ea31ea3" + "00000000000000000000000000000000"), request);
        var renewal = Pcp.MapRequest(Nonce, IPAddress.Parse("10.0.0.2"), 7843, 7844, IPAddress.Parse("198.18.0.1"), 3600);
        Assert.Equal(Convert.FromHexString("1ea31ea400000000000000000000ffffc6120001"), renewal[40..]);
    }

    [Fact]
    public void Miniupnpds_PCP_answers_decode_to_the_mapping_or_the_refusal_it_gave()
    {
        var mapped = Pcp.DecodeMapResponse(Convert.FromHexString(
            "0281000000000e1000000002000000000000000000000000" + "000102030405060708090a0b" + "060000001ea31ea3" + "00000000000000000000ffffc6120001"), Nonce);
        Assert.Equal(new PcpMapResponse(PcpResult.Success, 3600, 2, 7843, 7843, IPAddress.Parse("198.18.0.1")), mapped);
        var refused = Pcp.DecodeMapResponse(Convert.FromHexString(
            "028100080000001e00000001000000000000000000000000" + "000102030405060708090a0b" + "060000001ea31ea3" + "00000000000000000000ffffc6120001"), Nonce);
        Assert.Equal((PcpResult.NoResources, 30u), (refused.Result, refused.LifetimeSeconds));
        // A server that could not read the request answers with the header alone.
        Assert.Equal(PcpResult.MalformedRequest, Pcp.DecodeMapResponse(Convert.FromHexString("028100030000000000000001000000000000000000000000"), Nonce).Result);
    }

    [Fact]
    public void A_PCP_response_with_options_has_them_skipped_and_one_running_past_the_end_is_refused()
    {
        string map = "0281000000000e1000000002000000000000000000000000" + "000102030405060708090a0b" + "060000001ea31ea3" + "00000000000000000000ffffc6120001";
        // A FILTER-like option: code 3, reserved, length 20, 20 bytes.
        Assert.Equal(PcpResult.Success, Pcp.DecodeMapResponse(Convert.FromHexString(map + "03000014" + new string('0', 40)), Nonce).Result);
        Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => Pcp.DecodeMapResponse(Convert.FromHexString(map + "03000014" + new string('0', 32)), Nonce)).Error);
    }

    public static TheoryData<string, string, WireError> BadPcpResponses => new()
    {
        { "empty", "", WireError.Truncated },
        { "header cut", "0281000000000e10000000020000000000000000", WireError.Truncated },
        { "success with the header alone", "0281000000000e1000000002000000000000000000000000", WireError.Truncated },
        { "MAP fields cut", "0281000000000e1000000002000000000000000000000000000102030405060708090a0b060000001ea31ea3", WireError.Truncated },
        { "not a multiple of 4", "0281000000000e1000000002000000000000000000000000ff", WireError.BadField },
        { "over 1100 bytes", "0281000000000e1000000002000000000000000000000000000102030405060708090a0b060000001ea31ea300000000000000000000ffffc6120001" + "00000000" + new string('0', 2 * 1040), WireError.Oversized },
        { "version 1", "0181000000000e1000000002000000000000000000000000000102030405060708090a0b060000001ea31ea300000000000000000000ffffc6120001", WireError.BadVersion },
        { "a request", "0201000000000e1000000002000000000000000000000000000102030405060708090a0b060000001ea31ea300000000000000000000ffffc6120001", WireError.UnknownCommand },
        { "PEER, not MAP", "0282000000000e1000000002000000000000000000000000000102030405060708090a0b060000001ea31ea300000000000000000000ffffc6120001", WireError.UnknownCommand },
        { "another nonce", "0281000000000e1000000002000000000000000000000000ff0102030405060708090a0b060000001ea31ea300000000000000000000ffffc6120001", WireError.BadField },
        { "UDP, not TCP", "0281000000000e1000000002000000000000000000000000000102030405060708090a0b110000001ea31ea300000000000000000000ffffc6120001", WireError.BadField },
    };

    [Theory]
    [MemberData(nameof(BadPcpResponses))]
    public void A_malformed_or_foreign_PCP_response_is_refused_with_a_typed_error(string _, string hex, WireError error) =>
        Assert.Equal(error, Assert.Throws<WireException>(() => Pcp.DecodeMapResponse(Convert.FromHexString(hex), Nonce)).Error);

    [Fact]
    public void Random_and_cut_input_gets_only_typed_refusals_from_every_decoder()
    {
        var random = new Random(6887);
        var valid = Convert.FromHexString("0281000000000e1000000002000000000000000000000000000102030405060708090a0b060000001ea31ea300000000000000000000ffffc6120001");
        for (int i = 0; i < 20_000; i++)
        {
            byte[] input = i % 2 == 0 ? new byte[random.Next(0, 1200)] : valid[..random.Next(0, valid.Length + 1)];
            if (i % 2 == 0) random.NextBytes(input);
            else if (input.Length > 0) input[random.Next(input.Length)] ^= (byte)random.Next(256);
            // Each decoder either answers or refuses with a WireException; any other exception fails the test.
            Try(() => Pcp.DecodeMapResponse(input, Nonce));
            Try(() => NatPmp.DecodeHeader(input));
            Try(() => NatPmp.DecodeMapTcp(input));
            Try(() => NatPmp.DecodeExternalAddress(input));
        }

        static void Try(Action decode)
        {
            try
            {
                decode();
            }
            catch (WireException)
            {
                // A refusal is the contract.
            }
        }
    }
}
