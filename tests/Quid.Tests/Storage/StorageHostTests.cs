using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Quid.Credits;
using Quid.Crypto;
using Quid.Storage;
using Quid.Tests.Credits;
using Quid.Wire;

namespace Quid.Tests.Storage;

/// <summary>The host's side of storage, over an in-memory desk: payment, room, ownership, audits, warnings and deletion.</summary>
public sealed class StorageHostTests : IDisposable
{
    private static readonly NodeId Self = new([.. Enumerable.Range(1, NodeId.Size).Select(i => (byte)i)]);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));
    private readonly CreditKeys _keys = new(RandomNumberGenerator.GetBytes(32));
    private readonly CreditIssuer _issuer;
    private readonly StorageHost _host;
    private readonly string _directory = Directory.CreateTempSubdirectory("quid-hosted-").FullName;

    public StorageHostTests()
    {
        _issuer = new CreditIssuer(_keys, new MemorySpentCredits(), _time);
        _host = StorageHost.Open(_directory, 4 << 20, _issuer, _time, NullLogger.Instance);
    }

    public void Dispose()
    {
        _host.Dispose();
        _keys.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private List<EpochCredit> Credits(long amount) => Payment.Of(_issuer, Self, _time, amount);

    /// <summary>Sends <paramref name="request"/> (and <paramref name="body"/> after a Ready) and reads what the host answers.</summary>
    private async Task<List<DeskMessage>> AskAsync(DeskMessage request, byte[]? body = null)
    {
        var toHost = new MemoryStream();
        toHost.Write(DeskCodec.Encode(request));
        if (body is not null) toHost.Write(body);
        toHost.Position = 0;
        // The desk reads the request's frame before the host sees the request.
        toHost.Position = DeskCodec.LengthSize + DeskCodec.ReadLength([(byte)toHost.ReadByte(), (byte)toHost.ReadByte()]);
        var fromHost = new MemoryStream();
        await _host.ServeAsync(new Duplex(toHost, fromHost), DeskCodec.Decode(DeskCodec.Encode(request).AsSpan(DeskCodec.LengthSize)), CancellationToken.None);
        fromHost.Position = 0;
        var answers = new List<DeskMessage>();
        while (await CreditDesk.ReadAsync(fromHost, _time, CancellationToken.None) is { } answer)
        {
            answers.Add(answer);
            if (answer is DeskData data) fromHost.Position += data.Size;
        }
        return answers;
    }

    [Fact]
    public async Task APaidPutIsStoredAuditedRenewedAndDeletedAfterItsGrace()
    {
        byte[] id = RandomNumberGenerator.GetBytes(16), secret = RandomNumberGenerator.GetBytes(32), body = RandomNumberGenerator.GetBytes(1 << 20);
        var answers = await AskAsync(new DeskPut(id, body.Length, 2, SHA256.HashData(secret), Credits(2)), body);
        Assert.IsType<DeskReady>(answers[0]);
        var stored = Assert.IsType<DeskStored>(answers[1]);
        Assert.Equal((ulong)(_time.GetUtcNow() + TimeSpan.FromDays(2)).ToUnixTimeSeconds(), stored.PaidUntil);
        Assert.Equal(body.Length, _host.Used);

        // An audit: SHA-256 of the nonce and the bytes; no warning while well paid.
        var nonce = RandomNumberGenerator.GetBytes(32);
        var audited = Assert.IsType<DeskAudited>(Assert.Single(await AskAsync(new DeskAudit(id, nonce))));
        Assert.Equal(SHA256.HashData([.. nonce, .. body]), audited.Digest);
        Assert.Null(Assert.Single(_host.Objects()).WarnedAt);
        // Within its last quarter, the audit carries the warning.
        _time.Advance(TimeSpan.FromDays(1.6));
        await AskAsync(new DeskAudit(id, nonce));
        Assert.NotNull(Assert.Single(_host.Objects()).WarnedAt);

        // Anyone with its id may renew it; then it is paid a day more and the warning is forgotten.
        var renewed = Assert.IsType<DeskStored>(Assert.Single(await AskAsync(new DeskRenew(id, 1, Credits(1)))));
        Assert.Equal(stored.PaidUntil + 86_400, renewed.PaidUntil);
        Assert.Null(Assert.Single(_host.Objects()).WarnedAt);

        // Kept through its day of grace, deleted after.
        _time.SetUtcNow(DateTimeOffset.FromUnixTimeSeconds((long)renewed.PaidUntil) + StorageHost.Grace - TimeSpan.FromMinutes(1));
        Assert.Equal(0, _host.Sweep());
        Assert.IsType<DeskData>((await AskAsync(new DeskGet(id)))[0]);
        _time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(1, _host.Sweep());
        Assert.Empty(_host.Objects());
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_directory, "objects")));
        Assert.Equal(CreditRefusal.NotFound, Assert.IsType<DeskRefused>(Assert.Single(await AskAsync(new DeskGet(id)))).Reason);
    }

    [Fact]
    public async Task A_second_put_of_an_id_being_uploaded_is_refused_before_it_is_paid()
    {
        byte[] id = RandomNumberGenerator.GetBytes(16), owner = SHA256.HashData(RandomNumberGenerator.GetBytes(32));
        // The first upload is under way: paid, answered Ready, waiting for its bytes.
        var body = new System.IO.Pipelines.Pipe();
        var fromHost = new MemoryStream();
        var first = _host.ServeAsync(new Duplex(body.Reader.AsStream(), fromHost), new DeskPut(id, 10, 1, owner, Credits(1)), CancellationToken.None);
        await Quid.Tests.Integration.Eventually.WaitUntilAsync(() => _host.Used == 10, TimeSpan.FromSeconds(10), "the first upload to reserve its room");

        var payment = Credits(1);
        Assert.Equal(CreditRefusal.NotOwner, Assert.IsType<DeskRefused>(Assert.Single(await AskAsync(new DeskPut(id, 10, 1, owner, payment)))).Reason);
        // Its credits were not taken: they pay for another id.
        Assert.IsType<DeskStored>((await AskAsync(new DeskPut(RandomNumberGenerator.GetBytes(16), 10, 1, owner, payment), new byte[10]))[1]);

        await body.Writer.WriteAsync(new byte[10]);
        await body.Writer.CompleteAsync();
        Assert.True(await first);
        Assert.Equal(2, _host.Objects().Count);
    }

    [Fact]
    public async Task UnderpaidOverQuotaTakenAndForeignRequestsAreRefused()
    {
        byte[] id = RandomNumberGenerator.GetBytes(16), secret = RandomNumberGenerator.GetBytes(32);
        // 1 MiB and a byte is two started MiB: two a day.
        var underpaid = Assert.IsType<DeskRefused>(Assert.Single(await AskAsync(new DeskPut(id, (1 << 20) + 1, 1, SHA256.HashData(secret), Credits(1)))));
        Assert.Equal(CreditRefusal.Underpaid, underpaid.Reason);
        var tooBig = Assert.IsType<DeskRefused>(Assert.Single(await AskAsync(new DeskPut(id, 5 << 20, 1, SHA256.HashData(secret), Credits(5)))));
        Assert.Equal(CreditRefusal.NoRoom, tooBig.Reason);
        var payment = Credits(1);
        Assert.IsType<DeskStored>((await AskAsync(new DeskPut(id, 10, 1, SHA256.HashData(secret), payment), new byte[10]))[1]);
        // The same credits again: spent. The same id again: taken.
        Assert.Equal(CreditRefusal.Spent, Assert.IsType<DeskRefused>(Assert.Single(await AskAsync(new DeskPut(RandomNumberGenerator.GetBytes(16), 10, 1, SHA256.HashData(secret), payment)))).Reason);
        Assert.Equal(CreditRefusal.NotOwner, Assert.IsType<DeskRefused>(Assert.Single(await AskAsync(new DeskPut(id, 10, 1, SHA256.HashData(secret), Credits(1))))).Reason);
        // Removal takes the owner's secret.
        Assert.Equal(CreditRefusal.NotOwner, Assert.IsType<DeskRefused>(Assert.Single(await AskAsync(new DeskRemove(id, RandomNumberGenerator.GetBytes(32))))).Reason);
        Assert.Single(_host.Objects());
        Assert.IsType<DeskStored>(Assert.Single(await AskAsync(new DeskRemove(id, secret))));
        Assert.Empty(_host.Objects());
    }

    [Fact]
    public async Task AnUploadCutShortLeavesNothingBehind()
    {
        byte[] id = RandomNumberGenerator.GetBytes(16);
        var answers = await AskAsync(new DeskPut(id, 1000, 1, new byte[32], Credits(1)), new byte[400]);
        Assert.IsType<DeskReady>(Assert.Single(answers));
        Assert.Empty(_host.Objects());
        Assert.Equal(0, _host.Used);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_directory, "incoming")));
    }
}
