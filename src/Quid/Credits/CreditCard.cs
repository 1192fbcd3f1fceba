using System.Globalization;
using System.Text;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Credits;

/// <summary>
/// The seed's "pre-paid card": credits as text, to hand to someone by any means (PROTOCOL §10.5).
/// Whoever reads it can spend them, so the taker exchanges them at their issuer at once, after
/// which the giver's copy is worth nothing.
/// <code>
/// -----BEGIN QUID CREDITS-----
/// issuer 2GXW…
/// credit EPOCH ORDER INPUT OUTPUT      (INPUT, OUTPUT: base64url without padding)
/// -----END QUID CREDITS-----
/// </code>
/// </summary>
public static class CreditCard
{
    public const string Begin = "-----BEGIN QUID CREDITS-----";
    public const string End = "-----END QUID CREDITS-----";
    /// <summary>A card holds the credits of one give: at most this many.</summary>
    public const int MaxCredits = 1024;
    /// <summary>More text than a card of <see cref="MaxCredits"/> credits takes: longer input is refused before it is read.</summary>
    public const int MaxLength = 256 * 1024;

    public static string Write(IReadOnlyList<Credit> credits)
    {
        if (credits.Count is 0 or > MaxCredits) throw new ArgumentException($"A card holds 1 to {MaxCredits} credits.", nameof(credits));
        var issuer = credits[0].Issuer;
        if (credits.Any(c => c.Issuer != issuer)) throw new ArgumentException("A card holds the credits of one issuer.", nameof(credits));
        var text = new StringBuilder();
        text.Append(Begin).Append('\n');
        text.Append("issuer ").Append(issuer).Append('\n');
        foreach (var c in credits)
            text.Append(CultureInfo.InvariantCulture, $"credit {c.Epoch} {c.Order} {Base64Url(c.Input)} {Base64Url(c.Output)}\n");
        text.Append(End).Append('\n');
        return text.ToString();
    }

    /// <summary>Reads a card; anything else (text around it is allowed, as in a mail) is refused with a <see cref="WireException"/>.</summary>
    public static IReadOnlyList<Credit> Read(string text)
    {
        if (text.Length > MaxLength) throw new WireException(WireError.Oversized, $"A card of {text.Length} characters is longer than any of {MaxCredits} credits.");
        var lines = text.Split('\n').Select(l => l.TrimEnd('\r').Trim()).ToList();
        int begin = lines.IndexOf(Begin);
        if (begin < 0) throw new WireException(WireError.Truncated, $"No \"{Begin}\" line: this is not a Quid credit card.");
        int end = lines.IndexOf(End, begin + 1);
        if (end < 0) throw new WireException(WireError.Truncated, $"No \"{End}\" line: the card is cut short.");
        var body = lines.Skip(begin + 1).Take(end - begin - 1).Where(l => l.Length > 0).ToList();
        if (body.Count == 0 || !body[0].StartsWith("issuer ", StringComparison.Ordinal) || !NodeId.TryParse(body[0]["issuer ".Length..], out var issuer))
            throw new WireException(WireError.BadField, "A card starts with \"issuer NODE-ID\".");
        if (body.Count - 1 > MaxCredits) throw new WireException(WireError.Oversized, $"A card of {body.Count - 1} credits; at most {MaxCredits}.");
        var credits = new List<Credit>(body.Count - 1);
        foreach (var line in body.Skip(1))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length != 5 || fields[0] != "credit")
                throw new WireException(WireError.BadField, "Each line after the issuer is \"credit EPOCH ORDER INPUT OUTPUT\".");
            // One spelling per number, as for the base64url fields: no leading zeros.
            if (!ulong.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out ulong epoch) || fields[1] != epoch.ToString(CultureInfo.InvariantCulture))
                throw new WireException(WireError.BadField, $"\"{Clip(fields[1])}\" is not an epoch number.");
            if (!byte.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out byte order) || order > CreditCodec.MaxOrder || fields[2] != order.ToString(CultureInfo.InvariantCulture))
                throw new WireException(WireError.BadField, $"\"{Clip(fields[2])}\" is not a denomination order (0 to {CreditCodec.MaxOrder}).");
            var input = FromBase64Url(fields[3], CreditCodec.InputSize);
            var output = FromBase64Url(fields[4], CreditCodec.OutputSize);
            if (credits.Any(c => c.Input.AsSpan().SequenceEqual(input))) throw new WireException(WireError.BadField, "A credit is on the card twice.");
            credits.Add(new Credit(issuer, epoch, order, input, output));
        }
        if (credits.Count == 0) throw new WireException(WireError.Truncated, "The card holds no credit.");
        return credits;
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static byte[] FromBase64Url(string text, int size)
    {
        // Exactly the characters of base64url, and the length of `size` bytes unpadded.
        if (text.Length != (size * 4 + 2) / 3 || text.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_')))
            throw new WireException(WireError.BadField, $"\"{Clip(text)}\" is not {size} bytes in base64url.");
        string padded = text.Replace('-', '+').Replace('_', '/') + new string('=', (4 - text.Length % 4) % 4);
        var bytes = Convert.FromBase64String(padded);
        // One encoding per value: unused trailing bits must be zero.
        if (Base64Url(bytes) != text) throw new WireException(WireError.BadField, $"\"{Clip(text)}\" is not the canonical base64url of {size} bytes.");
        return bytes;
    }

    private static string Clip(string text) => text.Length <= 24 ? text : text[..24] + "…";
}
