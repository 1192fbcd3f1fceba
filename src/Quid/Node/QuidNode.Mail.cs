using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Quid.Credits;
using Quid.Crypto;
using Quid.Programs;
using Quid.Services;

namespace Quid.Node;

/// <summary>
/// Mail (seed 003's remailer; docs/HOSTING.md): a mailbox is the remailer module run on another
/// node, which keeps what is deposited for its owner and forwards what it is asked to, after a
/// random delay. A mail address is the box owner's X25519 key and the box's session address,
/// <c>KEY@ADDRESS.quid</c>; mail is sealed to the key and padded before it leaves the sender.
/// </summary>
public sealed partial class QuidNode
{
    /// <summary>Mail addresses: base32 of the 32-byte key, an @, and the mailbox's session address.</summary>
    public static string MailAddress(byte[] publicKey, string address) => $"{Base32.Encode(publicKey)}@{address}";

    /// <summary>Deploys the remailer on <paramref name="host"/> as a mailbox of ours, and makes it ours with its first message.</summary>
    public async Task<(DeployedProgram Program, string MailAddress)> CreateMailboxAsync(NodeId host, long credits, uint postage, uint maxDelayMs, CancellationToken cancellationToken)
    {
        var program = await DeployAsync(host, Remailer.Module(), "mailbox", credits, postage, cancellationToken).ConfigureAwait(false);
        var secret = RandomNumberGenerator.GetBytes(Remailer.SecretLength);
        var (privateKey, publicKey) = MailSeal.NewKey();
        _database.SaveMailbox(new Mailbox(program.Id, secret, privateKey));
        // Its address is published as the deploy returns; a few tries while its introduction points come up.
        // Its owner pays its postage too: the host cannot tell its posts from anyone's.
        var paid = await PostageAsync(host, program.Postage, cancellationToken).ConfigureAwait(false);
        var replies = await WithRetriesAsync(token => PostAsync(program.Address, paid, Remailer.Init(secret, maxDelayMs), token), cancellationToken).ConfigureAwait(false);
        if (replies.Count != 1 || Reply(replies[0]).Kind != Remailer.KindInitialised)
            throw new ProgramPostException("The mailbox did not take us as its owner: someone else may have reached it first. Stop it with 'quid host stop'.");
        string mail = MailAddress(publicKey, program.Address);
        _logger.LogInformation("Mailbox {Key} on {Host}: mail to {MailAddress}", program.Key[..12], host.Brief, mail);
        return (program, mail);
    }

    /// <summary>Our mailboxes: each with its mail address.</summary>
    public IReadOnlyList<(DeployedProgram Program, string MailAddress)> Mailboxes()
    {
        var deployed = DeployedPrograms().ToDictionary(p => p.Key);
        return [.. _database.LoadMailboxes()
            .Where(b => deployed.ContainsKey(Convert.ToHexStringLower(b.Program)))
            .Select(b =>
            {
                var program = deployed[Convert.ToHexStringLower(b.Program)];
                using var key = NSec.Cryptography.Key.Import(NSec.Cryptography.KeyAgreementAlgorithm.X25519, b.PrivateKey, NSec.Cryptography.KeyBlobFormat.RawPrivateKey);
                return (program, MailAddress(key.PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey), program.Address));
            })];
    }

    /// <summary>
    /// Seals <paramref name="message"/> to <paramref name="to"/>'s key and deposits it in its box;
    /// or, through the remailer at <paramref name="via"/>, asks that remailer to deposit it after
    /// its delay, so that the box's host sees the remailer, never us.
    /// </summary>
    public async Task SendMailAsync(string to, byte[] message, string? via, IReadOnlyList<Wire.EpochCredit> postage, CancellationToken cancellationToken)
    {
        var (key, box) = ParseMailAddress(to);
        var sealedMessage = MailSeal.Seal(key, message);
        var replies = via is null
            ? await PostAsync(box, postage, Remailer.Deposit(sealedMessage), cancellationToken).ConfigureAwait(false)
            : await PostAsync(SessionAddress.Parse(via).ToString(), postage, Remailer.Forward(System.Text.Encoding.ASCII.GetBytes(box), sealedMessage), cancellationToken).ConfigureAwait(false);
        // Both are answered only when refused.
        if (replies.Count > 0 && Reply(replies[0]) is { Kind: Remailer.KindRefused } refused)
            throw new ProgramPostException($"The {(via is null ? "mailbox" : "remailer")} refused the mail: {refused.Error}.");
    }

    /// <summary>Fetches and opens what waits in each of our mailboxes, each emptied as it is read.</summary>
    public async Task<IReadOnlyList<byte[]>> FetchMailAsync(CancellationToken cancellationToken)
    {
        var messages = new List<byte[]>();
        var deployed = DeployedPrograms().ToDictionary(p => p.Key);
        foreach (var box in _database.LoadMailboxes())
        {
            if (!deployed.TryGetValue(Convert.ToHexStringLower(box.Program), out var program)) continue;
            while (true)
            {
                var postage = await PostageAsync(program.Host, program.Postage, cancellationToken).ConfigureAwait(false);
                var replies = await PostAsync(program.Address, postage, Remailer.Fetch(box.Secret), cancellationToken).ConfigureAwait(false);
                int got = 0;
                foreach (var reply in replies.Select(Reply))
                {
                    if (reply.Kind == Remailer.KindRefused) throw new ProgramPostException($"The mailbox refused to hand its mail over: {reply.Error}.");
                    if (reply.Kind != Remailer.KindMessage) continue;
                    got++;
                    try
                    {
                        messages.Add(MailSeal.Open(box.PrivateKey, reply.Payload));
                    }
                    catch (CryptographicException e)
                    {
                        _logger.LogWarning("Mail in box {Key} was not sealed to it, or was changed, and was dropped: {Reason}", program.Key[..12], e.Message);
                    }
                }
                // A full fetch may have left more behind.
                if (got < Remailer.MaxFetch) break;
            }
        }
        return messages;
    }

    /// <summary>A reply from a remailer, which came over the network: nonsense is the host's or the program's fault, said as such.</summary>
    private static RemailerReply Reply(byte[] reply)
    {
        try
        {
            return Remailer.ParseReply(reply);
        }
        catch (ArgumentException e)
        {
            throw new ProgramPostException($"The mailbox answered nonsense: {e.Message}");
        }
    }

    private static (byte[] Key, string Box) ParseMailAddress(string to)
    {
        int at = to.IndexOf('@', StringComparison.Ordinal);
        var key = new byte[MailSeal.KeySize];
        if (at <= 0 || !Base32.TryDecode(to.AsSpan(0, at), key, out int written) || written != key.Length || !SessionAddress.TryParse(to[(at + 1)..], out var box))
            throw new FormatException($"'{to}' is not a mail address: KEY@ADDRESS.quid, as 'quid mail box create' prints it.");
        return (key, box.ToString());
    }

    /// <summary>Tries <paramref name="work"/> up to five times, two seconds apart, while a fresh address's introduction points come up.</summary>
    private async Task<T> WithRetriesAsync<T>(Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(PostPatience);
                return await work(timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (attempt < 5 && e is Quid.Circuits.StreamException or IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                _logger.LogDebug("Posting to a new program failed ({Reason}); trying again", e.Message);
                await Task.Delay(TimeSpan.FromSeconds(2), _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
