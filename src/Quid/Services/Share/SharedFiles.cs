namespace Quid.Services.Share;

/// <summary>
/// Files and folders shared read-only. One folder is the share's root itself; anything else
/// (several paths, or one file) appears as top-level entries under their own names, so
/// <c>curl -O</c> saves a file under its name. Requests are confined to the shared roots: a
/// symbolic link is followed only while it stays inside the root it lies in, and hidden files
/// and folders (dot names) are neither listed nor served.
/// </summary>
public sealed class SharedFiles : ShareContent
{
    private readonly string? _folder;
    private readonly SortedDictionary<string, string> _roots = new(StringComparer.Ordinal);

    /// <exception cref="ArgumentException">No paths, or a hidden one (a dot name), which would never be served.</exception>
    /// <exception cref="FileNotFoundException">A path that does not exist.</exception>
    public SharedFiles(IEnumerable<string> paths)
    {
        var given = paths.ToList();
        if (given.Count == 0) throw new ArgumentException("Nothing to share: name at least one file or folder.", nameof(paths));
        foreach (var path in given)
        {
            string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
            string real = RealPath(full) ?? throw new FileNotFoundException($"{path} does not exist.", path);
            if (given.Count == 1 && Directory.Exists(real))
            {
                _folder = real;
                return;
            }
            string name = Path.GetFileName(full) is { Length: > 0 } last ? last : "root";
            if (name.StartsWith('.')) throw new ArgumentException($"{path} is hidden (a dot name); hidden files are never served.", nameof(paths));
            // Two roots with one name (a/photos and b/photos) both stay reachable.
            string unique = name;
            for (int n = 2; _roots.ContainsKey(unique); n++) unique = $"{name} ({n})";
            _roots.Add(unique, real);
        }
    }

    /// <summary>The names at the top of the share, each a path of its own (<c>/name</c>); empty when one folder is the root.</summary>
    public IReadOnlyCollection<string> TopLevelNames => _folder is null ? _roots.Keys : [];

    /// <summary>What <paramref name="segments"/> names, or null if nothing that may be served.</summary>
    internal ShareEntry? Find(IReadOnlyList<string> segments)
    {
        if (segments.Any(s => s.StartsWith('.') || s.AsSpan().IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)) return null;
        string? root = _folder;
        IEnumerable<string> rest = segments;
        if (root is null)
        {
            if (segments.Count == 0) return new ShareEntry(ShareEntryKind.Top, "", "");
            if (!_roots.TryGetValue(segments[0], out root)) return null;
            rest = segments.Skip(1);
        }
        try
        {
            string? real = RealPath(Path.Join([root, .. rest]));
            if (real is null || !IsWithin(real, root)) return null;
            if (Directory.Exists(real)) return new ShareEntry(ShareEntryKind.Folder, real, root);
            return File.Exists(real) ? new ShareEntry(ShareEntryKind.File, real, root) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A name too long for the file system, a folder that may not be searched: nothing that can be served.
            return null;
        }
    }

    /// <summary>What <paramref name="folder"/> holds that may be served: no hidden names, no links out of its root.</summary>
    /// <exception cref="UnauthorizedAccessException">The folder may not be read.</exception>
    /// <exception cref="IOException">The folder is gone.</exception>
    internal List<ListingEntry> List(ShareEntry folder)
    {
        if (folder.Kind == ShareEntryKind.Top) return [.. _roots.Select(r => Describe(r.Key, r.Value)).OfType<ListingEntry>()];
        var entries = new List<ListingEntry>();
        foreach (var info in new DirectoryInfo(folder.RealPath).EnumerateFileSystemInfos())
        {
            if (info.Name.StartsWith('.')) continue;
            string path = info.FullName;
            if (info.LinkTarget is not null)
            {
                if (RealPath(path) is not { } real || !IsWithin(real, folder.Root)) continue;
                path = real;
            }
            if (Describe(info.Name, path) is { } entry) entries.Add(entry);
        }
        return entries;
    }

    private static ListingEntry? Describe(string name, string realPath)
    {
        try
        {
            if (Directory.Exists(realPath)) return new ListingEntry(name, true, 0, Directory.GetLastWriteTimeUtc(realPath));
            var file = new FileInfo(realPath);
            return file.Exists ? new ListingEntry(name, false, file.Length, file.LastWriteTimeUtc) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Gone or unreadable since it was listed: it is left out, as it could not be served.
            return null;
        }
    }
}
