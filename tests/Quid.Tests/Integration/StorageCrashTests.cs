using System.Security.Cryptography;
using System.Text.Json;

namespace Quid.Tests.Integration;

/// <summary>
/// Storage across real <c>quid</c> processes (PROTOCOL §10.7): a host killed with kill -9 takes
/// its copy down with it, the file still reads back whole from the others, and the host, started
/// again on its data directory, still holds the copy it was paid for and answers its audits.
/// </summary>
[Collection(nameof(SerialTests))]
public sealed class StorageCrashTests
{
    private const int Hosts = 3;

    private static JsonElement Json((int Code, string Output) run)
    {
        Assert.True(run.Code == 0, run.Output);
        return JsonDocument.Parse(run.Output).RootElement;
    }

    /// <summary>Grants of a loopback network, so that tens of MiB move in seconds; no probes, so no verdict races an audit's.</summary>
    private static string[] Flags(string dataDirectory, string address, string request, params string[] more) =>
        ["run", "--data-dir", dataDirectory, "--listen", $"{address}:0", "--socks", "off", "--http-proxy", "off", "--offer", "1048576", "--request", request,
            "--hops", "2", "--no-probes", .. more];

    private static string[] HostFlags(string root, int i, string ownerLink) =>
        Flags(Path.Combine(root, $"host{i}"), $"127.0.0.{233 + i}", "131072", "--offer-disk", "128MiB", "--peer", ownerLink);

    [Fact]
    public async Task A_50_MiB_file_in_3_copies_reads_back_whole_after_kill_9_of_a_host_which_still_holds_its_copy_when_it_starts_again()
    {
        string root = Directory.CreateTempSubdirectory("quid-store-crash-").FullName;
        var hosts = new QuidProcess?[Hosts];
        try
        {
            string ownerDir = Path.Combine(root, "owner");
            using var owner = QuidProcess.Start(Flags(ownerDir, "127.0.0.232", "524288", "--request-disk", "64MiB"));
            string ownerLink = $"127.0.0.232:{(await owner.WaitForLineAsync(@"Accepting links on 127\.0\.0\.232:(\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value}";
            for (int i = 0; i < Hosts; i++) hosts[i] = QuidProcess.Start(HostFlags(root, i, ownerLink));

            // The owner is paid a day of each host's disk, in that host's credits, as soon as they agree.
            await Eventually.WaitUntilAsync(async () =>
            {
                var (code, text) = await QuidProcess.RunAsync("credits", "--json", "--data-dir", ownerDir);
                return code == 0 && JsonDocument.Parse(text).RootElement.GetProperty("balances").EnumerateArray().Count(b => b.GetProperty("miBDays").GetInt64() >= 64) == Hosts;
            }, TimeSpan.FromSeconds(60), "the owner to hold a day of disk credits on each of the three hosts");

            string path = Path.Combine(root, "holiday-photos.tar");
            File.WriteAllBytes(path, RandomNumberGenerator.GetBytes(50 << 20));
            byte[] sha256 = SHA256.HashData(File.ReadAllBytes(path));
            var stored = Json(await QuidProcess.RunAsync("store", "put", path, "--days", "1", "--copies", "3", "--json", "--data-dir", ownerDir));
            string id = stored.GetProperty("id").GetString()!;
            Assert.Equal(Hosts, stored.GetProperty("copies").GetArrayLength());

            // kill -9 of one holder: no goodbye on its links, nothing flushed.
            string victimDir = Path.Combine(root, "host0");
            string victimId = Json(await QuidProcess.RunAsync("id", "--json", "--data-dir", victimDir)).GetProperty("id").GetString()!;
            hosts[0]!.KillHard();
            string copy = Path.Combine(root, "back.tar");
            var (got, text2) = await QuidProcess.RunAsync("store", "get", id[..12], "-o", copy, "--data-dir", ownerDir);
            Assert.True(got == 0, text2);
            Assert.Equal(sha256, SHA256.HashData(File.ReadAllBytes(copy)));

            // Its copy survived the kill: what it lists holding, started again on the same directory.
            hosts[0]!.Dispose();
            hosts[0] = QuidProcess.Start(HostFlags(root, 0, ownerLink));
            await hosts[0]!.WaitForLineAsync("Control API, dashboard and metrics on", TimeSpan.FromSeconds(30));
            var hosted = Json(await QuidProcess.RunAsync("hosted", "--json", "--data-dir", victimDir));
            var held = Assert.Single(hosted.GetProperty("objects").EnumerateArray());
            Assert.Equal((50 << 20) + 50 * 16, held.GetProperty("size").GetInt64());

            // And it answers its audit once the owner reaches it again: all three copies held.
            string states = "";
            try
            {
                await Eventually.WaitUntilAsync(async () =>
                {
                    var files = Json(await QuidProcess.RunAsync("store", "check", "--json", "--data-dir", ownerDir));
                    var copies = files.EnumerateArray().Single().GetProperty("copies").EnumerateArray().ToList();
                    states = string.Join(", ", copies.Select(c => $"{c.GetProperty("host").GetString()![..8]} {c.GetProperty("state").GetString()}"));
                    return copies.Count(c => c.GetProperty("state").GetString() == "Held") == Hosts
                        && copies.Any(c => c.GetProperty("host").GetString() == victimId && c.GetProperty("state").GetString() == "Held");
                }, TimeSpan.FromSeconds(90), "the restarted host to pass its audit");
            }
            catch (TimeoutException e)
            {
                throw new TimeoutException($"{e.Message} Copies: {states}", e);
            }
        }
        finally
        {
            foreach (var host in hosts) host?.Dispose();
            Directory.Delete(root, recursive: true);
        }
    }
}
