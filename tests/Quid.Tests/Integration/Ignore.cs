using Quid.Links;

namespace Quid.Tests.Integration;

/// <summary>Takes whatever a test's own hand-made link receives and drops it: the test only sends.</summary>
internal sealed class Ignore : ICircuitCells, IControlMessages
{
    private static readonly Ignore Instance = new();

    public static void Start(Link link) => link.Start(Instance, Instance);

    public void OnCell(ICellPort link, Span<byte> cell) { }
    public void OnClosed(ICellPort link) { }
    public void OnControl(Link link, byte[] payload) { }
    public void OnClosed(Link link, Exception? reason) { }
}
