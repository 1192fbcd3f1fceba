using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Quid.Links;

/// <summary>The process's limit on open descriptors, and the last few below it that accepted connections never take.</summary>
public static partial class Descriptors
{
    /// <summary>
    /// Descriptors below the limit left to everything but accepted connections. The runtime needs a
    /// few now and then, and fails fatally without them: a node whose proxies were flooded up to its
    /// limit died printing "Out of memory." when a thread pool thread could not start (the runtime
    /// opens a pipe for each new thread). Links dialed out and exit sockets have budgets of their own.
    /// </summary>
    public const int Reserve = 32;

    /// <summary>This process's soft limit on open descriptors (RLIMIT_NOFILE); null where it cannot be read.</summary>
    public static long? Limit()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD()) return null;
        try
        {
            // RLIMIT_NOFILE is 7 on Linux and 8 on the BSDs; rlim_t is 64 bits on every 64-bit platform.
            int resource = OperatingSystem.IsLinux() ? 7 : 8;
            if (Environment.Is64BitProcess && GetRLimit(resource, out var limit) == 0) return (long)Math.Min(limit.Soft, long.MaxValue);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc to ask: the caller falls back to a fixed budget.
        }
        return null;
    }

    /// <summary>
    /// Whether an accepted socket took one of the <see cref="Reserve"/>d descriptors. The kernel hands
    /// out the lowest free descriptor (POSIX asks it to), so every one below this socket's is taken,
    /// and one at or above the limit less the reserve leaves fewer than the reserve free. The limit
    /// is read afresh each time, as an operator may change it while the node runs (prlimit).
    /// </summary>
    public static bool InReserve(Socket accepted) =>
        Limit() is long limit && accepted.SafeHandle.DangerousGetHandle() >= limit - Reserve;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Soft;
        public ulong Hard;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit")]
    private static partial int GetRLimit(int resource, out RLimit limit);
}
