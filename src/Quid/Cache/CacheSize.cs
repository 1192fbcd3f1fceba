using System.Globalization;

namespace Quid.Cache;

/// <summary>Sizes as people write them in <c>cache = "2GiB"</c>: IEC units are powers of 1024, SI units powers of 1000, as the standards say.</summary>
public static class CacheSize
{
    private static readonly (string Unit, long Factor)[] Units =
    [
        ("TiB", 1L << 40), ("GiB", 1L << 30), ("MiB", 1L << 20), ("KiB", 1L << 10),
        ("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000), ("kB", 1_000), ("B", 1),
    ];

    /// <summary>A size such as <c>2GiB</c>, <c>500MB</c> or <c>1.5GiB</c>; throws <see cref="FormatException"/> naming the fix.</summary>
    public static long Parse(string text)
    {
        string trimmed = text.Trim();
        foreach (var (unit, factor) in Units)
        {
            if (!trimmed.EndsWith(unit, StringComparison.Ordinal)) continue;
            if (decimal.TryParse(trimmed[..^unit.Length].Trim(), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal number)
                && number * factor is var bytes && bytes <= long.MaxValue)
                return (long)bytes;
            break;
        }
        throw new FormatException($"'{text}' is not a size; write a number and a unit, such as 2GiB or 500MB");
    }

    /// <summary>Bytes in the largest IEC unit that keeps the number at least 1, to one decimal.</summary>
    public static string Format(long bytes)
    {
        foreach (var (unit, factor) in Units.Where(u => u.Unit.EndsWith("iB", StringComparison.Ordinal)))
            if (bytes >= factor) return string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)factor:0.#}{unit}");
        return string.Create(CultureInfo.InvariantCulture, $"{bytes}B");
    }
}
