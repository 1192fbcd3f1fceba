using System.Security.Cryptography;

namespace Quid.Crypto;

/// <summary>
/// Random bytes for the parts of a cell that must look like ciphertext but carry nothing: the
/// tag stack's empty slots. They come from the operating system's CSPRNG like any random
/// bytes, but a buffer at a time per thread: asking for 16 bytes per cell costs a system call
/// and more than the cell's encryption.
/// </summary>
public static class Filler
{
    private const int BufferSize = 64 * 1024;

    [ThreadStatic] private static byte[]? t_buffer;
    [ThreadStatic] private static int t_used;

    public static void Fill(Span<byte> destination)
    {
        var buffer = t_buffer ??= new byte[BufferSize];
        if (t_used == 0 || t_used + destination.Length > BufferSize)
        {
            RandomNumberGenerator.Fill(buffer);
            t_used = 0;
        }
        buffer.AsSpan(t_used, destination.Length).CopyTo(destination);
        t_used += destination.Length;
    }
}
