using System.Buffers.Binary;

namespace Quid.Wire;

/// <summary>What a cell is for. Circuit 0 carries only <see cref="Padding"/> and <see cref="Control"/>.</summary>
public enum CellCommand : byte
{
    Padding = 0,
    Create = 1,
    Created = 2,
    Relay = 3,
    Destroy = 4,
    Control = 5,
    /// <summary>
    /// A Relay cell that may extend the circuit. A circuit carries at most
    /// <see cref="Cell.MaxRelayEarly"/> of them, so no one can build an endless circuit.
    /// </summary>
    RelayEarly = 6,
}

/// <summary>
/// Every cell on a link has the same size, so the link never reveals message sizes:
/// circuit id (u32), command (u8), body.
/// </summary>
public static class Cell
{
    public const int Size = 2048;
    public const int HeaderSize = 5;
    public const int BodySize = Size - HeaderSize;
    /// <summary>The longest circuit: one RelayEarly per extension, one tag slot per hop.</summary>
    public const int MaxRelayEarly = 8;

    public static uint CircuitId(ReadOnlySpan<byte> cell) => BinaryPrimitives.ReadUInt32BigEndian(cell);
    public static CellCommand Command(ReadOnlySpan<byte> cell) => (CellCommand)cell[4];
    public static ReadOnlySpan<byte> Body(ReadOnlySpan<byte> cell) => cell.Slice(HeaderSize, BodySize);
    public static Span<byte> Body(Span<byte> cell) => cell.Slice(HeaderSize, BodySize);

    public static void WriteHeader(Span<byte> cell, uint circuitId, CellCommand command)
    {
        BinaryPrimitives.WriteUInt32BigEndian(cell, circuitId);
        cell[4] = (byte)command;
    }

    /// <summary>Checks the header of a cell received from a peer.</summary>
    public static void Validate(ReadOnlySpan<byte> cell)
    {
        if (cell.Length != Size) throw new WireException(WireError.Truncated, $"A cell is {Size} bytes, got {cell.Length}.");
        var command = Command(cell);
        if (command > CellCommand.RelayEarly) throw new WireException(WireError.UnknownCommand, $"Unknown cell command {(byte)command}.");
        bool onControlCircuit = CircuitId(cell) == 0;
        bool controlCommand = command is CellCommand.Padding or CellCommand.Control;
        if (onControlCircuit != controlCommand)
            throw new WireException(WireError.BadField, $"Cell command {command} is not allowed on circuit {CircuitId(cell)}.");
    }
}
