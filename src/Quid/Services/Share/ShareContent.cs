namespace Quid.Services.Share;

/// <summary>What a <see cref="ShareServer"/> serves: <see cref="SharedFiles"/> to read, or an <see cref="UploadInbox"/> to write to.</summary>
public abstract class ShareContent
{
    private protected ShareContent()
    {
    }

    /// <summary>
    /// The path with every symbolic link along it followed, as realpath(3) does; null if a part
    /// of it does not exist or the links loop. Confinement is judged on this, so a link inside a
    /// share may point anywhere inside it, and nowhere else.
    /// </summary>
    internal static string? RealPath(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        string root = System.IO.Path.GetPathRoot(path)!;
        var pending = new Stack<string>(Parts(path[root.Length..]).Reverse());
        string current = root;
        int links = 0;
        while (pending.TryPop(out var part))
        {
            if (part == ".") continue;
            if (part == "..")
            {
                current = System.IO.Path.GetDirectoryName(current) ?? current;
                continue;
            }
            string next = System.IO.Path.Join(current, part);
            var info = new FileInfo(next);
            if (info.LinkTarget is { } target)
            {
                // As the kernel does: a chain of links longer than this is a loop.
                if (++links > 40) return null;
                foreach (var targetPart in Parts(target).Reverse()) pending.Push(targetPart);
                if (System.IO.Path.IsPathRooted(target)) current = System.IO.Path.GetPathRoot(target)!;
                continue;
            }
            if (!info.Exists && !Directory.Exists(next)) return null;
            current = next;
        }
        return current;
    }

    /// <summary>True if <paramref name="path"/> is <paramref name="root"/> or inside it; both are real paths.</summary>
    internal static bool IsWithin(string path, string root) =>
        path == root || path.StartsWith(System.IO.Path.EndsInDirectorySeparator(root) ? root : root + System.IO.Path.DirectorySeparatorChar, StringComparison.Ordinal);

    private static string[] Parts(string path) =>
        path.Split([System.IO.Path.DirectorySeparatorChar, System.IO.Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);
}

internal enum ShareEntryKind
{
    /// <summary>The listing of several shared paths, which is no folder on disk.</summary>
    Top,
    Folder,
    File,
}

/// <param name="RealPath">Where it is on disk, links followed; empty for <see cref="ShareEntryKind.Top"/>.</param>
/// <param name="Root">The real path of the shared root it lies in, which its links must not leave.</param>
internal sealed record ShareEntry(ShareEntryKind Kind, string RealPath, string Root);

internal sealed record ListingEntry(string Name, bool IsFolder, long Length, DateTimeOffset Modified);
