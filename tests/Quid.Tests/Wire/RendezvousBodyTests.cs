using Quid.Crypto;
using Quid.Wire;

namespace Quid.Tests.Wire;

/// <summary>
/// The bodies of the rendezvous relay messages (PROTOCOL §9.10.1): what each holds. Truncated,
/// longer and random input for each is in <see cref="CircuitBodyTests"/>, with every relay body.
/// </summary>
public sealed class RendezvousBodyTests
{
    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static readonly RendezvousCookie Cookie = new(Bytes(RendezvousCookie.Size, 1));

    private delegate int Writer(Span<byte> data);

    private static byte[] Written(Writer write, int size)
    {
        var data = new byte[size];
        return data[..write(data)];
    }

    [Fact]
    public void Rendezvous_bodies_round_trip()
    {
        var reply = Bytes(Ntor.ReplySize, 4);
        Assert.Equal(Cookie, EstablishRendezvousBody.Read(Written(new EstablishRendezvousBody(Cookie).Write, EstablishRendezvousBody.Size)).Cookie);
        var rendezvous = RendezvousBody.Read(Written(new RendezvousBody(Cookie, reply).Write, RendezvousBody.Size));
        Assert.Equal(Cookie, rendezvous.Cookie);
        Assert.Equal(reply, rendezvous.HandshakeReply);
        Assert.Equal(reply, Rendezvous2Body.Read(Written(new Rendezvous2Body(reply).Write, Rendezvous2Body.Size)).HandshakeReply);
        Assert.Throws<ArgumentException>(() => new RendezvousBody(Cookie, new byte[Ntor.ReplySize - 1]).Write(new byte[RendezvousBody.Size]));
        Assert.Throws<ArgumentException>(() => new Rendezvous2Body(new byte[Ntor.ReplySize + 1]).Write(new byte[RelayCell.MaxData]));
    }

    [Fact]
    public void A_cookie_is_its_twenty_bytes_and_fresh_ones_differ()
    {
        var bytes = Bytes(RendezvousCookie.Size, 5);
        var cookie = new RendezvousCookie(bytes);
        var written = new byte[RendezvousCookie.Size];
        cookie.WriteTo(written);
        Assert.Equal(bytes, written);
        bytes[19] ^= 1;
        Assert.NotEqual(cookie, new RendezvousCookie(bytes));
        Assert.NotEqual(RendezvousCookie.Random(), RendezvousCookie.Random());
        Assert.Throws<ArgumentException>(() => new RendezvousCookie(new byte[RendezvousCookie.Size - 1]));
    }

    [Fact]
    public void Every_named_failure_round_trips_and_any_other_byte_is_refused()
    {
        foreach (var reason in Enum.GetValues<RendezvousFailure>())
            Assert.Equal(reason, RendezvousFailedBody.Read(Written(new RendezvousFailedBody(reason).Write, 1)).Reason);
        for (int b = 0; b < 256; b++)
            if (!Enum.IsDefined((RendezvousFailure)b))
                Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => RendezvousFailedBody.Read([(byte)b])).Error);
        Assert.Throws<ArgumentException>(() => new RendezvousFailedBody((RendezvousFailure)0).Write(new byte[1]));
    }

    [Fact]
    public void The_empty_messages_refuse_any_data()
    {
        EmptyBody.Read([]);
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => EmptyBody.Read([0])).Error);
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => EmptyBody.Read(new byte[RelayCell.MaxData])).Error);
    }

    [Theory]
    [InlineData(RelayCommand.EstablishRendezvous)]
    [InlineData(RelayCommand.RendezvousFailed)]
    [InlineData(RelayCommand.EstablishIntroduction)]
    [InlineData(RelayCommand.ServiceLookupAnswered)]
    [InlineData(RelayCommand.BeginDesk)]
    public void The_new_relay_commands_are_read_and_the_next_byte_is_not(RelayCommand command)
    {
        var body = new byte[RelayCell.MessageSize];
        RelayCell.Write(body, command, 0, [1, 2]);
        Assert.Equal(command, RelayCell.Read(body).Command);
        body[0] = (byte)RelayCommand.BeginDesk + 1;
        Assert.Equal(WireError.UnknownCommand, Assert.Throws<WireException>(() => RelayCell.Read(body)).Error);
    }
}
