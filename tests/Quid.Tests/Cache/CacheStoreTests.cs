using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Cache;
using Quid.Wire.Http;

namespace Quid.Tests.Cache;

public sealed class CacheStoreTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("quid-cache-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private CacheStore Open(long quota) => CacheStore.Open(_directory, quota, TimeProvider.System, NullLogger.Instance);

    private static HttpResponseHead Head(long length) => new(200, "OK", 1,
        [new("Content-Type", "text/plain"), new("Content-Length", length.ToString(System.Globalization.CultureInfo.InvariantCulture)), new("Cache-Control", "max-age=3600")]);

    private static StoredResponse? Store(CacheStore store, string url, byte[] body)
    {
        using var write = store.BeginWrite(body.Length);
        if (write is null || !write.Append(body)) return null;
        var now = DateTimeOffset.UtcNow;
        return write.Commit(url, "", Head(body.Length), now, now, TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(40));
    }

    /// <summary>Every file under the cache's folder, as the disk counts it: whole blocks.</summary>
    private long OnDisk() => Directory.EnumerateFiles(_directory, "*", SearchOption.AllDirectories).Sum(f => CacheStore.Blocks(new FileInfo(f).Length));

    [Fact]
    public void Random_objects_of_random_sizes_never_take_more_than_the_quota()
    {
        const long quota = 6 * 1024 * 1024;
        var random = new Random(7);
        using var store = Open(quota);
        var writes = new List<CacheStore.CacheWrite>();
        int stored = 0;
        for (int step = 0; step < 400; step++)
        {
            // Sizes from empty to past the object limit, some of unknown length, some abandoned half-way, several in flight at once.
            int size = random.Next(4) switch { 0 => random.Next(0, 5000), 1 => random.Next(0, 200_000), 2 => random.Next(0, 1_200_000), _ => random.Next(1_000_000, 2_000_000) };
            var write = store.BeginWrite(random.Next(3) == 0 ? null : size);
            if (write is not null)
            {
                var body = new byte[size];
                random.NextBytes(body);
                for (int at = 0; at < size && write.Append(body.AsSpan(at, Math.Min(65536, size - at))); at += 65536)
                    Assert.True(OnDisk() <= quota, $"step {step}: {OnDisk()} bytes on disk mid-write, over the quota of {quota}");
                writes.Add(write);
            }
            if (writes.Count > 0 && random.Next(3) > 0)
            {
                var done = writes[random.Next(writes.Count)];
                writes.Remove(done);
                var now = DateTimeOffset.UtcNow;
                if (random.Next(5) > 0 && done.Commit($"http://example.org/{step}", "", Head(done.Written), now, now, TimeSpan.Zero, TimeSpan.Zero) is not null) stored++;
                done.Dispose();
            }
            if (random.Next(10) == 0 && store.Entries() is { Count: > 0 } entries) store.Remove(entries[random.Next(entries.Count)].Id);
            Assert.True(OnDisk() <= quota, $"step {step}: {OnDisk()} bytes on disk, over the quota of {quota}");
            Assert.True(store.Used <= quota, $"step {step}: the store counts {store.Used}, over the quota of {quota}");
        }
        Assert.True(stored > 100, $"the test stored too little to mean anything: {stored} in all");
        foreach (var write in writes) write.Dispose();
    }

    [Fact]
    public void A_body_that_no_longer_matches_its_checksum_is_never_served_and_its_entry_goes()
    {
        using var store = Open(16 << 20);
        var entry = Store(store, "http://example.org/a", Encoding.ASCII.GetBytes("the whole body"))!;
        using (var body = store.OpenBody(entry)) Assert.Equal("the whole body", new StreamReader(body!).ReadToEnd());

        File.WriteAllText(Path.Combine(_directory, "bodies", entry.Id), "the whole bodY");
        Assert.Null(store.OpenBody(entry));
        Assert.Empty(store.Variants("http://example.org/a"));
    }

    [Fact]
    public void A_start_clears_what_a_crash_left_and_keeps_whole_entries()
    {
        string kept;
        using (var store = Open(16 << 20))
        {
            kept = Store(store, "http://example.org/kept", new byte[10_000])!.Id;
            var torn = Store(store, "http://example.org/torn", new byte[10_000])!;
            // A body cut short after it was indexed (a disk that lied about its sync), and a write in flight.
            File.WriteAllBytes(Path.Combine(_directory, "bodies", torn.Id), new byte[5000]);
            File.WriteAllBytes(Path.Combine(_directory, "incoming", "0123456789abcdef0123456789abcdef"), new byte[3000]);
            File.WriteAllBytes(Path.Combine(_directory, "bodies", "fedcba9876543210fedcba9876543210"), new byte[3000]);
        }
        using var reopened = Open(16 << 20);
        Assert.Equal(kept, Assert.Single(reopened.Entries()).Id);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_directory, "incoming")));
        Assert.Equal([kept], Directory.EnumerateFiles(Path.Combine(_directory, "bodies")).Select(Path.GetFileName));
    }

    [Fact]
    public void A_new_response_for_the_same_url_and_variant_replaces_the_old_one()
    {
        using var store = Open(16 << 20);
        Store(store, "http://example.org/a", new byte[100]);
        var newer = Store(store, "http://example.org/a", new byte[200])!;
        Assert.Equal(newer.Id, Assert.Single(store.Variants("http://example.org/a")).Id);
        Assert.Single(Directory.EnumerateFiles(Path.Combine(_directory, "bodies")));
    }

    [Fact]
    public void A_smaller_quota_at_the_next_start_evicts_down_to_it()
    {
        using (var store = Open(16 << 20))
            for (int i = 0; i < 10; i++) Store(store, $"http://example.org/{i}", new byte[1 << 20]);
        using var smaller = Open(6 << 20);
        Assert.True(smaller.Used <= 6 << 20);
        Assert.True(OnDisk() <= 6 << 20, $"{OnDisk()} bytes on disk");
        Assert.InRange(smaller.Count, 1, 5);
    }

    [Fact]
    public void Entries_with_large_heads_are_evicted_before_their_index_outgrows_its_memory()
    {
        // 4 MiB of quota allows 128 KiB of index in memory: 100 tiny bodies with 4 KiB heads would take 800 KiB.
        using var store = Open(4 << 20);
        var head = new HttpResponseHead(200, "OK", 1, [new("Cache-Control", "max-age=3600"), new("X-Padding", new string('p', 4000))]);
        for (int i = 0; i < 100; i++)
        {
            using var write = store.BeginWrite(1)!;
            write.Append([1]);
            var now = DateTimeOffset.UtcNow;
            write.Commit($"http://example.org/{i}", "", head, now, now, TimeSpan.Zero, TimeSpan.Zero);
            Assert.True(store.IndexMemory <= store.MaxIndexMemory, $"{store.IndexMemory} bytes of index after {i + 1} entries");
        }
        Assert.InRange(store.Count, 5, 20);

        // And a head past the limit is not kept at all.
        using var huge = store.BeginWrite(1)!;
        huge.Append([1]);
        var at = DateTimeOffset.UtcNow;
        Assert.Null(huge.Commit("http://example.org/huge", "", head with { Fields = [new("X-Padding", new string('p', CacheStore.MaxHeadSize))] }, at, at, TimeSpan.Zero, TimeSpan.Zero));
    }

    [Fact]
    public void A_body_over_the_object_limit_is_not_stored_and_gives_its_room_back()
    {
        using var store = Open(8 << 20);
        Assert.Null(store.BeginWrite(store.MaxObjectSize + 1));
        using var write = store.BeginWrite(null)!;
        Assert.False(write.Append(new byte[store.MaxObjectSize + 1]));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_directory, "incoming")));
        Assert.NotNull(Store(store, "http://example.org/fits", new byte[store.MaxObjectSize]));
    }
}
