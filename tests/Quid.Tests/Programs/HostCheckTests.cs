using Quid.Tests.Integration;

namespace Quid.Tests.Programs;

/// <summary><c>quid host check</c>: a module run here as a host would, before anyone pays to deploy it.</summary>
public sealed class HostCheckTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("quid-check-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task The_remailers_source_is_taken_and_answers_a_message_and_a_module_asking_for_a_file_system_is_refused_with_why()
    {
        string remailer = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "src", "Quid", "Programs", "remailer.wat");
        var (code, output) = await QuidProcess.RunAsync("host", "check", remailer, "--message", "hello");
        Assert.True(code == 0, output);
        Assert.Contains("A host would take it", output, StringComparison.Ordinal);
        // "h" is no kind it knows: it answers the poster with an error, 0xEE 0x06.
        Assert.Contains("to the poster: 2 bytes, EE06", output, StringComparison.Ordinal);

        string wasi = Path.Combine(_directory, "wasi.wat");
        await File.WriteAllTextAsync(wasi, """(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1))""");
        (code, output) = await QuidProcess.RunAsync("host", "check", wasi);
        Assert.Equal(1, code);
        Assert.Contains("WrongInterface", output, StringComparison.Ordinal);
        Assert.Contains("wasi_snapshot_preview1.fd_write", output, StringComparison.Ordinal);

        string junk = Path.Combine(_directory, "junk.wasm");
        await File.WriteAllBytesAsync(junk, [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xFF]);
        (code, output) = await QuidProcess.RunAsync("host", "check", junk);
        Assert.Equal(1, code);
        Assert.Contains("Malformed", output, StringComparison.Ordinal);
    }
}
