using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Quid.Credits;
using Quid.Crypto;
using Quid.Programs;
using Quid.Tests.Credits;
using Quid.Wire;
using Wasmtime;

namespace Quid.Tests.Programs;

/// <summary>The host's side of hosted programs, over an in-memory desk: deploy, postage, replies, fuel for the store, the warning, pause, grace and deletion.</summary>
public sealed class ProgramHostTests : IDisposable
{
    private static readonly NodeId Self = new([.. Enumerable.Range(1, NodeId.Size).Select(i => (byte)i)]);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));
    private readonly CreditKeys _keys = new(RandomNumberGenerator.GetBytes(32));
    private readonly CreditIssuer _issuer;
    private readonly string _directory = Directory.CreateTempSubdirectory("quid-programs-").FullName;
    private ProgramHost _host;
    private readonly List<ProgramMessage> _routed = [];

    /// <summary>
    /// Keeps each message under its first byte as key, replies "ok" to whoever posted, and sends
    /// the message on to the address "next".
    /// </summary>
    private static readonly byte[] Keeper = Module.ConvertText("""
        (module
          (import "quid" "send" (func $send (param i32 i32 i32 i32) (result i32)))
          (import "quid" "kv_put" (func $put (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 2)
          (data (i32.const 0) "\00ok")
          (data (i32.const 8) "next")
          (func (export "alloc") (param i32) (result i32) (i32.const 1024))
          (func (export "on_message") (param $at i32) (param $length i32)
            (drop (call $put (local.get $at) (i32.const 1) (local.get $at) (local.get $length)))
            (drop (call $send (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 2)))
            (drop (call $send (i32.const 8) (i32.const 4) (local.get $at) (local.get $length)))))
        """);

    public ProgramHostTests()
    {
        _issuer = new CreditIssuer(_keys, new MemorySpentCredits(), _time);
        _host = Open();
    }

    private ProgramHost Open()
    {
        var host = ProgramHost.Open(_directory, new ProgramLimits(), _issuer, _time, NullLogger.Instance);
        host.Route = (_, message) =>
        {
            lock (_routed) _routed.Add(message);
            return Task.CompletedTask;
        };
        return host;
    }

    public void Dispose()
    {
        _host.Dispose();
        _keys.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    private List<EpochCredit> Credits(long amount) => Payment.Of(_issuer, Self, _time, amount);

    private async Task<List<DeskMessage>> AskAsync(DeskMessage request, byte[]? body = null)
    {
        var toHost = new MemoryStream(body ?? []);
        var fromHost = new MemoryStream();
        await _host.ServeAsync(new Duplex(toHost, fromHost), request, CancellationToken.None);
        fromHost.Position = 0;
        var answers = new List<DeskMessage>();
        while (await CreditDesk.ReadAsync(fromHost, _time, CancellationToken.None) is { } answer) answers.Add(answer);
        return answers;
    }

    private async Task<(DeskProgram Program, byte[] Secret)> DeployAsync(byte[] module, long credits, uint postage = 0)
    {
        var secret = RandomNumberGenerator.GetBytes(32);
        var answers = await AskAsync(new DeskDeploy((uint)module.Length, postage, SHA256.HashData(secret), Credits(credits)), module);
        Assert.IsType<DeskReady>(answers[0]);
        return (Assert.IsType<DeskProgram>(answers[1]), secret);
    }

    [Fact]
    public async Task A_deployed_program_answers_its_posts_sends_on_and_keeps_its_store_across_a_restart()
    {
        var (program, _) = await DeployAsync(Keeper, ProgramHost.MinimumDeployCredits);
        Assert.Equal(ProgramState.Running, program.State);
        Assert.InRange((long)program.Fuel, CpuBlock.FuelPerGfuel - 100_000, CpuBlock.FuelPerGfuel);
        Assert.Equal(32, program.AddressKey.Length);
        var post = _host.Post(program.Id, [], "hello"u8.ToArray());
        Assert.Null(post.Refusal);
        Assert.Equal("ok", System.Text.Encoding.ASCII.GetString(Assert.Single(post.Replies)));
        var routed = Assert.Single(_routed);
        Assert.Equal("next", System.Text.Encoding.ASCII.GetString(routed.To));
        Assert.Equal("hello", System.Text.Encoding.ASCII.GetString(routed.Body));
        var info = Assert.Single(_host.Programs());
        Assert.Equal(6, info.StoredBytes);
        Assert.True(info.Fuel < (long)program.Fuel);

        // Started again from its module and its store: the same id, address, fuel and store.
        _host.Dispose();
        _host = Open();
        var started = new List<HostedProgramInfo>();
        _host.Started = (p, _) => started.Add(p);
        _host.Resume();
        var again = Assert.Single(started);
        Assert.Equal(program.Id, again.Id);
        Assert.Equal(program.AddressKey, again.AddressKey);
        Assert.Equal(info.Fuel, again.Fuel);
        Assert.Equal(6, again.StoredBytes);
        Assert.Null(_host.Post(program.Id, [], "x2"u8.ToArray()).Refusal);
        Assert.Equal(6 + 3, Assert.Single(_host.Programs()).StoredBytes);
    }

    [Fact]
    public async Task A_module_the_host_refuses_costs_nothing_and_too_little_payment_is_refused()
    {
        var credits = Credits(ProgramHost.MinimumDeployCredits);
        var secret = SHA256.HashData(RandomNumberGenerator.GetBytes(32));
        byte[] junk = [0, 0x61, 0x73, 0x6d, 9, 9];
        var answers = await AskAsync(new DeskDeploy((uint)junk.Length, 0, secret, credits), junk);
        Assert.Equal(CreditRefusal.ModuleRefused, Assert.IsType<DeskRefused>(answers[1]).Reason);
        var wasi = Module.ConvertText("""(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1))""");
        answers = await AskAsync(new DeskDeploy((uint)wasi.Length, 0, secret, credits), wasi);
        Assert.Contains("wasi_snapshot_preview1.fd_write", Assert.IsType<DeskRefused>(answers[1]).Text);
        // Over the host's limit: refused before a byte of it is read.
        Assert.Equal(CreditRefusal.ModuleRefused, Assert.IsType<DeskRefused>(Assert.Single(await AskAsync(new DeskDeploy(2 << 20, 0, secret, credits)))).Reason);
        // The same credits still pay for a module it takes.
        answers = await AskAsync(new DeskDeploy((uint)Keeper.Length, 0, secret, credits), Keeper);
        Assert.IsType<DeskProgram>(answers[1]);
        answers = await AskAsync(new DeskDeploy((uint)Keeper.Length, 0, secret, Credits(ProgramHost.MinimumDeployCredits - 1)), Keeper);
        Assert.Equal(CreditRefusal.Underpaid, Assert.IsType<DeskRefused>(answers[1]).Reason);
        // A module cut short ends the stream.
        var toHost = new MemoryStream(Keeper[..10]);
        Assert.False(await _host.ServeAsync(new Duplex(toHost, new MemoryStream()), new DeskDeploy((uint)Keeper.Length, 0, secret, Credits(16)), CancellationToken.None));
        Assert.Single(_host.Programs());
    }

    [Fact]
    public async Task Postage_is_taken_in_the_hosts_credits_and_becomes_the_programs_fuel()
    {
        var (program, _) = await DeployAsync(Keeper, ProgramHost.MinimumDeployCredits, postage: 2);
        Assert.Contains("postage is 2", _host.Post(program.Id, [], "x"u8.ToArray()).Refusal);
        Assert.Contains("postage is 2", _host.Post(program.Id, Credits(1), "x"u8.ToArray()).Refusal);
        long before = _host.Programs().Single().Fuel;
        var postage = Credits(2);
        Assert.Null(_host.Post(program.Id, postage, "x"u8.ToArray()).Refusal);
        Assert.True(_host.Programs().Single().Fuel > before + CpuBlock.FuelPerCredit);
        // Spent: the same postage twice is refused.
        Assert.NotNull(_host.Post(program.Id, postage, "y"u8.ToArray()).Refusal);
        Assert.Contains("No program", _host.Post(RandomNumberGenerator.GetBytes(16), [], "x"u8.ToArray()).Refusal);
    }

    [Fact]
    public async Task Its_store_uses_up_its_fuel_it_is_warned_paused_topped_up_and_at_last_deleted_with_nothing_left()
    {
        var (program, _) = await DeployAsync(Keeper, ProgramHost.MinimumDeployCredits);
        // 8 values of 60 KB under 8 keys and its 128 KiB of memory: about 610 KB, which costs about 39 Mfuel a day of its 1 Gfuel.
        for (byte k = 0; k < 8; k++) Assert.Null(_host.Post(program.Id, [], [k, .. Enumerable.Repeat((byte)0xA5, 60_000)]).Refusal);
        int days = 0;
        while (!Assert.IsType<DeskProgram>(Assert.Single(await AskAsync(new DeskQuery(program.Id)))).Low)
        {
            _time.Advance(TimeSpan.FromDays(1));
            _host.Sweep();
            Assert.True(++days < 40, "its fuel never ran low");
        }
        Assert.InRange(days, 18, 25);
        Assert.NotNull(_host.Programs().Single().WarnedAt);
        while (_host.Programs().Single().State == ProgramState.Running)
        {
            _time.Advance(TimeSpan.FromDays(1));
            _host.Sweep();
            Assert.True(++days < 50, "it was never paused");
        }
        var paused = Assert.IsType<DeskProgram>(Assert.Single(await AskAsync(new DeskQuery(program.Id))));
        Assert.Equal(ProgramState.Paused, paused.State);
        Assert.Equal(0UL, paused.Fuel);
        Assert.Equal((ulong)(_time.GetUtcNow() + ProgramHost.Grace).ToUnixTimeSeconds(), paused.DeleteAt);
        Assert.Contains("paused", _host.Post(program.Id, [], "x"u8.ToArray()).Refusal);

        // Anyone holding its id tops it up: it runs again, its store as it was.
        var topped = Assert.IsType<DeskProgram>(Assert.Single(await AskAsync(new DeskTopup(program.Id, Credits(4)))));
        Assert.Equal(ProgramState.Running, topped.State);
        Assert.Equal(4 * CpuBlock.FuelPerCredit, (long)topped.Fuel);
        Assert.Null(_host.Post(program.Id, [], [9, 1]).Refusal);

        // 256 Mfuel lasts under 7 days; then a day of grace, and it is gone.
        for (int i = 0; i < 12 && _host.Programs().Count > 0; i++)
        {
            _time.Advance(TimeSpan.FromDays(1));
            _host.Sweep();
        }
        Assert.Empty(_host.Programs());
        Assert.Equal(CreditRefusal.NotFound, Assert.IsType<DeskRefused>(Assert.Single(await AskAsync(new DeskQuery(program.Id)))).Reason);
        _host.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        // Nothing of it is left in the host's files: not its module, not a byte of its store.
        var files = Directory.EnumerateFiles(_directory).Select(File.ReadAllBytes).ToList();
        Assert.DoesNotContain(files, f => f.AsSpan().IndexOf(Enumerable.Repeat((byte)0xA5, 64).ToArray()) >= 0);
        Assert.DoesNotContain(files, f => f.AsSpan().IndexOf(Keeper.AsSpan(8, 32)) >= 0);
        _host = Open();
    }

    [Fact]
    public async Task Only_its_owners_secret_stops_a_program()
    {
        var (program, secret) = await DeployAsync(Keeper, ProgramHost.MinimumDeployCredits);
        Assert.Equal(CreditRefusal.NotOwner, Assert.IsType<DeskRefused>(Assert.Single(await AskAsync(new DeskStop(program.Id, RandomNumberGenerator.GetBytes(32))))).Reason);
        var deleted = new List<HostedProgramInfo>();
        _host.Deleted = deleted.Add;
        Assert.Equal(ProgramState.Deleted, Assert.IsType<DeskProgram>(Assert.Single(await AskAsync(new DeskStop(program.Id, secret)))).State);
        Assert.Equal(program.Id, Assert.Single(deleted).Id);
        Assert.Empty(_host.Programs());
    }
}
