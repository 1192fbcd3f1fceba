using Wasmtime;

namespace Quid.Programs;

/// <summary>
/// The one Wasmtime engine a host runs its programs on: fuel metering on, and an epoch that a
/// timer moves on every <see cref="Tick"/>, which is how a call is stopped at its wall-clock
/// deadline (Wasmtime checks the epoch at loop heads and calls, at little cost).
/// </summary>
public sealed class ProgramEngine : IDisposable
{
    public static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(10);

    private readonly ITimer _ticker;

    public ProgramEngine(TimeProvider time)
    {
        // The engine takes the configuration over.
        var config = new Config().WithFuelConsumption(true).WithEpochInterruption(true);
        Engine = new Engine(config);
        _ticker = time.CreateTimer(_ => Engine.IncrementEpoch(), null, Tick, Tick);
    }

    internal Engine Engine { get; }

    public void Dispose()
    {
        _ticker.Dispose();
        Engine.Dispose();
    }
}
