using System.Security.Cryptography;
using System.Text;

namespace Quid.Services.Share;

/// <summary>
/// A folder that takes uploads (<c>quid share --receive DIR</c>). Each upload is written under a
/// hidden temporary name inside the folder and renamed once whole, so a half upload never
/// appears under its own name; a name that is taken gets a suffix, <c>name (1).ext</c>, so nothing
/// is ever overwritten. Uploaders see nothing of the folder unless <see cref="Listed"/>.
/// </summary>
public sealed class UploadInbox : ShareContent
{
    public const long DefaultMaxUploadBytes = 1L << 30;
    /// <summary>Room for a suffix within the 255 bytes most file systems allow in a name.</summary>
    public const int MaxNameBytes = 200;
    private const string PartPrefix = ".quid-upload-";

    /// <param name="folder">Created if it does not exist.</param>
    /// <param name="maxUploadBytes">The most one request may store, its files together; more is refused with 413.</param>
    /// <param name="listed">Whether the folder's files are listed and served, to uploaders too.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxUploadBytes"/> is not positive.</exception>
    /// <exception cref="IOException">The folder could not be created.</exception>
    public UploadInbox(string folder, long maxUploadBytes = DefaultMaxUploadBytes, bool listed = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxUploadBytes);
        Directory.CreateDirectory(folder);
        Folder = RealPath(folder) ?? throw new DirectoryNotFoundException($"{folder} does not exist.");
        MaxUploadBytes = maxUploadBytes;
        Listed = listed;
        Files = new SharedFiles([Folder]);
    }

    /// <summary>Where uploads are stored, symbolic links followed.</summary>
    public string Folder { get; }

    public long MaxUploadBytes { get; }

    public bool Listed { get; }

    /// <summary>The folder as a read-only share, for when it is <see cref="Listed"/>; temporary files are hidden names, so they never show.</summary>
    internal SharedFiles Files { get; }

    /// <summary>A new, empty temporary file in the folder, which only this upload writes.</summary>
    internal FileStream CreatePart()
    {
        string path = Path.Join(Folder, PartPrefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12)) + ".part");
        return new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 0 });
    }

    /// <summary>Renames a whole upload to <paramref name="name"/>, or to the first free <c>name (n)</c>, without ever replacing a file.</summary>
    /// <returns>The name it was stored under.</returns>
    /// <exception cref="IOException">The rename failed for another reason than a taken name.</exception>
    internal string Store(string partPath, string name)
    {
        string stem = Path.GetFileNameWithoutExtension(name);
        string extension = Path.GetExtension(name);
        for (int n = 0; ; n++)
        {
            string candidate = n == 0 ? name : $"{stem} ({n}){extension}";
            string target = Path.Join(Folder, candidate);
            try
            {
                // Not replacing is atomic here (link, then unlink, on Unix): two uploads of one name cannot both win it.
                File.Move(partPath, target, overwrite: false);
                return candidate;
            }
            catch (IOException) when ((File.Exists(target) || Directory.Exists(target)) && n < 10_000)
            {
            }
        }
    }

    /// <summary>
    /// A name an upload may be stored under: the last part of what the client called it, with no
    /// separators, no control or reserved characters, no leading dots (no hidden files, no
    /// <c>..</c>), at most <see cref="MaxNameBytes"/> bytes of UTF-8, and never empty.
    /// </summary>
    internal static string SafeName(string requested)
    {
        // A browser on Windows may send the whole path.
        string last = requested[(requested.LastIndexOfAny(['/', '\\']) + 1)..];
        var name = new StringBuilder(last.Length);
        foreach (var rune in last.EnumerateRunes())
        {
            // Format characters too: a right-to-left override would show "gpj.exe" as "exe.jpg".
            bool reserved = Rune.IsControl(rune) || Rune.GetUnicodeCategory(rune) == System.Globalization.UnicodeCategory.Format
                || rune.Value is '<' or '>' or ':' or '"' or '|' or '?' or '*' or 0xFFFD;
            name.Append(reserved ? "_" : rune.ToString());
        }
        string safe = name.ToString().Trim().TrimStart('.').TrimEnd('.', ' ');
        if (safe.Length == 0) return "upload";
        if (Encoding.UTF8.GetByteCount(safe) <= MaxNameBytes) return safe;
        // Too long: the stem is cut, at a whole character, and a short extension kept.
        string extension = Path.GetExtension(safe) is { Length: <= 16 } e ? e : "";
        string stem = safe[..^extension.Length];
        int budget = MaxNameBytes - Encoding.UTF8.GetByteCount(extension);
        var cut = new StringBuilder();
        foreach (var rune in stem.EnumerateRunes())
        {
            if ((budget -= rune.Utf8SequenceLength) < 0) break;
            cut.Append(rune.ToString());
        }
        return cut.ToString().TrimEnd('.', ' ') + extension;
    }
}
