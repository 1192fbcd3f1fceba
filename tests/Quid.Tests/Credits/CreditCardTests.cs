using Quid.Credits;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Tests.Credits;

public sealed class CreditCardTests
{
    private static readonly NodeId Issuer = new([.. Enumerable.Range(1, NodeId.Size).Select(i => (byte)i)]);

    private static Credit Sample(byte seed, byte order = 3) =>
        new(Issuer, 2917, order, [.. Enumerable.Range(seed, CreditCodec.InputSize).Select(i => (byte)i)], [.. Enumerable.Range(seed + 1, CreditCodec.OutputSize).Select(i => (byte)i)]);

    [Fact]
    public void ACardReadsBackToItsCreditsEvenInsideOtherText()
    {
        var credits = new[] { Sample(1), Sample(50, 0), Sample(99, 30) };
        string card = CreditCard.Write(credits);
        Assert.StartsWith(CreditCard.Begin + "\n", card);
        var read = CreditCard.Read("Joe, here is your remailer's fuel:\r\n\r\n" + card.Replace("\n", "\r\n") + "\r\n-- \r\nsent from my phone");
        Assert.Equal(credits.Length, read.Count);
        for (int i = 0; i < credits.Length; i++)
        {
            Assert.Equal(credits[i].Issuer, read[i].Issuer);
            Assert.Equal(credits[i].Epoch, read[i].Epoch);
            Assert.Equal(credits[i].Order, read[i].Order);
            Assert.Equal(credits[i].Input, read[i].Input);
            Assert.Equal(credits[i].Output, read[i].Output);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("hello")]
    [InlineData("-----BEGIN QUID CREDITS-----\nissuer x\n")]
    [InlineData("-----BEGIN QUID CREDITS-----\n-----END QUID CREDITS-----\n")]
    [InlineData("-----BEGIN QUID CREDITS-----\nissuer AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYU\n-----END QUID CREDITS-----\n")]
    public void AnythingButACardIsRefusedWithATypedError(string text) =>
        Assert.Throws<WireException>(() => CreditCard.Read(text));

    [Fact]
    public void EachFieldIsCheckedAndACreditTwiceIsRefused()
    {
        string line = CreditCard.Write([Sample(1)]).Split('\n')[2];
        string Card(string credit) => CreditCard.Write([Sample(1)]).Replace(line, credit);
        var fields = line.Split(' ');
        Assert.Throws<WireException>(() => CreditCard.Read(Card($"credit -1 {fields[2]} {fields[3]} {fields[4]}")));
        Assert.Throws<WireException>(() => CreditCard.Read(Card($"credit {fields[1]} 31 {fields[3]} {fields[4]}")));
        Assert.Throws<WireException>(() => CreditCard.Read(Card($"credit {fields[1]} {fields[2]} {fields[3][..^1]} {fields[4]}")));
        Assert.Throws<WireException>(() => CreditCard.Read(Card($"credit {fields[1]} {fields[2]} {fields[3]}= {fields[4]}")));
        // Non-canonical: the last character's unused bits set.
        char last = fields[3][^1];
        Assert.Throws<WireException>(() => CreditCard.Read(Card($"credit {fields[1]} {fields[2]} {fields[3][..^1]}{(char)(last + 1)} {fields[4]}")));
        Assert.Throws<WireException>(() => CreditCard.Read(Card($"debit {fields[1]} {fields[2]} {fields[3]} {fields[4]}")));
        Assert.Throws<WireException>(() => CreditCard.Read(Card(line + "\n" + line)));
    }

    [Fact]
    public void AnOversizedCardIsRefusedBeforeItIsRead()
    {
        var refused = Assert.Throws<WireException>(() => CreditCard.Read(new string('a', CreditCard.MaxLength + 1)));
        Assert.Equal(WireError.Oversized, refused.Error);
        Assert.Throws<ArgumentException>(() => CreditCard.Write([.. Enumerable.Range(0, CreditCard.MaxCredits + 1).Select(i => Sample((byte)i))]));
    }

    [Fact]
    public void RandomTextNeverThrowsAnythingButAWireException()
    {
        var random = new Random(42);
        string card = CreditCard.Write([Sample(1), Sample(2, 5)]);
        for (int i = 0; i < 2000; i++)
        {
            var chars = card.ToCharArray();
            for (int flips = random.Next(1, 6); flips > 0; flips--) chars[random.Next(chars.Length)] = (char)random.Next(0, 128);
            string text = new string(chars)[..random.Next(chars.Length)];
            try
            {
                CreditCard.Read(text);
            }
            catch (WireException)
            {
                // Refused: fine.
            }
        }
    }
}
