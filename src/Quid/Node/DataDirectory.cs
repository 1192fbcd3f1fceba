using System.Globalization;
using Quid.Crypto;

namespace Quid.Node;

/// <summary>
/// The data directory's state keeps the node from starting: a damaged or missing key, a ledger
/// that belongs to another identity or is damaged. The message is one line naming the file and the fix.
/// </summary>
public sealed class NodeStateException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The node's one data directory: identity.key and quid.db belong together, and neither is ever
/// replaced behind the user's back. A new identity is only ever made in a directory with no
/// state, or after <see cref="Archive"/> has moved the old state aside.
/// </summary>
public static class DataDirectory
{
    public const string ArchiveFolder = "archive";
    /// <summary>The fix named wherever state is lost or does not fit: the flag of <c>quid run</c> that calls <see cref="Archive"/>.</summary>
    public const string NewIdentityFix = "start a new identity with 'quid run --new-identity', which archives the old state";
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// Creates the directory, owner-only, when it does not exist. One that exists keeps its mode: it
    /// may be shared (a 1777 /tmp loses its sticky bit to a chmod). Returns a warning when others
    /// may write in it, else null.
    /// </summary>
    public static string? Prepare(string path)
    {
        if (!Directory.Exists(path))
        {
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(path);
            else Directory.CreateDirectory(path, OwnerOnly);
            return null;
        }
        if (OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) == 0) return null;
        return $"The data directory {path} is writable by other users, who could put their own identity.key or quid.db there before this node makes its own; use a directory only you can write (chmod 700 it, or choose another --data-dir).";
    }

    /// <summary>
    /// The identity in the directory, or a new one when the directory holds no state yet. A key
    /// file that is damaged, or missing beside a ledger, is a <see cref="NodeStateException"/>.
    /// </summary>
    public static NodeIdentity OpenIdentity(string path, out bool created)
    {
        created = false;
        if (IdentityStore.ExistsIn(path))
        {
            try
            {
                return IdentityStore.Load(path);
            }
            catch (InvalidDataException e)
            {
                throw new NodeStateException(e.Message, e);
            }
        }
        string database = Path.Combine(path, NodeDatabase.FileName);
        if (File.Exists(database))
        {
            string owner = NodeDatabase.ReadOwner(path) is { } id ? $"node {id}" : "a node";
            throw new NodeStateException($"{IdentityStore.PathIn(path)} is missing, but {database} holds the ledger of {owner}: restore its key from a backup, or {NewIdentityFix}.");
        }
        created = true;
        return IdentityStore.Create(path);
    }

    /// <summary>
    /// Moves identity.key and quid.db (with its -wal and -shm) into <c>archive/&lt;UTC time&gt;/</c>
    /// in the directory, so that the next start makes a new identity. Nothing is deleted. Returns
    /// the folder, or null when there was nothing to archive.
    /// </summary>
    public static string? Archive(string path, DateTimeOffset now)
    {
        // The key goes first: an archive cut short leaves a ledger without a key, which stops the
        // next start and asks for this again, never a key with an empty ledger.
        string[] names = [IdentityStore.FileName, NodeDatabase.FileName, NodeDatabase.FileName + "-wal", NodeDatabase.FileName + "-shm"];
        var present = names.Where(n => File.Exists(Path.Combine(path, n))).ToList();
        if (present.Count == 0) return null;
        string stamp = now.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        string folder = Path.Combine(path, ArchiveFolder, stamp);
        for (int n = 2; Directory.Exists(folder); n++) folder = Path.Combine(path, ArchiveFolder, $"{stamp}-{n}");
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(folder);
        else Directory.CreateDirectory(folder, OwnerOnly);
        foreach (var name in present) File.Move(Path.Combine(path, name), Path.Combine(folder, name));
        return folder;
    }
}
