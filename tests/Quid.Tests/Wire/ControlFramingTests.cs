using System.Buffers.Binary;
using Quid.Wire;

namespace Quid.Tests.Wire;

public class ControlFramingTests
{
    private static byte[] RandomPayload(int length, int seed)
    {
        var payload = new byte[length];
        new Random(seed).NextBytes(payload);
        return payload;
    }

    private static byte[] Cells(ReadOnlySpan<byte> payload)
    {
        var cells = new byte[ControlFraming.CellCount(payload.Length) * Cell.Size];
        ControlFraming.WriteCells(payload, cells);
        return cells;
    }

    /// <summary>Feeds every cell; returns what the last one completed, checking that none before it did.</summary>
    private static byte[]? Reassemble(ControlReassembler reassembler, byte[] cells)
    {
        int count = cells.Length / Cell.Size;
        for (int i = 0; i < count; i++)
        {
            var cell = cells.AsSpan(i * Cell.Size, Cell.Size);
            Cell.Validate(cell);
            Assert.Equal(0u, Cell.CircuitId(cell));
            Assert.Equal(CellCommand.Control, Cell.Command(cell));
            var result = reassembler.Add(Cell.Body(cell));
            if (i < count - 1) Assert.Null(result);
            else return result;
        }
        return null;
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 1)]
    [InlineData(ControlFraming.MaxFragment, 1)]
    [InlineData(ControlFraming.MaxFragment + 1, 2)]
    [InlineData(3 * ControlFraming.MaxFragment, 3)]
    [InlineData(ControlMessage.MaxSize, 33)]
    public void CellCountIsTheFragmentsNeededAndAtLeastOne(int length, int cells) =>
        Assert.Equal(cells, ControlFraming.CellCount(length));

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(ControlFraming.MaxFragment)]
    [InlineData(ControlFraming.MaxFragment + 1)]
    [InlineData(65_000)]
    [InlineData(ControlMessage.MaxSize)]
    public void AMessageIsSplitIntoCellsAndReassembledByteExact(int length)
    {
        byte[] payload = RandomPayload(length, length);
        byte[] cells = Cells(payload);
        Assert.Equal(ControlFraming.CellCount(length) * Cell.Size, cells.Length);
        var reassembler = new ControlReassembler();
        Assert.Equal(payload, Reassemble(reassembler, cells));
        // The reassembler starts afresh for the next message.
        byte[] next = RandomPayload(3000, 1);
        Assert.Equal(next, Reassemble(reassembler, Cells(next)));
    }

    [Fact]
    public void FragmentsAreFullExceptTheLastAndCellsArePaddedWithZeros()
    {
        byte[] payload = RandomPayload(2 * ControlFraming.MaxFragment + 10, 9);
        byte[] cells = Cells(payload);
        for (int i = 0; i < 3; i++)
        {
            var body = Cell.Body(cells.AsSpan(i * Cell.Size, Cell.Size));
            Assert.Equal(i < 2 ? 1 : 0, body[0]);
            int length = BinaryPrimitives.ReadUInt16BigEndian(body[1..]);
            Assert.Equal(i < 2 ? ControlFraming.MaxFragment : 10, length);
            Assert.True(body[(ControlFraming.FragmentHeaderSize + length)..].IndexOfAnyExcept((byte)0) < 0);
        }
    }

    [Fact]
    public void WriteCellsClearsWhateverTheBufferHeldBefore()
    {
        var cells = new byte[2 * Cell.Size];
        Array.Fill(cells, (byte)0xAA);
        ControlFraming.WriteCells("hi"u8, cells);
        Assert.True(Cell.Body(cells.AsSpan(0, Cell.Size))[5..].IndexOfAnyExcept((byte)0) < 0);
        // The cell after the message is not the writer's to touch.
        Assert.Equal(0xAA, cells[Cell.Size]);
    }

    [Fact]
    public void AMessageOverMaxSizeIsRefusedAsOversizedAndTheReassemblerRecovers()
    {
        byte[] cells = Cells(RandomPayload(ControlMessage.MaxSize + 1, 5));
        var reassembler = new ControlReassembler();
        int count = cells.Length / Cell.Size;
        for (int i = 0; i < count - 1; i++) Assert.Null(reassembler.Add(Cell.Body(cells.AsSpan(i * Cell.Size, Cell.Size))));
        var error = Assert.Throws<WireException>(() => reassembler.Add(Cell.Body(cells.AsSpan((count - 1) * Cell.Size, Cell.Size))));
        Assert.Equal(WireError.Oversized, error.Error);

        byte[] next = RandomPayload(5000, 6);
        Assert.Equal(next, Reassemble(reassembler, Cells(next)));
    }

    [Fact]
    public void AnEndlessRunOfMoreFragmentsIsCutOffAtMaxSize()
    {
        var body = new byte[Cell.BodySize];
        body[0] = 1;
        BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(1), ControlFraming.MaxFragment);
        var reassembler = new ControlReassembler();
        int accepted = 0;
        void FeedForever()
        {
            while (true)
            {
                Assert.Null(reassembler.Add(body));
                accepted++;
            }
        }
        var error = Assert.Throws<WireException>(FeedForever);
        Assert.Equal(WireError.Oversized, error.Error);
        Assert.Equal(ControlMessage.MaxSize / ControlFraming.MaxFragment, accepted);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(0x80)]
    [InlineData(0xFF)]
    public void UnknownFlagsAreRefused(byte flags)
    {
        var body = new byte[Cell.BodySize];
        body[0] = flags;
        body[2] = 1;
        var error = Assert.Throws<WireException>(() => new ControlReassembler().Add(body));
        Assert.Equal(WireError.BadField, error.Error);
    }

    [Theory]
    [InlineData(ControlFraming.MaxFragment + 1)]
    [InlineData(Cell.BodySize)]
    [InlineData(ushort.MaxValue)]
    public void AFragmentLongerThanACellHoldsIsRefused(int length)
    {
        var body = new byte[Cell.BodySize];
        BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(1), (ushort)length);
        Assert.Equal(WireError.Oversized, Assert.Throws<WireException>(() => new ControlReassembler().Add(body)).Error);
    }

    [Fact]
    public void AShortBodyIsTruncatedNotACrash()
    {
        Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => new ControlReassembler().Add([])).Error);
        Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => new ControlReassembler().Add([0, 0])).Error);
        Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => new ControlReassembler().Add([0, 0, 5, 1, 2])).Error);
    }

    [Fact]
    public void RandomBodiesAreOnlyEverAWireExceptionOrAMessageWithinTheLimit()
    {
        var random = new Random(2040);
        var reassembler = new ControlReassembler();
        var body = new byte[Cell.BodySize];
        for (int i = 0; i < 20_000; i++)
        {
            random.NextBytes(body);
            body[0] = (byte)(random.Next(8) == 0 ? random.Next(256) : random.Next(2));
            if (random.Next(4) != 0) BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(1), (ushort)random.Next(ControlFraming.MaxFragment + 1));
            try
            {
                var message = reassembler.Add(body.AsSpan(0, random.Next(8) == 0 ? random.Next(Cell.BodySize) : Cell.BodySize));
                if (message is not null) Assert.InRange(message.Length, 0, ControlMessage.MaxSize);
            }
            catch (WireException)
            {
                reassembler = new ControlReassembler();
            }
        }
    }
}
