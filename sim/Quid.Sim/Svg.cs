using System.Globalization;
using System.Net;
using System.Text;

namespace Quid.Sim;

/// <summary>One line of a chart: a name and its points.</summary>
public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points);

/// <summary>
/// Small SVG charts a person can read at a glance: lines with axes, ticks and a legend, and
/// bars. Plain text, deterministic, no dependencies.
/// </summary>
public static class Svg
{
    private const int Width = 720, Height = 400, Left = 70, Right = 190, Top = 40, Bottom = 50;
    private static readonly string[] Colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

    private static string F(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    public static string Lines(string title, string xLabel, string yLabel, IReadOnlyList<Series> series, bool logX = false, double? yMax = null,
        IReadOnlyList<(double Y, string Label)>? targets = null)
    {
        var points = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.Y) && (!logX || p.X > 0)).ToList();
        double xMin = points.Count == 0 ? 0 : points.Min(p => X(p.X)), xMax = points.Count == 0 ? 1 : points.Max(p => X(p.X));
        double yTop = yMax ?? Nice(Math.Max(points.Count == 0 ? 1 : points.Max(p => p.Y), targets?.Max(t => t.Y) ?? 0));
        if (xMax <= xMin) xMax = xMin + 1;
        if (yTop <= 0) yTop = 1;
        double X(double x) => logX ? Math.Log10(x) : x;
        double Px(double x) => Left + (X(x) - xMin) / (xMax - xMin) * (Width - Left - Right);
        double Py(double y) => Height - Bottom - Math.Clamp(y / yTop, 0, 1.05) * (Height - Top - Bottom);

        var svg = Begin(title);
        Axes(svg, xLabel, yLabel);
        for (int i = 0; i <= 5; i++)
        {
            double y = yTop * i / 5;
            svg.Append(CultureInfo.InvariantCulture, $"<line x1='{Left}' y1='{F(Py(y))}' x2='{Width - Right}' y2='{F(Py(y))}' stroke='#eee'/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x='{Left - 6}' y='{F(Py(y) + 4)}' text-anchor='end'>{F(y)}</text>");
        }
        for (int i = 0; i <= 5; i++)
        {
            double x = xMin + (xMax - xMin) * i / 5;
            double shown = logX ? Math.Pow(10, x) : x;
            svg.Append(CultureInfo.InvariantCulture, $"<text x='{F(Px(shown))}' y='{Height - Bottom + 16}' text-anchor='middle'>{F(shown)}</text>");
        }
        foreach (var (y, label) in targets ?? [])
        {
            svg.Append(CultureInfo.InvariantCulture, $"<line x1='{Left}' y1='{F(Py(y))}' x2='{Width - Right}' y2='{F(Py(y))}' stroke='#555' stroke-dasharray='5,4'/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x='{Width - Right - 4}' y='{F(Py(y) - 4)}' text-anchor='end' fill='#555'>{Escape(label)}</text>");
        }
        for (int i = 0; i < series.Count; i++)
        {
            var colour = Colours[i % Colours.Length];
            var visible = series[i].Points.Where(p => double.IsFinite(p.Y) && (!logX || p.X > 0)).ToList();
            if (visible.Count == 0) continue;
            svg.Append(CultureInfo.InvariantCulture, $"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{string.Join(' ', visible.Select(p => $"{F(Px(p.X))},{F(Py(p.Y))}"))}'/>");
            if (visible.Count <= 12)
                foreach (var p in visible) svg.Append(CultureInfo.InvariantCulture, $"<circle cx='{F(Px(p.X))}' cy='{F(Py(p.Y))}' r='3.5' fill='{colour}'/>");
            Legend(svg, i, series[i].Name, colour);
        }
        return End(svg);
    }

    public static string Bars(string title, string yLabel, IReadOnlyList<(string Label, double Value)> bars, IReadOnlyList<(double Y, string Label)>? targets = null)
    {
        double top = Nice(Math.Max(bars.Count == 0 ? 1 : bars.Max(b => double.IsFinite(b.Value) ? b.Value : 0), targets?.Max(t => t.Y) ?? 0));
        double Py(double y) => Height - Bottom - y / top * (Height - Top - Bottom);
        var svg = Begin(title);
        Axes(svg, "", yLabel);
        for (int i = 0; i <= 5; i++)
        {
            double y = top * i / 5;
            svg.Append(CultureInfo.InvariantCulture, $"<line x1='{Left}' y1='{F(Py(y))}' x2='{Width - Right}' y2='{F(Py(y))}' stroke='#eee'/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x='{Left - 6}' y='{F(Py(y) + 4)}' text-anchor='end'>{F(y)}</text>");
        }
        double slot = (double)(Width - Left - Right) / Math.Max(1, bars.Count);
        for (int i = 0; i < bars.Count; i++)
        {
            var (label, value) = bars[i];
            double v = double.IsFinite(value) ? value : 0;
            double x = Left + i * slot + slot * 0.15;
            svg.Append(CultureInfo.InvariantCulture, $"<rect x='{F(x)}' y='{F(Py(v))}' width='{F(slot * 0.7)}' height='{F(Py(0) - Py(v))}' fill='{Colours[i % Colours.Length]}'/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x='{F(x + slot * 0.35)}' y='{F(Py(v) - 4)}' text-anchor='middle'>{F(v)}</text>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x='{F(x + slot * 0.35)}' y='{Height - Bottom + 16}' text-anchor='middle'>{Escape(label)}</text>");
        }
        foreach (var (y, label) in targets ?? [])
        {
            svg.Append(CultureInfo.InvariantCulture, $"<line x1='{Left}' y1='{F(Py(y))}' x2='{Width - Right}' y2='{F(Py(y))}' stroke='#555' stroke-dasharray='5,4'/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x='{Width - Right + 4}' y='{F(Py(y) + 4)}' fill='#555'>{Escape(label)}</text>");
        }
        return End(svg);
    }

    /// <summary>The empirical distribution of <paramref name="values"/>: the share at or below each value (infinity for what never happened).</summary>
    public static Series Cdf(string name, IEnumerable<double> values)
    {
        // Values that never happened (infinite) count in the whole but are never reached.
        var all = values.ToArray();
        var sorted = all.Where(double.IsFinite).Order().ToArray();
        var points = new List<(double, double)>();
        for (int i = 0; i < sorted.Length; i++)
            if (i == sorted.Length - 1 || sorted[i + 1] != sorted[i]) points.Add((sorted[i], (i + 1.0) / all.Length));
        // Thin long tails of points: the eye needs a few hundred at most.
        int step = Math.Max(1, points.Count / 400);
        return new Series(name, [.. points.Where((_, i) => i % step == 0 || i == points.Count - 1)]);
    }

    private static double Nice(double max)
    {
        if (max <= 0 || !double.IsFinite(max)) return 1;
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(max)));
        foreach (var step in new[] { 1, 2, 2.5, 5, 10 })
            if (step * magnitude >= max) return step * magnitude;
        return 10 * magnitude;
    }

    private static StringBuilder Begin(string title)
    {
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns='http://www.w3.org/2000/svg' width='{Width}' height='{Height}' font-family='sans-serif' font-size='12'>");
        svg.Append(CultureInfo.InvariantCulture, $"<rect width='{Width}' height='{Height}' fill='white'/><text x='{Width / 2}' y='22' text-anchor='middle' font-size='15'>{Escape(title)}</text>");
        return svg;
    }

    private static void Axes(StringBuilder svg, string xLabel, string yLabel)
    {
        svg.Append(CultureInfo.InvariantCulture, $"<line x1='{Left}' y1='{Height - Bottom}' x2='{Width - Right}' y2='{Height - Bottom}' stroke='black'/>");
        svg.Append(CultureInfo.InvariantCulture, $"<line x1='{Left}' y1='{Top}' x2='{Left}' y2='{Height - Bottom}' stroke='black'/>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x='{(Left + Width - Right) / 2}' y='{Height - 12}' text-anchor='middle'>{Escape(xLabel)}</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text transform='translate(16,{(Top + Height - Bottom) / 2}) rotate(-90)' text-anchor='middle'>{Escape(yLabel)}</text>");
    }

    private static void Legend(StringBuilder svg, int i, string name, string colour)
    {
        int y = Top + 10 + i * 18;
        svg.Append(CultureInfo.InvariantCulture, $"<rect x='{Width - Right + 12}' y='{y - 9}' width='14' height='4' fill='{colour}'/>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x='{Width - Right + 32}' y='{y - 3}'>{Escape(name)}</text>");
    }

    private static string End(StringBuilder svg) => svg.Append("</svg>\n").ToString();

    private static string Escape(string text) => WebUtility.HtmlEncode(text);
}
