using System.Buffers;
using System.Buffers.Binary;
using Quid.Crypto;
using Quid.Crypto.Noise;
using Quid.Links;
using Quid.Wire;

namespace Quid.Tests.Links;

public sealed class LinkFramingTests : IDisposable
{
    private readonly NodeIdentity _a = NodeIdentity.Generate(out _);
    private readonly NodeIdentity _b = NodeIdentity.Generate(out _);
    private readonly LinkCipher _send;
    private readonly LinkCipher _receive;
    private readonly LinkCipher _back;
    private readonly LinkCipher _backReceive;
    private readonly byte[] _cells = new byte[LinkFraming.MaxCellsPerFrame * Cell.Size];

    public LinkFramingTests()
    {
        using var pair = new LinkPair(_a, _b);
        pair.Run();
        (_send, _backReceive) = pair.Initiator.Split();
        (_back, _receive) = pair.Responder.Split();
    }

    public void Dispose()
    {
        _send.Dispose();
        _receive.Dispose();
        _back.Dispose();
        _backReceive.Dispose();
        _a.Dispose();
        _b.Dispose();
    }

    private static byte[] RandomCells(int count, int seed)
    {
        byte[] cells = new byte[count * Cell.Size];
        new Random(seed).NextBytes(cells);
        return cells;
    }

    private byte[] Frame(byte[] cells)
    {
        byte[] frame = new byte[LinkFraming.FrameSize(cells.Length / Cell.Size)];
        Assert.Equal(frame.Length, LinkFraming.Encode(_send, cells, frame));
        return frame;
    }

    [Fact]
    public void TheFrameLimitsFitANoiseMessage()
    {
        Assert.Equal(31, LinkFraming.MaxCellsPerFrame);
        Assert.Equal(2 + 31 * Cell.Size + LinkCipher.TagSize, LinkFraming.MaxFrameSize);
        Assert.True(LinkFraming.MaxFrameSize - LinkFraming.LengthPrefix <= LinkFraming.MaxNoiseMessage);
        Assert.True(LinkFraming.FrameSize(32) - LinkFraming.LengthPrefix > LinkFraming.MaxNoiseMessage);
    }

    [Fact]
    public void OneToThirtyOneCellsRoundTrip()
    {
        for (int count = 1; count <= LinkFraming.MaxCellsPerFrame; count++)
        {
            byte[] cells = RandomCells(count, count);
            byte[] frame = Frame(cells);
            Assert.Equal(count * Cell.Size + LinkCipher.TagSize, BinaryPrimitives.ReadUInt16BigEndian(frame));
            Assert.Equal(OperationStatus.Done, LinkFraming.Decode(_receive, frame, _cells, out int consumed, out int cellBytes));
            Assert.Equal(frame.Length, consumed);
            Assert.Equal(cells, _cells.AsSpan(0, cellBytes).ToArray());
        }
    }

    [Fact]
    public void FramesBackToBackDecodeOneAtATime()
    {
        byte[] first = RandomCells(3, 1), second = RandomCells(1, 2);
        byte[] stream = [.. Frame(first), .. Frame(second), 0x08];
        Assert.Equal(OperationStatus.Done, LinkFraming.Decode(_receive, stream, _cells, out int consumed, out int cellBytes));
        Assert.Equal(first, _cells.AsSpan(0, cellBytes).ToArray());
        Assert.Equal(OperationStatus.Done, LinkFraming.Decode(_receive, stream.AsSpan(consumed), _cells, out int consumed2, out cellBytes));
        Assert.Equal(second, _cells.AsSpan(0, cellBytes).ToArray());
        Assert.Equal(OperationStatus.NeedMoreData, LinkFraming.Decode(_receive, stream.AsSpan(consumed + consumed2), _cells, out int rest, out _));
        Assert.Equal(0, rest);
    }

    [Fact]
    public void EveryPrefixNeedsMoreDataAndConsumesNothing()
    {
        byte[] cells = RandomCells(2, 3);
        byte[] frame = Frame(cells);
        for (int length = 0; length < frame.Length; length++)
        {
            Assert.Equal(OperationStatus.NeedMoreData, LinkFraming.Decode(_receive, frame.AsSpan(0, length), _cells, out int consumed, out int cellBytes));
            Assert.Equal(0, consumed);
            Assert.Equal(0, cellBytes);
        }
        // Waiting used no nonce: the whole frame still decrypts.
        Assert.Equal(OperationStatus.Done, LinkFraming.Decode(_receive, frame, _cells, out _, out int bytes));
        Assert.Equal(cells, _cells.AsSpan(0, bytes).ToArray());
    }

    public static TheoryData<int> BadLengths() => new(0, 1, 15, 16, 17, 32 + Cell.Size - 1, 32 + Cell.Size + 1, Cell.Size, 32 + 5 * Cell.Size + 100, ushort.MaxValue);

    [Theory]
    [MemberData(nameof(BadLengths))]
    public void ALengthThatIsNotWholeCellsIsABadFrameFromItsPrefixAlone(int length)
    {
        byte[] prefix = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(prefix, (ushort)length);
        var error = Assert.Throws<LinkException>(() => LinkFraming.Decode(_receive, prefix, _cells, out _, out _));
        Assert.Equal(LinkError.BadFrame, error.Error);
    }

    [Fact]
    public void AnyTamperedByteAfterThePrefixIsADecryptionError()
    {
        byte[] frame = Frame(RandomCells(1, 4));
        for (int position = LinkFraming.LengthPrefix; position < frame.Length; position += 7)
        {
            byte[] tampered = (byte[])frame.Clone();
            tampered[position] ^= 0x40;
            var error = Assert.Throws<LinkException>(() => LinkFraming.Decode(_receive, tampered, _cells, out _, out _));
            Assert.Equal(LinkError.Decryption, error.Error);
        }
        // A failed frame leaves the nonce alone: the genuine frame still decodes.
        Assert.Equal(OperationStatus.Done, LinkFraming.Decode(_receive, frame, _cells, out _, out _));
    }

    [Fact]
    public void ReplayedReorderedOrReflectedFramesAreRefused()
    {
        byte[] first = Frame(RandomCells(1, 5));
        byte[] second = Frame(RandomCells(1, 6));
        Assert.Equal(LinkError.Decryption, Assert.Throws<LinkException>(() => LinkFraming.Decode(_receive, second, _cells, out _, out _)).Error);
        LinkFraming.Decode(_receive, first, _cells, out _, out _);
        Assert.Equal(LinkError.Decryption, Assert.Throws<LinkException>(() => LinkFraming.Decode(_receive, first, _cells, out _, out _)).Error);
        // Our own frame sent back to us is not the peer's.
        Assert.Equal(LinkError.Decryption, Assert.Throws<LinkException>(() => LinkFraming.Decode(_backReceive, second, _cells, out _, out _)).Error);
        Assert.Equal(OperationStatus.Done, LinkFraming.Decode(_receive, second, _cells, out _, out _));
    }

    [Fact]
    public void BothDirectionsCarryFrames()
    {
        byte[] cells = RandomCells(4, 7);
        byte[] frame = new byte[LinkFraming.FrameSize(4)];
        LinkFraming.Encode(_back, cells, frame);
        Assert.Equal(OperationStatus.Done, LinkFraming.Decode(_backReceive, frame, _cells, out _, out int bytes));
        Assert.Equal(cells, _cells.AsSpan(0, bytes).ToArray());
    }

    [Fact]
    public void RandomBytesGiveOnlyLinkExceptionsOrNeedMoreData()
    {
        var random = new Random(31);
        for (int i = 0; i < 5000; i++)
        {
            byte[] input = new byte[random.Next(0, 3 * Cell.Size)];
            random.NextBytes(input);
            if (input.Length >= 2 && random.Next(2) == 0)
                BinaryPrimitives.WriteUInt16BigEndian(input, (ushort)(LinkCipher.TagSize + random.Next(0, 3) * Cell.Size));
            try
            {
                var status = LinkFraming.Decode(_receive, input, _cells, out int consumed, out _);
                Assert.Equal(OperationStatus.NeedMoreData, status);
                Assert.Equal(0, consumed);
            }
            catch (LinkException e)
            {
                Assert.True(e.Error is LinkError.BadFrame or LinkError.Decryption, e.Error.ToString());
            }
        }
    }
}
