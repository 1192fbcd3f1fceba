using System.Diagnostics.Metrics;
using Quid.Node.Metrics;

namespace Quid.Tests.Node;

/// <summary>Observable instruments written in Prometheus' text format, read only from the meter asked for.</summary>
public sealed class PrometheusTextTests
{
    [Fact]
    public void Counters_and_gauges_are_named_typed_labelled_and_described()
    {
        using var meter = new Meter("Quid.Node.Test");
        using var other = new Meter("Quid.Node.Test");
        long given = 12345;
        meter.CreateObservableCounter("quid.ledger.given", () => given, "By", "Bytes carried");
        meter.CreateObservableGauge("quid.circuits", () => new[]
        {
            new Measurement<int>(2, new KeyValuePair<string, object?>("role", "origin")),
            new Measurement<int>(5, new KeyValuePair<string, object?>("role", "relay \"middle\"")),
        }, null, "Open circuits\nby role");
        meter.CreateObservableGauge("quid.throughput", () => 1.5, "By/s");
        other.CreateObservableGauge("quid.elsewhere", () => 1);

        string text = PrometheusText.Collect(meter);

        Assert.Contains("# HELP quid_ledger_given_bytes_total Bytes carried\n# TYPE quid_ledger_given_bytes_total counter\nquid_ledger_given_bytes_total 12345\n", text, StringComparison.Ordinal);
        Assert.Contains("# HELP quid_circuits Open circuits\\nby role\n# TYPE quid_circuits gauge\n", text, StringComparison.Ordinal);
        Assert.Contains("quid_circuits{role=\"origin\"} 2\n", text, StringComparison.Ordinal);
        Assert.Contains("quid_circuits{role=\"relay \\\"middle\\\"\"} 5\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE quid_throughput_bytes_per_second gauge\nquid_throughput_bytes_per_second 1.5\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("elsewhere", text, StringComparison.Ordinal);

        given = 20000;
        Assert.Contains("quid_ledger_given_bytes_total 20000\n", PrometheusText.Collect(meter), StringComparison.Ordinal);
    }
}
