using System.Net;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Tests.Wire;

/// <summary>
/// The bodies of circuit cells and relay messages (docs/PROTOCOL.md §3, §6.1, §6.2, §9.10): each round-trips,
/// and whatever bytes a hop sends, reading them gives the body or a <see cref="WireException"/>
/// (or false, for the readers a neighbour can call once per cell), never another exception.
/// </summary>
public sealed class CircuitBodyTests
{
    private static readonly NodeId Next = new(Enumerable.Range(1, NodeId.Size).Select(i => (byte)i).ToArray());
    private static readonly RendezvousCookie Cookie = new(Enumerable.Range(7, RendezvousCookie.Size).Select(i => (byte)i).ToArray());

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Each relay-message reader, with a valid encoding of its body.</summary>
    public static TheoryData<string> Readers => [.. RelayReaders.Keys];

    private static readonly Dictionary<string, (Action<byte[]> Read, byte[] Valid)> RelayReaders = new()
    {
        ["extend"] = (d => ExtendBody.Read(d), Written(new ExtendBody(Next, Bytes(Ntor.RequestSize, 1)).Write, ExtendBody.Size)),
        ["extended"] = (d => ExtendedBody.Read(d), Written(new ExtendedBody(Bytes(Ntor.ReplySize, 2)).Write, ExtendedBody.Size)),
        ["extend-failed"] = (d => ExtendFailedBody.Read(d), [(byte)ExtendFailure.Timeout]),
        ["end"] = (d => EndBody.Read(d), [(byte)EndReason.Done]),
        ["connected-v4"] = (d => ConnectedBody.Read(d), [4, 192, 0, 2, 1]),
        ["connected-v6"] = (d => ConnectedBody.Read(d), Written(new ConnectedBody(IPAddress.Parse("2001:db8::7")).Write, ConnectedBody.MaxSize)),
        ["resolved"] = (d => ResolvedBody.Read(d), [0, 2, 4, 192, 0, 2, 1, 6, .. IPAddress.Parse("2001:db8::1").GetAddressBytes()]),
        ["resolved-failed"] = (d => ResolvedBody.Read(d), [(byte)EndReason.ResolveFailed, 0]),
        ["establish-rendezvous"] = (d => EstablishRendezvousBody.Read(d), Written(new EstablishRendezvousBody(Cookie).Write, EstablishRendezvousBody.Size)),
        ["rendezvous"] = (d => RendezvousBody.Read(d), Written(new RendezvousBody(Cookie, Bytes(Ntor.ReplySize, 2)).Write, RendezvousBody.Size)),
        ["rendezvous2"] = (d => Rendezvous2Body.Read(d), Written(new Rendezvous2Body(Bytes(Ntor.ReplySize, 3)).Write, Rendezvous2Body.Size)),
        ["rendezvous-failed"] = (d => RendezvousFailedBody.Read(d), [(byte)RendezvousFailure.CookieInUse]),
    };

    private delegate int Writer(Span<byte> data);

    private static byte[] Written(Writer write, int size)
    {
        var data = new byte[size];
        return data[..write(data)];
    }

    [Theory]
    [MemberData(nameof(Readers))]
    public void Every_shorter_prefix_of_a_valid_body_is_refused_as_truncated(string reader)
    {
        var (read, valid) = RelayReaders[reader];
        read(valid);
        for (int length = 0; length < valid.Length; length++)
            Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => read(valid[..length])).Error);
    }

    [Theory]
    [MemberData(nameof(Readers))]
    public void A_valid_body_with_one_byte_more_is_refused(string reader)
    {
        var (read, valid) = RelayReaders[reader];
        foreach (byte extra in new byte[] { 0, 0xFF })
            Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => read([.. valid, extra])).Error);
        Assert.Throws<WireException>(() => read([.. valid, .. new byte[RelayCell.MaxData]]));
    }

    [Theory]
    [MemberData(nameof(Readers))]
    public void Random_bytes_are_a_body_or_a_WireException_and_nothing_else(string reader)
    {
        var (read, valid) = RelayReaders[reader];
        var random = new Random(reader.Length * 7919);
        for (int i = 0; i < 5_000; i++)
        {
            // Half the inputs keep the valid body's first byte, so the reader gets past its first check.
            var data = Bytes(random.Next(i % 10 == 0 ? RelayCell.MaxData + 1 : 2 * valid.Length + 2), random.Next());
            if (data.Length > 0 && i % 2 == 0) data[0] = valid[0];
            try
            {
                read(data);
            }
            catch (WireException)
            {
            }
        }
    }

    [Fact]
    public void Extend_and_Extended_round_trip()
    {
        var request = Bytes(Ntor.RequestSize, 3);
        var extend = ExtendBody.Read(Written(new ExtendBody(Next, request).Write, ExtendBody.Size));
        Assert.Equal(Next, extend.Next);
        Assert.Equal(request, extend.NtorRequest);
        Assert.False(extend.EvenIfFull);
        var insisting = Written(new ExtendBody(Next, request, EvenIfFull: true).Write, ExtendBody.Size);
        Assert.True(ExtendBody.Read(insisting).EvenIfFull);
        insisting[^1] = 2;
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ExtendBody.Read(insisting)).Error);

        var reply = Bytes(Ntor.ReplySize, 4);
        Assert.Equal(reply, ExtendedBody.Read(Written(new ExtendedBody(reply).Write, ExtendedBody.Size)).NtorReply);
    }

    [Fact]
    public void Every_named_reason_round_trips_and_any_other_byte_is_refused()
    {
        foreach (var reason in Enum.GetValues<ExtendFailure>())
            Assert.Equal(reason, ExtendFailedBody.Read(Written(new ExtendFailedBody(reason).Write, 1)).Reason);
        foreach (var reason in Enum.GetValues<EndReason>())
            Assert.Equal(reason, EndBody.Read(Written(new EndBody(reason).Write, 1)).Reason);
        for (int b = 0; b < 256; b++)
        {
            if (!Enum.IsDefined((ExtendFailure)b)) Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ExtendFailedBody.Read([(byte)b])).Error);
            if (!Enum.IsDefined((EndReason)b)) Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => EndBody.Read([(byte)b])).Error);
        }
        Assert.Throws<ArgumentException>(() => new EndBody((EndReason)0).Write(new byte[1]));
        Assert.Throws<ArgumentException>(() => new ExtendFailedBody((ExtendFailure)0).Write(new byte[1]));
    }

    [Theory]
    [InlineData("192.0.2.1")]
    [InlineData("2001:db8::1")]
    [InlineData("::ffff:192.0.2.1")]
    public void Connected_round_trips_and_carries_an_IPv4_mapped_address_as_IPv4(string text)
    {
        var address = IPAddress.Parse(text);
        var decoded = ConnectedBody.Read(Written(new ConnectedBody(address).Write, ConnectedBody.MaxSize)).Address;
        Assert.Equal(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address, decoded);
    }

    [Fact]
    public void Resolved_round_trips_addresses_or_a_reason()
    {
        IPAddress[] addresses = [.. Enumerable.Range(1, ResolvedBody.MaxAddresses).Select(i => i % 2 == 0 ? IPAddress.Parse($"192.0.2.{i}") : IPAddress.Parse($"2001:db8::{i}"))];
        var found = ResolvedBody.Read(Written(ResolvedBody.Found(addresses).Write, ResolvedBody.MaxSize));
        Assert.Null(found.Failure);
        Assert.Equal(addresses, found.Addresses);

        foreach (var reason in Enum.GetValues<EndReason>().Where(r => r != EndReason.Done))
        {
            var refused = ResolvedBody.Read(Written(ResolvedBody.Refused(reason).Write, 2));
            Assert.Equal(reason, refused.Failure);
            Assert.Empty(refused.Addresses);
        }
    }

    [Theory]
    [InlineData(new byte[] { 0, 0 })]
    [InlineData(new byte[] { 0, ResolvedBody.MaxAddresses + 1 })]
    [InlineData(new byte[] { (byte)EndReason.Done, 0 })]
    [InlineData(new byte[] { 0xEE, 0 })]
    [InlineData(new byte[] { (byte)EndReason.ResolveFailed, 1, 4, 192, 0, 2, 1 })]
    [InlineData(new byte[] { 0, 1, 5, 192, 0, 2, 1 })]
    public void Resolved_is_either_addresses_or_a_reason_why_not(byte[] data)
    {
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ResolvedBody.Read(data)).Error);
    }

    [Fact]
    public void Writers_refuse_what_a_reader_would_refuse()
    {
        var body = new byte[Cell.BodySize];
        Assert.Throws<ArgumentException>(() => ResolvedBody.Found([]));
        Assert.Throws<ArgumentException>(() => ResolvedBody.Found(Enumerable.Repeat(IPAddress.Loopback, ResolvedBody.MaxAddresses + 1)));
        Assert.Throws<ArgumentException>(() => ResolvedBody.Refused(EndReason.Done));
        Assert.Throws<ArgumentException>(() => new ExtendBody(Next, new byte[Ntor.RequestSize - 1]).Write(body));
        Assert.Throws<ArgumentException>(() => new ExtendedBody(new byte[Ntor.ReplySize + 1]).Write(body));
        Assert.Throws<ArgumentException>(() => new CreateBody(new byte[Ntor.RequestSize + 1]).Write(body));
        Assert.Throws<ArgumentException>(() => new CreatedBody(new byte[Ntor.ReplySize - 1]).Write(body));
    }

    [Fact]
    public void Create_and_Created_fill_a_whole_cell_body_and_round_trip_whatever_the_padding()
    {
        var body = new byte[Cell.BodySize];
        Array.Fill(body, (byte)0xEE);
        var request = Bytes(Ntor.RequestSize, 5);
        new CreateBody(request).Write(body);
        // Old bytes past the request never leak into a cell.
        Assert.True(body.AsSpan(CreateBody.Size).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(CreateBody.TryRead(body, out var create));
        Assert.Equal(request, create.NtorRequest);
        // Receivers ignore the padding.
        body[^1] = 1;
        Assert.True(CreateBody.TryRead(body, out _));

        Array.Fill(body, (byte)0xEE);
        var reply = Bytes(Ntor.ReplySize, 6);
        new CreatedBody(reply).Write(body);
        Assert.True(body.AsSpan(CreatedBody.Size).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(reply, CreatedBody.Read(body).NtorReply);
    }

    [Fact]
    public void A_Create_too_short_or_for_another_handshake_is_refused_without_an_exception()
    {
        var body = new byte[Cell.BodySize];
        new CreateBody(Bytes(Ntor.RequestSize, 7)).Write(body);
        for (int length = 0; length < CreateBody.Size; length++) Assert.False(CreateBody.TryRead(body.AsSpan(0, length), out _));
        foreach (ushort type in new ushort[] { 0, 2, 0x0100, 0xFFFF })
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(body, type);
            Assert.False(CreateBody.TryRead(body, out _));
        }
        var random = new Random(86);
        for (int i = 0; i < 5_000; i++)
        {
            var data = Bytes(random.Next(2 * CreateBody.Size), random.Next());
            if (CreateBody.TryRead(data, out var create)) Assert.Equal(data.AsSpan(2, Ntor.RequestSize).ToArray(), create.NtorRequest);
        }
    }

    [Fact]
    public void A_Created_shorter_than_the_reply_is_truncated()
    {
        for (int length = 0; length < CreatedBody.Size; length++)
            Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => CreatedBody.Read(new byte[length])).Error);
    }

    [Fact]
    public void An_echo_probe_round_trips_and_is_random_past_its_marks_and_any_other_length_is_refused()
    {
        var first = new byte[EchoProbe.Size];
        var second = new byte[EchoProbe.Size];
        new EchoProbe(0x0102030405060708, 42).Write(first);
        new EchoProbe(0x0102030405060708, 42).Write(second);
        Assert.True(EchoProbe.TryRead(first, out var echo));
        Assert.Equal(new EchoProbe(0x0102030405060708, 42), echo);
        Assert.Equal(first[..16], second[..16]);
        Assert.NotEqual(first[16..], second[16..]);
        foreach (int length in new[] { 0, 8, 16, EchoProbe.Size - 1, EchoProbe.Size + 1 })
            Assert.False(EchoProbe.TryRead(new byte[length], out _));
    }
}
