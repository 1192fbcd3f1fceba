using System.Security.Cryptography;
using Wasmtime;

namespace Quid.Programs;

/// <summary>A message a program sent: to a session address, as bytes the host routes.</summary>
public sealed record ProgramMessage(byte[] To, byte[] Body);

/// <summary>
/// One WebAssembly program in its sandbox (seed 003, PROTOCOL §11): no file system, sockets or
/// clock of its own, only the host interface, module <c>quid</c>, whose every call costs
/// <see cref="ProgramLimits.HostCallFuel"/> and a unit of fuel per byte it moves. It runs while its
/// fuel lasts and each call within <see cref="ProgramLimits.CallDeadline"/>. Sans-IO: the host
/// hands it messages and wake-ups, and takes what it sent and when it wants waking.
/// </summary>
public sealed class HostedProgram : IDisposable
{
    /// <summary>The longest session address a program may send to.</summary>
    public const int MaxAddress = 64;
    /// <summary>The largest message a program may send, or be handed.</summary>
    public const int MaxMessage = 64 << 10;
    /// <summary>Messages that may wait in a program's outbox, for the host to take, before <c>send</c> answers -1.</summary>
    public const int MaxOutbox = 256;
    public const int MaxKey = 256;

    private static readonly ValueKind[] I32 = [ValueKind.Int32];
    private static readonly ValueKind[] I32x2 = [ValueKind.Int32, ValueKind.Int32];
    private static readonly ValueKind[] I32x4 = [ValueKind.Int32, ValueKind.Int32, ValueKind.Int32, ValueKind.Int32];

    /// <summary>The host interface: what a module may import from <c>quid</c>, with its parameters and results.</summary>
    private static readonly Dictionary<string, (ValueKind[] Parameters, ValueKind[] Results)> Interface = new()
    {
        ["send"] = (I32x4, I32),
        ["kv_get"] = (I32x4, I32),
        ["kv_put"] = (I32x4, I32),
        ["random"] = (I32x2, []),
        ["timer"] = ([ValueKind.Int64], []),
    };

    private readonly ProgramLimits _limits;
    private readonly Module _module;
    private readonly Store _store;
    private readonly Linker _linker;
    private readonly Dictionary<string, byte[]> _kv = [];
    /// <summary>Keys written since the host last took them, with their new values (null: removed).</summary>
    private readonly Dictionary<string, byte[]?> _changed = [];
    private readonly List<ProgramMessage> _outbox = [];
    private Instance _instance = null!;

    private HostedProgram(ProgramEngine engine, ProgramLimits limits, Module module, long fuel)
    {
        _limits = limits;
        _module = module;
        _store = new Store(engine.Engine);
        _store.SetLimits(memorySize: limits.MemoryBytes);
        _store.Fuel = (ulong)fuel;
        _linker = new Linker(engine.Engine);
        _linker.Define("quid", "send", Function.FromCallback(_store, (Caller caller, int to, int toLength, int body, int bodyLength) => Send(caller, to, toLength, body, bodyLength)));
        _linker.Define("quid", "kv_get", Function.FromCallback(_store, (Caller caller, int key, int keyLength, int value, int capacity) => Get(caller, key, keyLength, value, capacity)));
        _linker.Define("quid", "kv_put", Function.FromCallback(_store, (Caller caller, int key, int keyLength, int value, int valueLength) => Put(caller, key, keyLength, value, valueLength)));
        _linker.Define("quid", "random", Function.FromCallback(_store, (Caller caller, int at, int length) =>
        {
            Charge(caller, length);
            RandomNumberGenerator.Fill(Span(caller, at, length));
        }));
        _linker.Define("quid", "timer", Function.FromCallback(_store, (Caller caller, long milliseconds) =>
        {
            Charge(caller, 0);
            WakeAfter = TimeSpan.FromMilliseconds(Math.Clamp(milliseconds, 0, (long)TimeSpan.FromDays(1).TotalMilliseconds));
        }));
    }

    /// <summary>Fuel left: the program stops when it runs out, and waits for more.</summary>
    public long Fuel => (long)_store.Fuel;
    /// <summary>What its key-value store holds, keys and values.</summary>
    public long StoredBytes { get; private set; }
    /// <summary>When it last asked to be woken, counted from that call; null when it has not.</summary>
    public TimeSpan? WakeAfter { get; private set; }

    /// <summary>
    /// Checks <paramref name="wasm"/> against the limits and the host interface and starts it with
    /// <paramref name="fuel"/> and the key-value store it kept before (<paramref name="store"/>, as
    /// <see cref="TakeStoreChanges"/> gave it); throws <see cref="ProgramException"/> saying why a module is refused.
    /// </summary>
    public static HostedProgram Load(ProgramEngine engine, ReadOnlySpan<byte> wasm, ProgramLimits limits, long fuel, IEnumerable<KeyValuePair<string, byte[]>>? store = null)
    {
        var module = Compile(engine, wasm, limits);
        // From here the program owns the module.
        var program = new HostedProgram(engine, limits, module, fuel);
        try
        {
            foreach (var (key, value) in store ?? [])
            {
                program._kv[key] = value;
                program.StoredBytes += Convert.FromBase64String(key).Length + value.Length;
            }
            program.Call(() => program._instance = program._linker.Instantiate(program._store, module));
        }
        catch
        {
            program.Dispose();
            throw;
        }
        return program;
    }

    /// <summary>Hands the program a message: written where its <c>alloc</c> says, then <c>on_message(at, length)</c>.</summary>
    public void Deliver(ReadOnlySpan<byte> message)
    {
        if (message.Length > MaxMessage) throw new ArgumentException($"A message of {message.Length} bytes; at most {MaxMessage}.", nameof(message));
        byte[] copy = message.ToArray();
        Call(() =>
        {
            int at = _instance.GetFunction<int, int>("alloc")!(copy.Length);
            var memory = _instance.GetMemory("memory")!;
            if (at < 0 || at + (long)copy.Length > memory.GetLength())
                throw new ProgramException(ProgramError.Trap, $"Its alloc answered {at} for {copy.Length} bytes, outside its memory.");
            copy.CopyTo(memory.GetSpan(at, copy.Length));
            _instance.GetAction<int, int>("on_message")!(at, copy.Length);
        });
    }

    /// <summary>Calls <c>on_timer</c>, if the program has one, as the wake-up it asked for.</summary>
    public void Wake()
    {
        WakeAfter = null;
        if (_instance.GetAction("on_timer") is { } onTimer) Call(onTimer);
    }

    /// <summary>What it sent since the last time, in order.</summary>
    public IReadOnlyList<ProgramMessage> TakeOutbox()
    {
        var sent = _outbox.ToList();
        _outbox.Clear();
        return sent;
    }

    /// <summary>The wake-up it asked for since the last time, taken: the host sets its timer once per request, so messages coming between do not put it off.</summary>
    public TimeSpan? TakeWake()
    {
        var after = WakeAfter;
        WakeAfter = null;
        return after;
    }

    /// <summary>What its store changed since the last time, for the host to keep: each key (as the store names it) with its value, or null where it was removed.</summary>
    public IReadOnlyList<KeyValuePair<string, byte[]?>> TakeStoreChanges()
    {
        var changes = _changed.ToList();
        _changed.Clear();
        return changes;
    }

    public void AddFuel(long fuel) => _store.Fuel = checked(_store.Fuel + (ulong)fuel);

    /// <summary>Takes up to <paramref name="fuel"/> for what it keeps (its store, by the hour); false when that was more than it had, and it has none left.</summary>
    public bool Charge(long fuel)
    {
        if ((ulong)fuel <= _store.Fuel)
        {
            _store.Fuel -= (ulong)fuel;
            return true;
        }
        _store.Fuel = 0;
        return false;
    }

    /// <summary>The bytes of linear memory it holds now.</summary>
    public long MemoryBytes => _instance.GetMemory("memory")?.GetLength() ?? 0;

    public void Dispose()
    {
        _linker.Dispose();
        _store.Dispose();
        _module.Dispose();
    }

    /// <summary>
    /// A module from a file: WebAssembly's binary as it is, or its text format (WAT), which
    /// Wasmtime compiles to the binary here, so a program's source is all its author ships.
    /// </summary>
    public static byte[] ReadModule(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.AsSpan().StartsWith("\0asm"u8)) return bytes;
        try
        {
            return Module.ConvertText(System.Text.Encoding.UTF8.GetString(bytes));
        }
        catch (WasmtimeException e)
        {
            throw new ProgramException(ProgramError.Malformed, $"Neither a WebAssembly module nor its text: {FirstLine(e.Message)}", e);
        }
    }

    /// <summary>Checks <paramref name="wasm"/> as <see cref="Load"/> does, without running it: what a host does before it takes payment for it.</summary>
    public static void Check(ProgramEngine engine, ReadOnlySpan<byte> wasm, ProgramLimits limits) => Compile(engine, wasm, limits).Dispose();

    private static Module Compile(ProgramEngine engine, ReadOnlySpan<byte> wasm, ProgramLimits limits)
    {
        if (wasm.Length > limits.ModuleBytes)
            throw new ProgramException(ProgramError.TooLarge, $"A module of {wasm.Length:N0} bytes; this host takes at most {limits.ModuleBytes:N0}.");
        Module module;
        try
        {
            module = Module.FromBytes(engine.Engine, "program", wasm);
        }
        catch (WasmtimeException e)
        {
            throw new ProgramException(ProgramError.Malformed, $"Not a valid WebAssembly module: {FirstLine(e.Message)}", e);
        }
        try
        {
            CheckInterface(module);
        }
        catch
        {
            module.Dispose();
            throw;
        }
        return module;
    }

    private static void CheckInterface(Module module)
    {
        foreach (var import in module.Imports)
        {
            if (import is not FunctionImport function || import.ModuleName != "quid" || !Interface.TryGetValue(import.Name, out var expected))
                throw new ProgramException(ProgramError.WrongInterface, $"It imports {import.ModuleName}.{import.Name}, which this host does not offer: only {string.Join(", ", Interface.Keys.Select(k => "quid." + k))}.");
            if (!function.Parameters.SequenceEqual(expected.Parameters) || !function.Results.SequenceEqual(expected.Results))
                throw new ProgramException(ProgramError.WrongInterface, $"It imports quid.{import.Name} with the wrong signature.");
        }
        bool memory = module.Exports.Any(e => e is MemoryExport { Name: "memory" });
        bool alloc = module.Exports.Any(e => e is FunctionExport { Name: "alloc" } f && f.Parameters.SequenceEqual(I32) && f.Results.SequenceEqual(I32));
        bool onMessage = module.Exports.Any(e => e is FunctionExport { Name: "on_message" } f && f.Parameters.SequenceEqual(I32x2) && f.Results.Count == 0);
        bool onTimer = module.Exports.All(e => e is not FunctionExport { Name: "on_timer" } f || (f.Parameters.Count == 0 && f.Results.Count == 0));
        if (!memory || !alloc || !onMessage || !onTimer)
            throw new ProgramException(ProgramError.WrongInterface, "A program exports its memory as \"memory\", alloc(i32) -> i32, on_message(i32, i32), and optionally on_timer().");
    }

    /// <summary>Runs a call into the program within its deadline, and says in the host's words why it stopped.</summary>
    private void Call(Action call)
    {
        _store.SetEpochDeadline((ulong)Math.Max(1, Math.Ceiling(_limits.CallDeadline / ProgramEngine.Tick)));
        try
        {
            call();
        }
        catch (WasmtimeException e)
        {
            if (e.InnerException is ProgramException stopped) throw new ProgramException(stopped.Error, stopped.Message, e);
            throw (e as TrapException)?.Type switch
            {
                TrapCode.OutOfFuel => new ProgramException(ProgramError.OutOfFuel, "It ran out of fuel.", e),
                TrapCode.Interrupt => new ProgramException(ProgramError.Deadline, $"A call ran past its {_limits.CallDeadline.TotalMilliseconds:0} ms.", e),
                _ => new ProgramException(ProgramError.Trap, $"It trapped: {FirstLine(e.Message)}", e),
            };
        }
    }

    private int Send(Caller caller, int to, int toLength, int body, int bodyLength)
    {
        Charge(caller, (long)Math.Max(0, toLength) + Math.Max(0, bodyLength));
        if (toLength is < 1 or > MaxAddress || bodyLength is < 0 or > MaxMessage || _outbox.Count >= MaxOutbox) return -1;
        var address = Span(caller, to, toLength).ToArray();
        var message = Span(caller, body, bodyLength).ToArray();
        _outbox.Add(new ProgramMessage(address, message));
        return 0;
    }

    private int Get(Caller caller, int key, int keyLength, int value, int capacity)
    {
        Charge(caller, Math.Max(0, keyLength));
        string name = Key(caller, key, keyLength);
        if (!_kv.TryGetValue(name, out var stored)) return -1;
        int copied = Math.Min(stored.Length, Math.Max(0, capacity));
        Charge(caller, copied, call: false);
        stored.AsSpan(0, copied).CopyTo(Span(caller, value, copied));
        return stored.Length;
    }

    private int Put(Caller caller, int key, int keyLength, int value, int valueLength)
    {
        Charge(caller, (long)Math.Max(0, keyLength) + Math.Max(0, valueLength));
        string name = Key(caller, key, keyLength);
        byte[] bytes = Span(caller, value, valueLength).ToArray();
        long before = _kv.TryGetValue(name, out var old) ? keyLength + old.Length : 0;
        long after = bytes.Length == 0 ? 0 : keyLength + bytes.Length;
        if (StoredBytes - before + after > _limits.StoreBytes) return -1;
        if (bytes.Length == 0) _kv.Remove(name);
        else _kv[name] = bytes;
        _changed[name] = bytes.Length == 0 ? null : bytes;
        StoredBytes += after - before;
        return 0;
    }

    private static string Key(Caller caller, int key, int keyLength)
    {
        if (keyLength is < 1 or > MaxKey) throw new ProgramException(ProgramError.Trap, $"A key of {keyLength} bytes; keys are 1 to {MaxKey}.");
        return Convert.ToBase64String(Span(caller, key, keyLength));
    }

    /// <summary>The program's bytes at [at, at + length), or a trap.</summary>
    private static Span<byte> Span(Caller caller, int at, int length)
    {
        var memory = caller.GetMemory("memory")!;
        if (at < 0 || length < 0 || at + (long)length > memory.GetLength())
            throw new ProgramException(ProgramError.Trap, $"It passed bytes {at} to {(long)at + length}, outside its memory.");
        return memory.GetSpan(at, length);
    }

    /// <summary>Takes a host call's fuel, before it does anything: <see cref="ProgramLimits.HostCallFuel"/> (unless <paramref name="call"/> is false: more bytes of a call already charged) and one per byte it moves.</summary>
    private void Charge(Caller caller, long moved, bool call = true)
    {
        ulong cost = (ulong)((call ? _limits.HostCallFuel : 0) + Math.Max(0, moved));
        if (caller.Fuel < cost)
        {
            caller.Fuel = 0;
            throw new ProgramException(ProgramError.OutOfFuel, "It ran out of fuel in a host call.");
        }
        caller.Fuel -= cost;
    }

    private static string FirstLine(string text) => text.Split('\n', 2)[0].Trim();
}
