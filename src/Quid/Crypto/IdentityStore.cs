using System.Security.Cryptography;
using System.Text;

namespace Quid.Crypto;

/// <summary>
/// Keeps the identity seed in <c>identity.key</c> in the data directory, readable by the owner
/// only, written atomically so a crash never leaves half a key.
/// </summary>
public static class IdentityStore
{
    public const string FileName = "identity.key";
    private const string Header = "quid identity v1";

    public static NodeIdentity LoadOrCreate(string dataDirectory, out bool created)
    {
        string path = Path.Combine(dataDirectory, FileName);
        if (File.Exists(path))
        {
            created = false;
            return Load(path);
        }
        var identity = NodeIdentity.Generate(out byte[] seed);
        try
        {
            Save(path, seed);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
        created = true;
        return identity;
    }

    private static NodeIdentity Load(string path)
    {
        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
                throw new InvalidDataException($"{path} is readable by other users; run 'chmod 600 {path}' (and consider the key compromised).");
        }
        string[] lines = File.ReadAllLines(path);
        byte[] seed;
        try
        {
            seed = lines.Length >= 2 && lines[0] == Header ? Convert.FromBase64String(lines[1]) : [];
        }
        catch (FormatException)
        {
            seed = [];
        }
        if (seed.Length != NodeIdentity.SeedSize)
            throw new InvalidDataException($"{path} is not a Quid identity file; move it away to create a new identity.");
        try
        {
            return NodeIdentity.FromSeed(seed);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    private static void Save(string path, byte[] seed)
    {
        string temp = path + ".tmp";
        // A leftover temp file keeps its own mode when truncated: the creation mode below applies
        // only to a new file, so remove it and insist on creating one.
        File.Delete(temp);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(temp, options))
        {
            stream.Write(Encoding.ASCII.GetBytes($"{Header}\n{Convert.ToBase64String(seed)}\n"));
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: false);
    }
}
