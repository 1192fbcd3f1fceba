namespace Quid.Programs;

/// <summary>Why a module was refused, or why a call into a program stopped.</summary>
public enum ProgramError
{
    /// <summary>Not a WebAssembly module, or one that does not validate.</summary>
    Malformed,
    /// <summary>Larger than <see cref="ProgramLimits.ModuleBytes"/>.</summary>
    TooLarge,
    /// <summary>Imports what the host does not offer, or lacks an export the host calls.</summary>
    WrongInterface,
    /// <summary>Its fuel ran out: the program is paused until it is topped up.</summary>
    OutOfFuel,
    /// <summary>A call ran past <see cref="ProgramLimits.CallDeadline"/>.</summary>
    Deadline,
    /// <summary>The program trapped (out of bounds, unreachable, a memory it could not grow …).</summary>
    Trap,
}

/// <summary>A module refused, or a call into a program stopped, with why.</summary>
public sealed class ProgramException(ProgramError error, string message, Exception? inner = null) : Exception(message, inner)
{
    public ProgramError Error { get; } = error;
}
