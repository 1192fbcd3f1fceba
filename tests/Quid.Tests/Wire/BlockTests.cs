using Quid.Wire;

namespace Quid.Tests.Wire;

public class BlockTests
{
    [Fact]
    public void EverySixteenTimesAPowerOfTwoUpToTheMaxOrderIsABlock()
    {
        for (int k = 0; k <= Block.MaxOrder; k++)
        {
            long kbps = 16L << k;
            Assert.True(Block.TryFromKbps(kbps, out var block), $"{kbps}");
            Assert.Equal(k, block.Order);
            Assert.Equal(kbps, block.Kbps);
            Assert.Equal(kbps * 125, block.BytesPerSecond);
            Assert.Equal(block, Block.FromKbps(kbps));
            Assert.Equal($"{kbps} kbps", block.ToString());
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-16)]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(15)]
    [InlineData(17)]
    [InlineData(24)]
    [InlineData(48)]
    [InlineData(96)]
    [InlineData(1000)]
    [InlineData(1024 + 16)]
    [InlineData(16L << (Block.MaxOrder + 1))]
    [InlineData(long.MinValue)]
    [InlineData(long.MaxValue)]
    public void OtherAmountsAreNotBlocks(long kbps)
    {
        Assert.False(Block.TryFromKbps(kbps, out _));
        var error = Assert.Throws<ArgumentException>(() => Block.FromKbps(kbps));
        Assert.Contains("16·2^k", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BlocksAreOrderedBySize()
    {
        Block b16 = Block.FromKbps(16), b32 = Block.FromKbps(32), b512 = Block.FromKbps(512);
        Assert.True(b16 < b32 && b32 < b512);
        Assert.True(b512 > b32 && b32 > b16);
        Block other16 = Block.FromKbps(16);
        Assert.True(b16 <= other16 && b16 >= other16 && b16 <= b32 && b32 >= b16);
        Assert.False(b32 < b16 || b32 <= b16);
        Assert.True(b16.CompareTo(b32) < 0 && b32.CompareTo(b32) == 0 && b512.CompareTo(b32) > 0);
        Assert.Equal([b16, b32, b512], new[] { b512, b16, b32 }.Order());
        Assert.Equal(b512, new[] { b32, b512, b16 }.Max());
    }

    [Fact]
    public void TheWireByteIsTheOrderAnd0xFFIsNone()
    {
        Assert.Null(Block.Decode(Block.NoneByte));
        Assert.Equal(Block.NoneByte, Block.Encode(null));
        for (byte order = 0; order <= Block.MaxOrder; order++)
        {
            Assert.Equal(new Block(order), Block.Decode(order));
            Assert.Equal(order, Block.Encode(new Block(order)));
        }
    }

    [Fact]
    public void AnOrderAboveTheMaxIsRefused()
    {
        for (int value = Block.MaxOrder + 1; value < Block.NoneByte; value++)
        {
            var error = Assert.Throws<WireException>(() => Block.Decode((byte)value));
            Assert.Equal(WireError.BadField, error.Error);
        }
    }
}
