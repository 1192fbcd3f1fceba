using System.Security.Cryptography;
using System.Text;

namespace Quid.Crypto;

/// <summary>
/// Keeps the identity seed in <c>identity.key</c> in the data directory, readable by the owner
/// only, written atomically so a crash never leaves half a key. The file is three lines:
/// <code>
/// quid identity v2
/// &lt;the 32-byte seed in base64&gt;
/// &lt;the node id the seed gives, as quid id prints it&gt;
/// </code>
/// The id is the check: a changed byte in the seed gives another id, so a damaged file is refused
/// rather than silently becoming another node. A version 1 file (the first two lines only) is
/// read and rewritten as version 2.
/// </summary>
public static class IdentityStore
{
    public const string FileName = "identity.key";
    private const string Header = "quid identity v2";
    private const string UncheckedHeader = "quid identity v1";

    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    public static bool ExistsIn(string dataDirectory) => File.Exists(PathIn(dataDirectory));

    /// <summary>A new identity, saved; an existing key file is never replaced (<see cref="IOException"/>).</summary>
    public static NodeIdentity Create(string dataDirectory)
    {
        var identity = NodeIdentity.Generate(out byte[] seed);
        try
        {
            Save(PathIn(dataDirectory), seed, identity.Id, replace: false);
        }
        catch
        {
            identity.Dispose();
            throw;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
        return identity;
    }

    /// <summary>The identity in the key file; <see cref="InvalidDataException"/> naming the file and the fix when it is damaged or exposed.</summary>
    public static NodeIdentity Load(string dataDirectory)
    {
        string path = PathIn(dataDirectory);
        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
                throw new InvalidDataException($"{path} is readable by other users; run 'chmod 600 {path}' (and consider the key compromised).");
        }
        string[] lines = File.ReadAllLines(path);
        bool isChecked = lines.Length == 3 && lines[0] == Header;
        bool isUnchecked = lines.Length == 2 && lines[0] == UncheckedHeader;
        byte[] seed;
        try
        {
            seed = isChecked || isUnchecked ? Convert.FromBase64String(lines[1]) : [];
        }
        catch (FormatException)
        {
            seed = [];
        }
        try
        {
            if (seed.Length != NodeIdentity.SeedSize)
                throw new InvalidDataException($"{path} is not a Quid identity file; restore it from a backup, or start a new identity with 'quid run --new-identity', which archives the old state.");
            var identity = NodeIdentity.FromSeed(seed);
            if (isChecked && lines[2] != identity.Id.ToString())
            {
                identity.Dispose();
                throw new InvalidDataException($"{path} is damaged: its seed does not give the node id it records ({lines[2]}); restore it from a backup, or start a new identity with 'quid run --new-identity', which archives the old state.");
            }
            if (isUnchecked) AddCheck(path, seed, identity.Id);
            return identity;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    /// <summary>Rewrites a version 1 file with its check; where it cannot be written now, it is rewritten at a later start.</summary>
    private static void AddCheck(string path, byte[] seed, NodeId id)
    {
        try
        {
            Save(path, seed, id, replace: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    private static void Save(string path, byte[] seed, NodeId id, bool replace)
    {
        if (!replace && File.Exists(path)) throw new IOException($"{path} exists already; it is never replaced.");
        string temp = path + ".tmp";
        // A leftover temp file keeps its own mode when truncated: the creation mode below applies
        // only to a new file, so remove it and insist on creating one.
        File.Delete(temp);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(temp, options))
        {
            stream.Write(Encoding.ASCII.GetBytes($"{Header}\n{Convert.ToBase64String(seed)}\n{id}\n"));
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: replace);
    }
}
