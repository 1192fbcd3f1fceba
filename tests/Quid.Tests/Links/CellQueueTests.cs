using Quid.Links;
using Quid.Wire;

namespace Quid.Tests.Links;

public class CellQueueTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    /// <summary>A cell whose bytes say which cell it is.</summary>
    private static byte[] NumberedCell(int n)
    {
        byte[] cell = new byte[Cell.Size];
        Cell.WriteHeader(cell, (uint)n + 1, CellCommand.Relay);
        for (int i = Cell.HeaderSize; i < Cell.Size; i++) cell[i] = (byte)(n * 31 + i);
        return cell;
    }

    private static List<byte[]> DrainCells(CellQueue queue, List<int>? chunkSizes = null)
    {
        var cells = new List<byte[]>();
        while (queue.TryDequeue() is { } chunk)
        {
            Assert.InRange(chunk.Cells, 1, CellQueue.CellsPerChunk);
            Assert.Equal(chunk.Cells * Cell.Size, chunk.Data.Length);
            chunkSizes?.Add(chunk.Cells);
            for (int i = 0; i < chunk.Cells; i++) cells.Add(chunk.Data.Slice(i * Cell.Size, Cell.Size).ToArray());
            CellQueue.Return(chunk);
        }
        return cells;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(30)]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(62)]
    [InlineData(100)]
    public void CellsComeOutInOrderInChunksOfAtMost31(int count)
    {
        var queue = new CellQueue();
        for (int n = 0; n < count; n++) Assert.True(queue.Enqueue(NumberedCell(n)));
        var sizes = new List<int>();
        var cells = DrainCells(queue, sizes);
        Assert.Equal(count, cells.Count);
        for (int n = 0; n < count; n++) Assert.Equal(NumberedCell(n), cells[n]);
        // Full chunks first, the partly filled tail last.
        Assert.Equal(Enumerable.Repeat(31, count / 31).Concat(count % 31 == 0 ? [] : [count % 31]), sizes);
        Assert.Null(queue.TryDequeue());
    }

    [Fact]
    public void UrgentCellsGoOutBeforeTheBulkAndEachLaneKeepsItsOrder()
    {
        var queue = new CellQueue();
        // Forty bulk cells, then two urgent ones among six more of the bulk.
        for (int n = 0; n < 40; n++) queue.Enqueue(NumberedCell(n));
        for (int n = 40; n < 48; n++) queue.Enqueue(NumberedCell(n), urgent: n % 3 == 0);
        Assert.Equal(48L * Cell.Size, queue.QueuedBytes);

        var sizes = new List<int>();
        var cells = DrainCells(queue, sizes);
        int[] expected = [42, 45, 0, .. Enumerable.Range(1, 39), 40, 41, 43, 44, 46, 47];
        Assert.Equal(expected.Select(NumberedCell), cells);
        // The urgent lane in a chunk of its own, then the bulk's full chunk and its tail.
        Assert.Equal([2, 31, 15], sizes);
        Assert.Equal(0, queue.QueuedBytes);
    }

    [Fact]
    public void TakingThePartTailSealsItAndLaterCellsStartANewChunk()
    {
        var queue = new CellQueue();
        for (int n = 0; n < 10; n++) queue.Enqueue(NumberedCell(n));
        Assert.Equal(10, DrainCells(queue).Count);
        for (int n = 10; n < 15; n++) queue.Enqueue(NumberedCell(n));
        var sizes = new List<int>();
        var cells = DrainCells(queue, sizes);
        Assert.Equal([5], sizes);
        Assert.Equal(NumberedCell(10), cells[0]);
    }

    [Fact]
    public void QueuedBytesCountsCellsInAndChunksOut()
    {
        var queue = new CellQueue();
        Assert.Equal(0, queue.QueuedBytes);
        for (int n = 0; n < 40; n++)
        {
            queue.Enqueue(NumberedCell(n));
            Assert.Equal((n + 1) * (long)Cell.Size, queue.QueuedBytes);
        }
        var chunk = queue.TryDequeue()!;
        Assert.Equal(31, chunk.Cells);
        Assert.Equal(9L * Cell.Size, queue.QueuedBytes);
        CellQueue.Return(chunk);
        chunk = queue.TryDequeue()!;
        Assert.Equal(9, chunk.Cells);
        Assert.Equal(0, queue.QueuedBytes);
        CellQueue.Return(chunk);
    }

    [Fact]
    public void CloseDropsEverythingAndRefusesMore()
    {
        var queue = new CellQueue();
        for (int n = 0; n < 50; n++) queue.Enqueue(NumberedCell(n));
        Assert.False(queue.IsClosed);
        queue.Close();
        Assert.True(queue.IsClosed);
        Assert.Equal(0, queue.QueuedBytes);
        Assert.Null(queue.TryDequeue());
        Assert.False(queue.Enqueue(NumberedCell(99)));
        Assert.Equal(0, queue.QueuedBytes);
        Assert.Null(queue.TryDequeue());
        Assert.True(queue.WaitAsync().IsCompleted);
        queue.Close();
    }

    [Fact]
    public async Task WaitAsyncCompletesWhenACellArrives()
    {
        var queue = new CellQueue();
        var wait = queue.WaitAsync();
        Assert.False(wait.IsCompleted);
        Assert.Same(wait, queue.WaitAsync());
        queue.Enqueue(NumberedCell(0));
        await wait.WaitAsync(Patience);
        Assert.True(queue.WaitAsync().IsCompleted);
        Assert.Single(DrainCells(queue));
        Assert.False(queue.WaitAsync().IsCompleted);
    }

    [Fact]
    public async Task WaitAsyncCompletesOnCloseAndOnNudge()
    {
        var queue = new CellQueue();
        var nudged = queue.WaitAsync();
        queue.Nudge();
        await nudged.WaitAsync(Patience);
        Assert.Null(queue.TryDequeue());

        var closed = queue.WaitAsync();
        Assert.False(closed.IsCompleted);
        queue.Close();
        await closed.WaitAsync(Patience);
    }

    [Fact]
    public async Task ConcurrentProducersLoseNothingAndKeepTheirOwnOrder()
    {
        const int Producers = 4, PerProducer = 500;
        var queue = new CellQueue();
        var consumed = new List<byte[]>();
        var consumer = Task.Run(async () =>
        {
            while (consumed.Count < Producers * PerProducer)
            {
                await queue.WaitAsync();
                consumed.AddRange(DrainCells(queue));
            }
        });
        var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(() =>
        {
            for (int i = 0; i < PerProducer; i++)
            {
                byte[] cell = new byte[Cell.Size];
                cell[0] = (byte)p;
                BitConverter.TryWriteBytes(cell.AsSpan(1), i);
                Assert.True(queue.Enqueue(cell));
            }
        })).ToArray();
        await Task.WhenAll(producers).WaitAsync(Patience);
        await consumer.WaitAsync(Patience);

        Assert.Equal(Producers * PerProducer, consumed.Count);
        for (int p = 0; p < Producers; p++)
        {
            var sequence = consumed.Where(c => c[0] == p).Select(c => BitConverter.ToInt32(c, 1)).ToArray();
            Assert.Equal(Enumerable.Range(0, PerProducer), sequence);
        }
        Assert.Equal(0, queue.QueuedBytes);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10)]
    [InlineData(Cell.Size - 1)]
    [InlineData(Cell.Size + 1)]
    public void ACellOfTheWrongSizeIsRefused(int size)
    {
        var queue = new CellQueue();
        // Fill a pooled buffer with one cell's bytes and hand it back, as the writer does.
        queue.Enqueue(NumberedCell(7));
        CellQueue.Return(queue.TryDequeue()!);
        // A short cell must not go out padded with whatever the pooled buffer held before.
        Assert.Throws<ArgumentException>(() => queue.Enqueue(new byte[size]));
        Assert.Equal(0, queue.QueuedBytes);
        Assert.Null(queue.TryDequeue());
    }
}
