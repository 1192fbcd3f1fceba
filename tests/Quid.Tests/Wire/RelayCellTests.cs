using System.Buffers.Binary;
using System.Net;
using System.Text;
using Quid.Wire;

namespace Quid.Tests.Wire;

public class RelayCellTests
{
    [Theory]
    [InlineData(RelayCommand.Begin, 1, 0)]
    [InlineData(RelayCommand.Data, 0, 1)]
    [InlineData(RelayCommand.Data, 65535, RelayCell.MaxData)]
    [InlineData(RelayCommand.End, 7, 1)]
    [InlineData(RelayCommand.Connected, 8, 17)]
    [InlineData(RelayCommand.Sendme, 9, 0)]
    [InlineData(RelayCommand.Resolve, 10, 300)]
    [InlineData(RelayCommand.Resolved, 11, 5)]
    public void WriteAndReadRoundTrip(RelayCommand command, int streamId, int length)
    {
        byte[] data = new byte[length];
        new Random(length).NextBytes(data);
        byte[] body = new byte[RelayCell.MessageSize];
        Array.Fill(body, (byte)0xEE);
        RelayCell.Write(body, command, (ushort)streamId, data);

        var message = RelayCell.Read(body);
        Assert.Equal(command, message.Command);
        Assert.Equal(streamId, message.StreamId);
        Assert.Equal(data, message.Data.ToArray());
        // Old bytes past the data never leak into a cell.
        Assert.True(body.AsSpan(RelayCell.HeaderSize + length).IndexOfAnyExcept((byte)0) < 0);
    }

    [Theory]
    [InlineData(RelayCell.MaxData + 1)]
    [InlineData(RelayCell.MessageSize)]
    [InlineData(ushort.MaxValue)]
    public void ALengthLargerThanTheBodyIsRefused(int length)
    {
        byte[] body = new byte[RelayCell.MessageSize];
        body[0] = (byte)RelayCommand.Data;
        BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(3), (ushort)length);
        Assert.Equal(WireError.Oversized, Assert.Throws<WireException>(() => RelayCell.Read(body)).Error);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(25)]
    [InlineData(0x80)]
    [InlineData(255)]
    public void AnUnknownCommandIsRefused(byte command)
    {
        byte[] body = new byte[RelayCell.MessageSize];
        body[0] = command;
        Assert.Equal(WireError.UnknownCommand, Assert.Throws<WireException>(() => RelayCell.Read(body)).Error);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4)]
    public void ABodyShorterThanTheHeaderIsTruncatedNotACrash(int length)
    {
        // Wire decoders throw only WireException, whatever span they are handed.
        byte[] body = new byte[length];
        if (length > 0) body[0] = (byte)RelayCommand.Data;
        Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => RelayCell.Read(body)).Error);
    }

    [Fact]
    public void RandomBodiesAreOnlyEverAWireExceptionOrDataWithinTheBody()
    {
        var random = new Random(2043);
        byte[] body = new byte[RelayCell.MessageSize];
        for (int i = 0; i < 20_000; i++)
        {
            random.NextBytes(body);
            if (random.Next(2) == 0) body[0] = (byte)random.Next(1, 8);
            if (random.Next(2) == 0) BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(3), (ushort)random.Next(RelayCell.MaxData + 2));
            try
            {
                var message = RelayCell.Read(body);
                Assert.InRange(message.Data.Length, 0, RelayCell.MaxData);
                Assert.InRange((byte)message.Command, (byte)1, (byte)RelayCommand.BeginDesk);
            }
            catch (WireException)
            {
            }
        }
    }

    public static TheoryData<string, ushort> Targets() => new()
    {
        { "example.org", 80 },
        { "a", 0 },
        { "93.184.216.34", 443 },
        { "2606:4700::1", 65535 },
        { new string('x', StreamTarget.MaxHostLength), 8080 },
        { "~!#$%&'()*+,-./:;<=>?@[\\]^_`{|}", 1 },
    };

    [Theory]
    [MemberData(nameof(Targets))]
    public void StreamTargetRoundTrips(string host, ushort port)
    {
        var target = new StreamTarget(host, port);
        byte[] buffer = new byte[3 + StreamTarget.MaxHostLength];
        int length = target.Encode(buffer);
        Assert.Equal(3 + host.Length, length);
        Assert.Equal(target, StreamTarget.Decode(buffer.AsSpan(0, length)));
    }

    [Fact]
    public void StreamTargetPrintsIPv6InBrackets()
    {
        Assert.Equal("example.org:80", new StreamTarget("example.org", 80).ToString());
        Assert.Equal("[2606:4700::1]:443", new StreamTarget("2606:4700::1", 443).ToString());
    }

    [Fact]
    public void AnEmptyHostIsRefused()
    {
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => StreamTarget.Decode([0, 80, 0])).Error);
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0x0A)]
    [InlineData(0x1F)]
    [InlineData(0x20)]
    [InlineData(0x7F)]
    [InlineData(0x80)]
    [InlineData(0xFF)]
    public void AHostWithANonPrintableByteIsRefused(byte bad)
    {
        byte[] data = [0, 80, 5, (byte)'a', (byte)'b', bad, (byte)'c', (byte)'d'];
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => StreamTarget.Decode(data)).Error);
    }

    [Fact]
    public void TruncatedOrTrailingTargetsAreRefused()
    {
        byte[] valid = [0, 80, 11, .. Encoding.ASCII.GetBytes("example.org")];
        for (int length = 0; length < valid.Length; length++)
            Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => StreamTarget.Decode(valid.AsSpan(0, length))).Error);
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => StreamTarget.Decode([.. valid, (byte)'x'])).Error);
    }

    [Fact]
    public void EncodeRefusesAHostTheExitWouldRefuseOrMisread()
    {
        byte[] buffer = new byte[4096];
        // A 256-byte name would write a length byte of 0; a non-ASCII one would turn into '?'.
        Assert.Throws<ArgumentException>(() => new StreamTarget(new string('x', StreamTarget.MaxHostLength + 1), 80).Encode(buffer));
        Assert.Throws<ArgumentException>(() => new StreamTarget("", 80).Encode(buffer));
        Assert.Throws<ArgumentException>(() => new StreamTarget("b\u00fccher.de", 80).Encode(buffer));
        Assert.Throws<ArgumentException>(() => new StreamTarget("evil.com\r\nx", 80).Encode(buffer));
    }

    [Theory]
    [InlineData("192.0.2.1", 5)]
    [InlineData("2001:db8::1", 17)]
    [InlineData("::ffff:192.0.2.1", 5)]
    public void RelayAddressRoundTripsAndUnmapsIPv4(string text, int size)
    {
        var address = IPAddress.Parse(text);
        byte[] buffer = new byte[17];
        Assert.Equal(size, RelayAddress.Encode(address, buffer));
        var reader = new WireReader(buffer.AsSpan(0, size));
        var decoded = RelayAddress.Decode(ref reader);
        Assert.Equal(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address, decoded);
        Assert.Equal(0, reader.Remaining);
    }

    [Theory]
    [InlineData(new byte[] { 0, 1, 2, 3, 4 }, WireError.BadField)]
    [InlineData(new byte[] { 5, 1, 2, 3, 4 }, WireError.BadField)]
    [InlineData(new byte[] { 4, 1, 2, 3 }, WireError.Truncated)]
    [InlineData(new byte[] { 6, 1, 2, 3, 4 }, WireError.Truncated)]
    [InlineData(new byte[0], WireError.Truncated)]
    public void MalformedRelayAddressesAreRefused(byte[] data, WireError expected)
    {
        var error = Assert.Throws<WireException>(() =>
        {
            var reader = new WireReader(data);
            RelayAddress.Decode(ref reader);
        });
        Assert.Equal(expected, error.Error);
    }
}
