namespace Quid.Programs;

/// <summary>
/// What a hosted program may take of its host (seed 003): the size of its module, the memory it may
/// grow to, how long one call into it may run by the wall clock, the fuel every host call costs
/// before the bytes it moves, and the bytes its key-value store may hold. Fuel, Wasmtime's count of
/// the instructions a program runs (about one per instruction), is the CPU credit.
/// </summary>
public sealed record ProgramLimits
{
    public long ModuleBytes { get; init; } = 1 << 20;
    public long MemoryBytes { get; init; } = 16 << 20;
    public TimeSpan CallDeadline { get; init; } = TimeSpan.FromSeconds(1);
    public long HostCallFuel { get; init; } = 1_000;
    public long StoreBytes { get; init; } = 1 << 20;
}
