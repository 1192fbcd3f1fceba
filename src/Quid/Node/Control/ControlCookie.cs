using System.Security.Cryptography;

namespace Quid.Node.Control;

/// <summary>
/// The control API's credential, as Tor's control_auth_cookie: 32 random bytes in a file in the
/// data directory that only the node's user can read, written anew at every start so an old copy
/// stops working. A client proves it may read the file by sending the bytes, hex-encoded, as a
/// bearer token. Beside it, the running node writes the address its control API listens on.
/// </summary>
public static class ControlCookie
{
    public const string FileName = "control_auth_cookie";
    public const string EndPointFileName = "control_port";
    public const int Size = 32;

    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    /// <summary>Writes a new cookie, readable by the owner only, and returns it.</summary>
    public static byte[] Create(string dataDirectory)
    {
        var cookie = RandomNumberGenerator.GetBytes(Size);
        WriteOwnerOnly(PathIn(dataDirectory), cookie);
        return cookie;
    }

    public static byte[] Read(string dataDirectory)
    {
        var cookie = File.ReadAllBytes(PathIn(dataDirectory));
        return cookie.Length == Size ? cookie : throw new InvalidDataException($"{PathIn(dataDirectory)} is not a control cookie ({cookie.Length} bytes, not {Size}).");
    }

    public static string Hex(byte[] cookie) => Convert.ToHexStringLower(cookie);

    /// <summary>Replaces <paramref name="path"/> with a file created owner-only: never a moment when others could read it.</summary>
    internal static void WriteOwnerOnly(string path, byte[] content)
    {
        File.Delete(path);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var file = new FileStream(path, options);
        file.Write(content);
    }
}
