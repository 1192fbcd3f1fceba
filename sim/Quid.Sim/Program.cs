namespace Quid.Sim;

public static class Program
{
    public static int Main(string[] args)
    {
        var sim = new Simulation(new SimOptions { Nodes = int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture), Duration = TimeSpan.FromMinutes(double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)) });
        var watch = System.Diagnostics.Stopwatch.StartNew();
        sim.Run(s => Console.WriteLine($"{s.Clock.Elapsed} online {s.Online.Count} events {s.Scheduler.Executed} {watch.Elapsed.TotalSeconds:0.0}s {s.Metrics.Series[^1]}"));
        return 0;
    }
}
