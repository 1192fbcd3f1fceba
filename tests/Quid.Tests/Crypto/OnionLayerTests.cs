using System.Security.Cryptography;
using Quid.Crypto;

namespace Quid.Tests.Crypto;

public sealed class OnionLayerTests
{
    private const int BodySize = 2043;

    private static OnionLayer[] Layers(int hops, out OnionLayer[] hopSide)
    {
        var client = new OnionLayer[hops];
        hopSide = new OnionLayer[hops];
        for (int i = 0; i < hops; i++)
        {
            var material = RandomNumberGenerator.GetBytes(OnionLayer.KeyMaterialSize);
            client[i] = new OnionLayer(material);
            hopSide[i] = new OnionLayer(material);
        }
        return client;
    }

    private static byte[] Plain(int seed)
    {
        var body = new byte[BodySize];
        new Random(seed).NextBytes(body);
        return body;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(8)]
    public void Cells_cross_every_hop_both_ways_and_only_the_far_end_sees_the_plaintext(int hops)
    {
        var client = Layers(hops, out var hop);
        for (int n = 0; n < 5; n++)
        {
            var plain = Plain(n);
            var cell = (byte[])plain.Clone();
            for (int i = hops - 1; i >= 0; i--) client[i].SealForward(cell);
            for (int i = 0; i < hops; i++)
            {
                // What a hop receives shows nothing of the plaintext.
                Assert.False(cell.AsSpan(0, 64).SequenceEqual(plain.AsSpan(0, 64)));
                Assert.True(hop[i].OpenForward(cell));
            }
            Assert.Equal(plain.AsSpan(0, BodySize - OnionLayer.TagStackSize).ToArray(), cell.AsSpan(0, BodySize - OnionLayer.TagStackSize).ToArray());

            var back = Plain(100 + n);
            cell = (byte[])back.Clone();
            for (int i = hops - 1; i >= 0; i--) hop[i].SealBackward(cell);
            for (int i = 0; i < hops; i++) Assert.True(client[i].OpenBackward(cell));
            Assert.Equal(back.AsSpan(0, BodySize - OnionLayer.TagStackSize).ToArray(), cell.AsSpan(0, BodySize - OnionLayer.TagStackSize).ToArray());
        }
    }

    [Fact]
    public void A_flipped_bit_anywhere_fails_at_the_next_hop_that_reads_the_cell()
    {
        var random = new Random(5);
        for (int trial = 0; trial < 200; trial++)
        {
            var client = Layers(3, out var hop);
            var cell = Plain(trial);
            for (int i = 2; i >= 0; i--) client[i].SealForward(cell);
            Assert.True(hop[0].OpenForward(cell));
            // Hop 1 tampers with what it passes on: the ciphertext or a live tag. The hop whose
            // layer or tag it touched is the one that notices.
            int bit = random.Next((BodySize - OnionLayer.TagStackSize + 2 * OnionLayer.TagSize) * 8);
            cell[bit / 8] ^= (byte)(1 << (bit % 8));
            bool inThirdHopsTag = bit / 8 >= BodySize - OnionLayer.TagStackSize + OnionLayer.TagSize;
            Assert.Equal(inThirdHopsTag, hop[1].OpenForward(cell));
            if (inThirdHopsTag) Assert.False(hop[2].OpenForward(cell));
        }
    }

    [Fact]
    public void A_replayed_or_reordered_cell_fails()
    {
        var client = Layers(1, out var hop);
        var first = Plain(1);
        var second = Plain(2);
        client[0].SealForward(first);
        client[0].SealForward(second);
        Assert.False(hop[0].OpenForward(second)); // out of order
    }
}
