using System.Security.Cryptography;
using Quid.Programs;
using Wasmtime;

namespace Quid.Tests.Programs;

/// <summary>The sandbox: the host interface and nothing else, fuel as the meter, a deadline per call, and modules refused with a reason.</summary>
public sealed class HostedProgramTests : IDisposable
{
    private readonly ProgramEngine _engine = new(TimeProvider.System);
    private static readonly ProgramLimits Limits = new();

    public void Dispose() => _engine.Dispose();

    /// <summary>
    /// Answers every message to the address "back" with the message itself, counts them in its store
    /// under "n", and asks to be woken in a second; woken, it sends "tick".
    /// </summary>
    private const string Echo = """
        (module
          (import "quid" "send" (func $send (param i32 i32 i32 i32) (result i32)))
          (import "quid" "kv_get" (func $get (param i32 i32 i32 i32) (result i32)))
          (import "quid" "kv_put" (func $put (param i32 i32 i32 i32) (result i32)))
          (import "quid" "timer" (func $timer (param i64)))
          (memory (export "memory") 1 4)
          (data (i32.const 0) "back")
          (data (i32.const 4) "n")
          (data (i32.const 8) "tick")
          (func (export "alloc") (param i32) (result i32) (i32.const 1024))
          (func (export "on_message") (param $at i32) (param $length i32)
            (drop (call $send (i32.const 0) (i32.const 4) (local.get $at) (local.get $length)))
            (drop (call $get (i32.const 4) (i32.const 1) (i32.const 16) (i32.const 4)))
            (i32.store (i32.const 16) (i32.add (i32.load (i32.const 16)) (i32.const 1)))
            (drop (call $put (i32.const 4) (i32.const 1) (i32.const 16) (i32.const 4)))
            (call $timer (i64.const 1000)))
          (func (export "on_timer")
            (drop (call $send (i32.const 0) (i32.const 4) (i32.const 8) (i32.const 4)))))
        """;

    private const string Spin = """
        (module
          (memory (export "memory") 1)
          (func (export "alloc") (param i32) (result i32) (i32.const 0))
          (func (export "on_message") (param i32 i32) (loop $forever (br $forever))))
        """;

    private HostedProgram Load(string wat, long fuel = 10_000_000, ProgramLimits? limits = null) =>
        HostedProgram.Load(_engine, Module.ConvertText(wat), limits ?? Limits, fuel);

    private static ProgramError Refusal(Action load) => Assert.Throws<ProgramException>(load).Error;

    [Fact]
    public void A_program_answers_messages_keeps_state_and_asks_to_be_woken_all_paid_in_fuel()
    {
        using var program = Load(Echo);
        long fuel = program.Fuel;
        program.Deliver("hello"u8);
        program.Deliver("again"u8);
        var sent = program.TakeOutbox();
        Assert.Equal(["hello", "again"], sent.Select(m => System.Text.Encoding.ASCII.GetString(m.Body)));
        Assert.All(sent, m => Assert.Equal("back"u8.ToArray(), m.To));
        Assert.Equal(1 + 4, program.StoredBytes);
        Assert.Equal(TimeSpan.FromSeconds(1), program.WakeAfter);
        // Every host call costs its fuel: two messages of four calls each, at 1,000 and more.
        Assert.True(fuel - program.Fuel >= 8 * Limits.HostCallFuel, $"{fuel - program.Fuel} fuel spent");

        program.Wake();
        Assert.Null(program.WakeAfter);
        Assert.Equal("tick"u8.ToArray(), Assert.Single(program.TakeOutbox()).Body);
        Assert.Empty(program.TakeOutbox());
    }

    [Fact]
    public void A_program_that_runs_out_of_fuel_stops_and_goes_on_when_topped_up()
    {
        using var program = Load(Echo, fuel: 3_000);
        Assert.Equal(ProgramError.OutOfFuel, Refusal(() => program.Deliver("hello"u8)));
        Assert.Equal(0, program.Fuel);
        program.AddFuel(100_000);
        program.Deliver("hello"u8);
        Assert.Contains(program.TakeOutbox(), m => m.Body.AsSpan().SequenceEqual("hello"u8));

        using var spin = Load(Spin, fuel: 1_000_000);
        Assert.Equal(ProgramError.OutOfFuel, Refusal(() => spin.Deliver("x"u8)));
    }

    [Fact]
    public void An_allocation_loop_stops_at_the_memory_limit_and_fuel_that_runs_out_inside_a_host_call_changes_nothing()
    {
        // Grows a page at a time until memory.grow says no, and sends how many pages it got.
        using var allocator = Load("""
            (module
              (import "quid" "send" (func $send (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (func (export "alloc") (param i32) (result i32) (i32.const 64))
              (func (export "on_message") (param i32 i32)
                (local $pages i32)
                (local.set $pages (i32.const 1))
                (block $full (loop $more
                  (br_if $full (i32.lt_s (memory.grow (i32.const 1)) (i32.const 0)))
                  (local.set $pages (i32.add (local.get $pages) (i32.const 1)))
                  (br $more)))
                (i32.store (i32.const 0) (local.get $pages))
                (drop (call $send (i32.const 8) (i32.const 1) (i32.const 0) (i32.const 4)))))
            """);
        allocator.Deliver("x"u8);
        Assert.Equal(Limits.MemoryBytes / 65536, BitConverter.ToInt32(Assert.Single(allocator.TakeOutbox()).Body));
        Assert.Equal(Limits.MemoryBytes, allocator.MemoryBytes);

        // A put whose host call finds too little fuel: stopped before it stored or sent anything.
        const string PutThenSend = """
            (module
              (import "quid" "kv_put" (func $put (param i32 i32 i32 i32) (result i32)))
              (import "quid" "send" (func $send (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (func (export "alloc") (param i32) (result i32) (i32.const 64))
              (func (export "on_message") (param $at i32) (param $length i32)
                (drop (call $put (local.get $at) (i32.const 1) (local.get $at) (local.get $length)))
                (drop (call $send (local.get $at) (i32.const 1) (local.get $at) (local.get $length)))))
            """;
        using var starved = Load(PutThenSend, fuel: Limits.HostCallFuel / 2);
        Assert.Equal(ProgramError.OutOfFuel, Refusal(() => starved.Deliver("kv"u8)));
        Assert.Equal(0, starved.Fuel);
        Assert.Equal(0, starved.StoredBytes);
        Assert.Empty(starved.TakeStoreChanges());
        Assert.Empty(starved.TakeOutbox());
        // Topped up, the same message goes through whole.
        starved.AddFuel(1_000_000);
        starved.Deliver("kv"u8);
        Assert.Equal(3, starved.StoredBytes);
        Assert.Single(starved.TakeStoreChanges());
        Assert.Single(starved.TakeOutbox());
    }

    [Fact]
    public void A_call_that_runs_past_its_deadline_is_stopped()
    {
        using var spin = Load(Spin, fuel: long.MaxValue / 2, limits: Limits with { CallDeadline = TimeSpan.FromMilliseconds(50) });
        var error = Assert.Throws<ProgramException>(() => spin.Deliver("x"u8));
        Assert.Equal(ProgramError.Deadline, error.Error);
        Assert.Contains("50 ms", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Modules_that_are_not_wasm_too_large_or_ask_for_what_the_host_does_not_offer_are_refused_with_why()
    {
        var wasm = Module.ConvertText(Echo);
        Assert.Equal(ProgramError.Malformed, Refusal(() => HostedProgram.Load(_engine, [], Limits, 1000)));
        Assert.Equal(ProgramError.Malformed, Refusal(() => HostedProgram.Load(_engine, "\0asm not really"u8, Limits, 1000)));
        // Cut anywhere, it is refused with a reason, unless the cut falls between sections and leaves a
        // whole module (then it loads, without what was cut): never any other exception.
        int cuts = 0, refused = 0;
        for (int length = 1; length < wasm.Length; length++, cuts++)
        {
            try
            {
                HostedProgram.Load(_engine, wasm.AsSpan(0, length), Limits, 1000).Dispose();
            }
            catch (ProgramException e) when (e.Error is ProgramError.Malformed or ProgramError.WrongInterface)
            {
                refused++;
            }
        }
        Assert.InRange(refused, cuts - 3, cuts);
        for (int i = 0; i < 200; i++)
            Assert.Equal(ProgramError.Malformed, Refusal(() => HostedProgram.Load(_engine, RandomNumberGenerator.GetBytes(1 + i * 13), Limits, 1000)));
        Assert.Equal(ProgramError.TooLarge, Refusal(() => HostedProgram.Load(_engine, wasm, Limits with { ModuleBytes = wasm.Length - 1 }, 1000)));

        // A file system, a clock, or the host's own functions with another signature.
        var wrong = Assert.Throws<ProgramException>(() => Load("""(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0)) (func (export "on_message") (param i32 i32)))"""));
        Assert.Equal(ProgramError.WrongInterface, wrong.Error);
        Assert.Contains("wasi_snapshot_preview1.fd_write", wrong.Message, StringComparison.Ordinal);
        Assert.Equal(ProgramError.WrongInterface, Refusal(() => Load("""(module (import "quid" "send" (func (param i32) (result i32))) (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0)) (func (export "on_message") (param i32 i32)))""")));
        Assert.Equal(ProgramError.WrongInterface, Refusal(() => Load("""(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0)))""")));
    }

    [Fact]
    public void Memory_and_store_are_bounded_and_a_host_call_outside_memory_traps()
    {
        // More memory than the host allows, from the start.
        Assert.Throws<ProgramException>(() => Load("""(module (memory (export "memory") 300) (func (export "alloc") (param i32) (result i32) (i32.const 0)) (func (export "on_message") (param i32 i32)))"""));
        // Growing past it fails inside the program (memory.grow answers -1), which traps on it here.
        using var grower = Load("""(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0)) (func (export "on_message") (param i32 i32) (if (i32.lt_s (memory.grow (i32.const 1000)) (i32.const 0)) (then unreachable))))""");
        Assert.Equal(ProgramError.Trap, Refusal(() => grower.Deliver("x"u8)));

        // A store of 8 bytes takes a key and value of 5, not a second of 5 more.
        using var keeper = Load("""
            (module
              (import "quid" "kv_put" (func $put (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (func (export "alloc") (param i32) (result i32) (i32.const 64))
              (func (export "on_message") (param $at i32) (param $length i32)
                (if (i32.ne (call $put (local.get $at) (i32.const 1) (local.get $at) (local.get $length)) (i32.const 0)) (then unreachable))))
            """, limits: Limits with { StoreBytes = 8 });
        keeper.Deliver("abcd"u8);
        Assert.Equal(5, keeper.StoredBytes);
        Assert.Equal(ProgramError.Trap, Refusal(() => keeper.Deliver("wxyz"u8)));
        Assert.Equal(5, keeper.StoredBytes);

        using var reacher = Load("""
            (module
              (import "quid" "send" (func $send (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (func (export "alloc") (param i32) (result i32) (i32.const 0))
              (func (export "on_message") (param i32 i32) (drop (call $send (i32.const 0) (i32.const 4) (i32.const 65530) (i32.const 100)))))
            """);
        var error = Assert.Throws<ProgramException>(() => reacher.Deliver("x"u8));
        Assert.Equal(ProgramError.Trap, error.Error);
        Assert.Contains("outside its memory", error.Message, StringComparison.Ordinal);
        Assert.Empty(reacher.TakeOutbox());
    }
}
