using Quid.Wire;

namespace Quid.Tests.Wire;

public class CellTests
{
    private static byte[] NewCell(uint circuit, CellCommand command)
    {
        byte[] cell = new byte[Cell.Size];
        Cell.WriteHeader(cell, circuit, command);
        return cell;
    }

    [Fact]
    public void HeaderFieldsRoundTripAndTheBodyIsTheRest()
    {
        byte[] cell = NewCell(0xDEADBEEF, CellCommand.Relay);
        Assert.Equal(0xDEADBEEFu, Cell.CircuitId(cell));
        Assert.Equal(CellCommand.Relay, Cell.Command(cell));
        Assert.Equal(new byte[] { 0xDE, 0xAD, 0xBE, 0xEF, 3 }, cell[..Cell.HeaderSize]);
        Assert.Equal(Cell.BodySize, Cell.Body(cell).Length);
        Cell.Body(cell.AsSpan())[0] = 42;
        Assert.Equal(42, cell[Cell.HeaderSize]);
        Assert.Equal(Cell.Size, Cell.HeaderSize + Cell.BodySize);
    }

    [Theory]
    [InlineData(0u, CellCommand.Padding)]
    [InlineData(0u, CellCommand.Control)]
    [InlineData(1u, CellCommand.Create)]
    [InlineData(2u, CellCommand.Created)]
    [InlineData(3u, CellCommand.Relay)]
    [InlineData(uint.MaxValue, CellCommand.Destroy)]
    public void ValidCellsPass(uint circuit, CellCommand command) => Cell.Validate(NewCell(circuit, command));

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(Cell.Size - 1)]
    [InlineData(Cell.Size + 1)]
    [InlineData(2 * Cell.Size)]
    public void AWrongSizeIsRefused(int size)
    {
        var error = Assert.Throws<WireException>(() => Cell.Validate(new byte[size]));
        Assert.Equal(WireError.Truncated, error.Error);
    }

    [Theory]
    [InlineData(7)]
    [InlineData(128)]
    [InlineData(255)]
    public void AnUnknownCommandIsRefused(byte command)
    {
        byte[] cell = NewCell(5, CellCommand.Relay);
        cell[4] = command;
        Assert.Equal(WireError.UnknownCommand, Assert.Throws<WireException>(() => Cell.Validate(cell)).Error);
        cell = NewCell(0, CellCommand.Control);
        cell[4] = command;
        Assert.Equal(WireError.UnknownCommand, Assert.Throws<WireException>(() => Cell.Validate(cell)).Error);
    }

    [Theory]
    [InlineData(1u, CellCommand.Control)]
    [InlineData(7u, CellCommand.Padding)]
    [InlineData(0u, CellCommand.Relay)]
    [InlineData(0u, CellCommand.Create)]
    [InlineData(0u, CellCommand.Created)]
    [InlineData(0u, CellCommand.Destroy)]
    public void CircuitCommandsOnCircuitZeroAndLinkCommandsOnACircuitAreRefused(uint circuit, CellCommand command)
    {
        var error = Assert.Throws<WireException>(() => Cell.Validate(NewCell(circuit, command)));
        Assert.Equal(WireError.BadField, error.Error);
    }

    [Fact]
    public void RandomCellsAreOnlyEverAWireException()
    {
        var random = new Random(2048);
        byte[] cell = new byte[Cell.Size];
        int passed = 0;
        for (int i = 0; i < 20_000; i++)
        {
            random.NextBytes(cell.AsSpan(0, Cell.HeaderSize));
            if (random.Next(2) == 0) cell[4] = (byte)random.Next(6);
            if (random.Next(2) == 0) cell.AsSpan(0, 4).Clear();
            try
            {
                Cell.Validate(cell);
                passed++;
                Assert.True(Cell.CircuitId(cell) == 0 == Cell.Command(cell) is CellCommand.Padding or CellCommand.Control);
            }
            catch (WireException)
            {
            }
        }
        Assert.InRange(passed, 1, 19_999);
    }
}
