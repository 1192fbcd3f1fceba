namespace Quid.Proxy.Socks;

public enum SocksAuthKind
{
    None,
    /// <summary>SOCKS5 username/password (RFC 1929).</summary>
    UsernamePassword,
    /// <summary>A non-empty SOCKS4 USERID.</summary>
    Socks4UserId,
}

/// <summary>
/// The credentials a client presented. They authenticate nothing: like Tor's IsolateSOCKSAuth they
/// only select which streams may share a circuit, so equality is by value and the bytes are copied
/// so a key cannot change after it is stored.
/// </summary>
public sealed class SocksAuth : IEquatable<SocksAuth>
{
    private SocksAuth(SocksAuthKind kind, byte[] username, byte[] password)
    {
        Kind = kind;
        Username = username;
        Password = password;
    }

    public static SocksAuth None { get; } = new(SocksAuthKind.None, [], []);

    public SocksAuthKind Kind { get; }

    /// <summary>The SOCKS5 username or the SOCKS4 USERID; empty for <see cref="SocksAuthKind.None"/>.</summary>
    public ReadOnlyMemory<byte> Username { get; }

    /// <summary>The SOCKS5 password (may be empty); empty for other kinds.</summary>
    public ReadOnlyMemory<byte> Password { get; }

    public static SocksAuth FromUsernamePassword(ReadOnlySpan<byte> username, ReadOnlySpan<byte> password) =>
        new(SocksAuthKind.UsernamePassword, username.ToArray(), password.ToArray());

    /// <summary>An empty USERID is what SOCKS4 clients send when they have none, so it means <see cref="None"/>.</summary>
    public static SocksAuth FromSocks4UserId(ReadOnlySpan<byte> userId) =>
        userId.IsEmpty ? None : new(SocksAuthKind.Socks4UserId, userId.ToArray(), []);

    public bool Equals(SocksAuth? other) =>
        other is not null
        && Kind == other.Kind
        && Username.Span.SequenceEqual(other.Username.Span)
        && Password.Span.SequenceEqual(other.Password.Span);

    public override bool Equals(object? obj) => Equals(obj as SocksAuth);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Kind);
        hash.AddBytes(Username.Span);
        // Separates ("ab", "") from ("a", "b"); collisions would only cost speed, but it is free.
        hash.Add(Username.Length);
        hash.AddBytes(Password.Span);
        return hash.ToHashCode();
    }

    /// <summary>Names the kind only: credentials may be secrets the user reuses elsewhere, so they stay out of logs.</summary>
    public override string ToString() => Kind.ToString();
}
