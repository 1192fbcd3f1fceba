namespace Quid.Crypto;

/// <summary>RFC 4648 base32, lowercase, no padding: case-insensitive ids people can read aloud.</summary>
public static class Base32
{
    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz234567";

    public static string Encode(ReadOnlySpan<byte> data)
    {
        var chars = new char[(data.Length * 8 + 4) / 5];
        int buffer = 0, bits = 0, i = 0;
        foreach (byte b in data)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5)
            {
                chars[i++] = Alphabet[(buffer >> (bits - 5)) & 31];
                bits -= 5;
            }
        }
        if (bits > 0) chars[i++] = Alphabet[(buffer << (5 - bits)) & 31];
        return new string(chars, 0, i);
    }

    public static bool TryDecode(ReadOnlySpan<char> text, Span<byte> destination, out int written)
    {
        written = 0;
        int buffer = 0, bits = 0;
        foreach (char ch in text)
        {
            int value = ch switch
            {
                >= 'a' and <= 'z' => ch - 'a',
                >= 'A' and <= 'Z' => ch - 'A',
                >= '2' and <= '7' => ch - '2' + 26,
                _ => -1,
            };
            if (value < 0) return false;
            buffer = (buffer << 5) | value;
            bits += 5;
            if (bits >= 8)
            {
                if (written == destination.Length) return false;
                destination[written++] = (byte)(buffer >> (bits - 8));
                bits -= 8;
            }
        }
        // Leftover bits must be fewer than a character and all zero, or the text was not produced by Encode.
        return bits < 5 && (buffer & ((1 << bits) - 1)) == 0;
    }
}
