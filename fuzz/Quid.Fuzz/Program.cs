// Fuzz targets for every parser of untrusted bytes, run under AFL++ through SharpFuzz.
// docs/FUZZING.md says how to build, instrument and run them.
using Quid.Fuzz;
using SharpFuzz;

if (args is ["seeds", var directory])
{
    Seeds.Write(directory);
    return 0;
}
if (args.Length != 1 || !Targets.All.TryGetValue(args[0], out var target))
{
    await Console.Error.WriteLineAsync($"usage: Quid.Fuzz <{string.Join('|', Targets.All.Keys)}>  (input on stdin, or under afl-fuzz)\n       Quid.Fuzz seeds <directory>");
    return 2;
}
// Persistent mode: one process runs many inputs. Any exception escaping the target is a crash.
Fuzzer.Run(stream =>
{
    using var buffer = new MemoryStream();
    stream.CopyTo(buffer);
    target(buffer.ToArray());
});
return 0;
