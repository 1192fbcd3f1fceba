using Microsoft.AspNetCore.Http;
using Quid.Credits;
using Quid.Crypto;

namespace Quid.Node.Control;

/// <summary>
/// Credits: <c>GET /api/credits</c> (balances and the issuer's figures), <c>POST /api/credits/give</c>
/// ({issuer, amount}: a card, its credits out of the wallet) and <c>POST /api/credits/take</c>
/// ({card}: its credits exchanged at their issuer, into the wallet).
/// </summary>
public sealed partial class ControlServer
{
    private const string CreditsPath = "/api/credits";
    private const string GivePath = CreditsPath + "/give";
    private const string TakePath = CreditsPath + "/take";

    private async Task CreditsAsync(HttpContext context, string path)
    {
        if (path == CreditsPath)
        {
            await JsonAsync(context, StatusCodes.Status200OK, Report(await _node.CreditStatusAsync().ConfigureAwait(false)), ControlJson.Default.CreditReport).ConfigureAwait(false);
            return;
        }
        try
        {
            if (path == GivePath)
            {
                if (await ReadBodyAsync(context, ControlJson.Default.CreditGiveRequest, "{\"issuer\": \"NODE-ID\", \"amount\": 64}").ConfigureAwait(false) is not { } give) return;
                if (!NodeId.TryParse(give.Issuer, out var issuer))
                {
                    await ErrorAsync(context.Response, StatusCodes.Status400BadRequest, $"'{give.Issuer}' is not a node id; 'quid credits' lists the issuers whose credits you hold.").ConfigureAwait(false);
                    return;
                }
                string card = await _node.GiveCreditsAsync(issuer, give.Amount, context.RequestAborted).ConfigureAwait(false);
                await JsonAsync(context, StatusCodes.Status200OK, new CreditCardReport(card, give.Amount), ControlJson.Default.CreditCardReport).ConfigureAwait(false);
                return;
            }
            if (await ReadBodyAsync(context, ControlJson.Default.CreditTakeRequest, "{\"card\": \"-----BEGIN QUID CREDITS----- …\"}",
                // A card is larger than the other requests.
                maxBytes: 2 * CreditCard.MaxLength).ConfigureAwait(false) is not { } take) return;
            long taken = await _node.TakeCreditsAsync(take.Card, context.RequestAborted).ConfigureAwait(false);
            await JsonAsync(context, StatusCodes.Status200OK, new CreditTakeReport(taken), ControlJson.Default.CreditTakeReport).ConfigureAwait(false);
        }
        catch (CreditException e)
        {
            await ErrorAsync(context.Response, StatusCodes.Status409Conflict, e.Message).ConfigureAwait(false);
        }
    }

    private static CreditReport Report(CreditStatus status) => new(
        [.. status.Balances.Select(b => new CreditBalanceReport(b.Issuer.ToString(), b.MiBDays, b.Credits, b.SoonestExpiry))],
        status.IssuedMiBDays, status.ExchangedMiBDays, status.SpentCredits, status.OfferDiskMiB, status.FreeDiskMiB, status.RequestDisk?.MiB,
        status.Epoch, status.EpochEnds, status.OfferCpuGfuel, status.FreeCpuGfuel, status.RequestCpu?.Gfuel);
}
