using BenchmarkDotNet.Running;

// `e2e [runs]`: the end-to-end harness over real processes; `cache-replay`: the exit cache's
// eviction policy over a synthetic trace; `cache-timing [objects]`: whether a hit can be told
// from a miss; anything else: BenchmarkDotNet micro-benchmarks.
if (args.Length > 0 && args[0] == "e2e") return await Quid.Bench.EndToEnd.RunAsync(args);
if (args.Length > 0 && args[0] == "cache-replay") return Quid.Bench.CacheReplay.Run();
if (args.Length > 0 && args[0] == "cache-timing") return await Quid.Bench.CacheTiming.RunAsync(args);
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
