namespace Quid.Circuits;

/// <summary>
/// How many Data cells a circuit's sender may have unacknowledged: Tor's TOR_VEGAS congestion
/// control (proposal 324, §3.3), in Quid's cells. Each circuit Sendme acknowledges
/// <see cref="CircuitFlow.Increment"/> cells and gives a round trip, from the sending of the cell
/// that completed them; the window is then compared with what the path carries at its fastest
/// round trip, and the difference, the cells standing in queues along the way, is held between
/// <see cref="Alpha"/> and <see cref="Beta"/>. A fixed window of 1024 cells (2 MiB) put up to 40 s
/// of one download ahead of everything else on a 420 kbit/s path (TESTBED.md, stop 46).
/// Sans-IO: it is given round trips and answers with a window.
/// </summary>
internal sealed class CongestionWindow
{
    /// <summary>Below two Sendmes' worth a sender could wait on a Sendme the receiver never owes it.</summary>
    public const int Min = 2 * CircuitFlow.Increment;
    /// <summary>Tor starts at as little as one Sendme's worth; slow start doubles it each round trip.</summary>
    public const int Initial = Min;
    /// <summary>What a relay's queue is bounded by, and a receiver's window: never more in flight.</summary>
    public const int Max = CircuitFlow.Window;

    // Tor's thresholds for exit circuits are 3, 4, 3 and 5 "outbufs" of 62 cells of 498 bytes
    // of data; 16 of our cells (1,910 bytes of data each) carry about as much as 62 of Tor's.
    private const int Outbuf = 16;
    public const int Alpha = 3 * Outbuf;
    public const int Beta = 4 * Outbuf;
    public const int Gamma = 3 * Outbuf;
    public const int Delta = 5 * Outbuf;

    /// <summary>
    /// Queues that add less than this to the round trip are not congestion (our addition to Vegas):
    /// on loopback and fast links a few hundred cells drain in milliseconds, and holding them to
    /// <see cref="Beta"/> would cost throughput that no one's latency gains from.
    /// </summary>
    public static readonly TimeSpan QueueFloor = TimeSpan.FromMilliseconds(20);

    private const int MaxSmoothing = 10;

    private double _rtt;
    private double _minRtt = double.MaxValue;
    private bool _full;

    public int Cells { get; private set; } = Initial;
    public bool SlowStart { get; private set; } = true;
    /// <summary>The smoothed round trip, zero before the first Sendme.</summary>
    public TimeSpan Rtt => TimeSpan.FromTicks((long)_rtt);
    public TimeSpan MinRtt => _minRtt == double.MaxValue ? TimeSpan.Zero : TimeSpan.FromTicks((long)_minRtt);

    /// <summary>The sender has <paramref name="inFlight"/> cells unacknowledged: noted when that is close to the window, since only a window in use may grow.</summary>
    public void Sent(int inFlight)
    {
        if (inFlight >= Cells - CircuitFlow.Increment) _full = true;
    }

    /// <summary>A circuit Sendme came back <paramref name="rtt"/> after the cell that completed it was sent.</summary>
    public void Acknowledged(TimeSpan rtt)
    {
        // N-EWMA over about half a window's Sendmes (Tor's ewma_cwnd_pct 50, at most 10).
        int n = Math.Clamp(Cells / CircuitFlow.Increment / 2, 2, MaxSmoothing);
        double sample = Math.Max(rtt.Ticks, 1);
        _rtt = _rtt == 0 ? sample : (2 * sample + (n - 1) * _rtt) / (n + 1);
        _minRtt = Math.Min(_minRtt, _rtt);

        // What the path carries at its fastest round trip, and so how many cells stand in its queues.
        double bdp = Cells * _minRtt / _rtt;
        double queued = _rtt - _minRtt < QueueFloor.Ticks ? 0 : Cells - bdp;
        bool full = _full;
        _full = false;

        if (SlowStart)
        {
            if (queued < Gamma)
            {
                if (full) Cells += CircuitFlow.Increment;
            }
            else
            {
                Cells = (int)bdp + Gamma;
                SlowStart = false;
            }
        }
        else if (queued > Delta) Cells = (int)bdp + Delta - 1;
        else if (queued > Beta) Cells--;
        else if (queued < Alpha && full) Cells++;
        Cells = Math.Clamp(Cells, Min, Max);
    }
}
