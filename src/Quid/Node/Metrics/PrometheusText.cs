using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Quid.Node.Metrics;

/// <summary>
/// Writes one meter's instruments in the Prometheus text exposition format (version 0.0.4): a
/// name from the instrument's (dots become underscores, the unit is spelled out, counters end in
/// <c>_total</c>), its description as HELP, its kind as TYPE, and one line per set of tags.
/// </summary>
public static class PrometheusText
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static string Collect(Meter meter)
    {
        var measurements = new List<(Instrument Instrument, double Value, KeyValuePair<string, object?>[] Tags)>();
        using (var listener = new MeterListener())
        {
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, meter)) l.EnableMeasurementEvents(instrument);
            };
            listener.SetMeasurementEventCallback<long>((i, v, tags, _) => measurements.Add((i, v, tags.ToArray())));
            listener.SetMeasurementEventCallback<int>((i, v, tags, _) => measurements.Add((i, v, tags.ToArray())));
            listener.SetMeasurementEventCallback<double>((i, v, tags, _) => measurements.Add((i, v, tags.ToArray())));
            listener.Start();
            listener.RecordObservableInstruments();
        }

        var text = new StringBuilder();
        foreach (var group in measurements.GroupBy(m => m.Instrument))
        {
            var instrument = group.Key;
            bool counter = instrument is ObservableCounter<long> or ObservableCounter<int> or ObservableCounter<double>;
            string name = Name(instrument, counter);
            if (instrument.Description is { } help) text.Append("# HELP ").Append(name).Append(' ').Append(EscapeHelp(help)).Append('\n');
            text.Append("# TYPE ").Append(name).Append(counter ? " counter\n" : " gauge\n");
            foreach (var (_, value, tags) in group)
            {
                text.Append(name);
                if (tags.Length > 0)
                    text.Append('{').AppendJoin(',', tags.Select(t => $"{t.Key}=\"{EscapeLabel(Convert.ToString(t.Value, CultureInfo.InvariantCulture) ?? "")}\"")).Append('}');
                text.Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
            }
        }
        return text.ToString();
    }

    private static string Name(Instrument instrument, bool counter)
    {
        string unit = instrument.Unit switch
        {
            "By" => "_bytes",
            "By/s" => "_bytes_per_second",
            "kbit/s" => "_kbps",
            "s" => "_seconds",
            "MiBd" => "_mib_days",
            _ => "",
        };
        return instrument.Name.Replace('.', '_') + unit + (counter ? "_total" : "");
    }

    private static string EscapeHelp(string text) => text.Replace(@"\", @"\\", StringComparison.Ordinal).Replace("\n", @"\n", StringComparison.Ordinal);

    private static string EscapeLabel(string text) => EscapeHelp(text).Replace("\"", "\\\"", StringComparison.Ordinal);
}
