namespace Quid.Circuits;

/// <summary>
/// Per-stream flow control, counted in Data cells: a sender may have <see cref="Window"/> cells
/// unacknowledged; the receiver returns a stream Sendme for every <see cref="Increment"/> cells it
/// has written to its socket. A slow reader therefore holds at most one window per stream. At 256
/// cells a single download on loopback waited on Sendmes: 512 (about 960 KiB) carries a quarter
/// more through 3 hops and through a rendezvous (docs/BENCHMARKS.md, stop 41). A relay's memory
/// is bounded by <see cref="CircuitFlow.Window"/>, not by this.
/// </summary>
public static class StreamFlow
{
    public const int Window = 512;
    public const int Increment = 64;
}

/// <summary>
/// Per-circuit flow control: at most <see cref="Window"/> Data cells of all streams in flight
/// each way; the receiving end returns a circuit Sendme (stream id 0) for every
/// <see cref="Increment"/> received. So a relay never holds more than one window of a circuit's
/// cells in each direction, whatever the endpoints do. A sender keeps to less: its
/// <see cref="CongestionWindow"/>, which each Sendme's round trip sets, and which needs Sendmes
/// often enough to measure: every 32 cells (61 KiB; Tor's 31 cells carry 15 KiB). Every 16
/// held less queued on slow links, but cost 7% of a 3-hop stream's throughput on loopback
/// (measured before Sendmes went out batched with the read; BENCHMARKS.md, stop 46).
/// </summary>
public static class CircuitFlow
{
    public const int Window = 1024;
    public const int Increment = 32;
}
