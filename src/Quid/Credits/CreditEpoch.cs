namespace Quid.Credits;

/// <summary>
/// Issuer key epochs (PROTOCOL §10.2): a week each, counted from the Unix epoch. Credits issued
/// in an epoch are good to the end of the next, so a credit lasts one to two weeks, and the issuer
/// takes them for a day of grace after that; then it forgets the epoch's keys and spent set.
/// </summary>
public static class CreditEpoch
{
    public static readonly TimeSpan Length = TimeSpan.FromDays(7);
    public static readonly TimeSpan Grace = TimeSpan.FromDays(1);

    public static ulong Of(DateTimeOffset time) => (ulong)Math.Max(0, time.ToUnixTimeSeconds() / (long)Length.TotalSeconds);

    public static DateTimeOffset Start(ulong epoch) => DateTimeOffset.FromUnixTimeSeconds((long)epoch * (long)Length.TotalSeconds);

    /// <summary>When credits of <paramref name="epoch"/> expire, as their holders are told: the end of the next epoch.</summary>
    public static DateTimeOffset Expires(ulong epoch) => Start(epoch + 2);

    /// <summary>Whether the issuer still takes credits of <paramref name="epoch"/> at <paramref name="now"/>.</summary>
    public static bool Redeemable(ulong epoch, DateTimeOffset now) => epoch <= Of(now) && now < Expires(epoch) + Grace;

    /// <summary>The oldest epoch whose credits are still taken at <paramref name="now"/>.</summary>
    public static ulong OldestRedeemable(DateTimeOffset now)
    {
        ulong current = Of(now);
        ulong oldest = current >= 2 ? current - 2 : 0;
        return Redeemable(oldest, now) ? oldest : oldest + 1;
    }
}
