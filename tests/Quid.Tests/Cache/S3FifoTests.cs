using Quid.Cache;

namespace Quid.Tests.Cache;

public class S3FifoTests
{
    // With a capacity of 100 bytes the small queue's target is 10 and main's is 90.
    private static S3Fifo<string> New() => new(100);

    private static string Evict(S3Fifo<string> fifo)
    {
        Assert.True(fifo.TryEvict(out var key));
        return key;
    }

    /// <summary>Inserts the keys, evicts them from the small queue into the ghost, and inserts them again: into main, in this order.</summary>
    private static void PutInMain(S3Fifo<string> fifo, params (string Key, long Size)[] objects)
    {
        foreach (var (key, size) in objects) fifo.Insert(key, size);
        foreach (var (key, _) in objects) Assert.Equal(key, Evict(fifo));
        foreach (var (key, size) in objects) fifo.Insert(key, size);
    }

    [Fact]
    public void One_hit_wonders_leave_from_the_small_queue_before_anything_in_main()
    {
        var fifo = New();
        PutInMain(fifo, ("kept", 10));
        fifo.Insert("once", 5);
        fifo.Insert("twice", 5);
        Assert.Equal("once", Evict(fifo));
        Assert.Equal("twice", Evict(fifo));
        Assert.Equal("kept", Evict(fifo));
        Assert.False(fifo.TryEvict(out _));
    }

    [Fact]
    public void A_key_inserted_again_while_it_is_a_ghost_goes_to_main()
    {
        var fifo = New();
        fifo.Insert("back", 10);
        Assert.Equal("back", Evict(fifo));
        Assert.False(fifo.Contains("back"));
        Assert.Equal(0, fifo.Count);
        Assert.Equal(0, fifo.Used);

        fifo.Insert("back", 10);
        fifo.Insert("new", 10);
        Assert.True(fifo.Contains("back"));
        // "back" is older, but it is in main and "new" in the small queue.
        Assert.Equal("new", Evict(fifo));
        Assert.Equal("back", Evict(fifo));
    }

    [Fact]
    public void An_object_hit_twice_while_in_the_small_queue_moves_to_main_instead_of_leaving()
    {
        var fifo = New();
        fifo.Insert("popular", 5);
        fifo.Insert("other", 5);
        Assert.True(fifo.Hit("popular"));
        Assert.True(fifo.Hit("popular"));
        Assert.Equal("other", Evict(fifo));
        Assert.True(fifo.Contains("popular"));

        // Now in main: a newer object in the small queue leaves first.
        fifo.Insert("later", 5);
        Assert.Equal("later", Evict(fifo));
        Assert.Equal("popular", Evict(fifo));
    }

    [Fact]
    public void An_object_hit_once_while_in_the_small_queue_still_leaves_it()
    {
        var fifo = New();
        fifo.Insert("once", 5);
        fifo.Insert("other", 5);
        Assert.True(fifo.Hit("once"));
        Assert.Equal("once", Evict(fifo));
    }

    [Fact]
    public void Moving_to_main_clears_the_count_so_only_later_hits_earn_another_pass()
    {
        var fifo = New();
        fifo.Insert("moved", 5);
        fifo.Insert("other", 5);
        for (int i = 0; i < 3; i++) fifo.Hit("moved");
        Assert.Equal("other", Evict(fifo));
        PutInMain(fifo, ("younger", 5));
        // "moved" is the oldest in main and was not hit there.
        Assert.Equal("moved", Evict(fifo));
    }

    [Fact]
    public void Main_gives_an_object_hit_since_it_last_came_round_a_second_chance()
    {
        var fifo = New();
        PutInMain(fifo, ("hit", 10), ("idle", 10));
        Assert.True(fifo.Hit("hit"));
        Assert.Equal("idle", Evict(fifo));
        Assert.Equal("hit", Evict(fifo));
    }

    [Fact]
    public void The_count_saturates_at_three_so_a_once_popular_object_can_still_leave()
    {
        var fifo = New();
        PutInMain(fifo, ("was popular", 10), ("steady", 10));
        for (int i = 0; i < 10; i++) fifo.Hit("was popular");
        for (int i = 0; i < 3; i++) fifo.Hit("steady");
        // Both come round three times; then the older goes first, whatever its earlier ten hits.
        Assert.Equal("was popular", Evict(fifo));
        Assert.Equal("steady", Evict(fifo));
    }

    [Fact]
    public void Evicting_a_big_object_frees_its_bytes_and_used_is_exact()
    {
        var fifo = New();
        fifo.Insert("big", 1_000);
        fifo.Insert("small", 5);
        fifo.Insert("empty", 0);
        Assert.Equal(1_005, fifo.Used);
        Assert.Equal(3, fifo.Count);
        Assert.Equal("big", Evict(fifo));
        Assert.Equal(5, fifo.Used);
        Assert.Equal(2, fifo.Count);
    }

    [Fact]
    public void Main_gives_way_once_it_holds_more_than_nine_tenths_of_the_capacity_in_bytes()
    {
        var fifo = New();
        PutInMain(fifo, ("a", 60), ("b", 30));
        fifo.Insert("fresh", 1);
        // Main holds 90 bytes, its share: the small queue gives up its object.
        Assert.Equal("fresh", Evict(fifo));

        fifo.Insert("c", 1);
        Assert.True(fifo.Hit("c"));
        Assert.True(fifo.Hit("c"));
        fifo.Insert("fresher", 1);
        // "c" moves to main, which then holds 91 bytes: main gives up its oldest, not the small queue.
        Assert.Equal("a", Evict(fifo));
        Assert.True(fifo.Contains("fresher"));
    }

    [Fact]
    public void A_smaller_capacity_moves_the_split_at_once()
    {
        var fifo = New();
        PutInMain(fifo, ("main", 85));
        fifo.Insert("small", 5);
        fifo.Capacity = 90;
        // Main may now hold 81 bytes: it gives way although the small queue is not empty.
        Assert.Equal("main", Evict(fifo));
        Assert.Equal(90, fifo.Capacity);
    }

    [Fact]
    public void The_ghost_forgets_the_oldest_keys_beyond_the_bytes_main_may_hold()
    {
        var fifo = New();
        fifo.Insert("forgotten", 45);
        fifo.Insert("remembered", 50);
        fifo.Insert("resident", 1);
        Assert.Equal("forgotten", Evict(fifo));
        Assert.Equal("remembered", Evict(fifo));
        // 95 bytes of ghosts is more than main's 90: the older is forgotten and starts afresh.
        fifo.Insert("remembered", 50);
        fifo.Insert("forgotten", 45);
        Assert.Equal("resident", Evict(fifo));
        Assert.Equal("forgotten", Evict(fifo));
        Assert.Equal("remembered", Evict(fifo));
    }

    [Fact]
    public void The_ghost_remembers_no_more_keys_than_were_ever_resident_at_once()
    {
        var fifo = New();
        fifo.Insert("forgotten", 0);
        fifo.Insert("remembered", 0);
        Assert.Equal("forgotten", Evict(fifo));
        Assert.Equal("remembered", Evict(fifo));
        fifo.Insert("third", 0);
        Assert.Equal("third", Evict(fifo));
        // Never more than two resident, so two ghosts: the oldest is forgotten although it weighs nothing.
        fifo.Insert("remembered", 0);
        fifo.Insert("forgotten", 0);
        Assert.Equal("forgotten", Evict(fifo));
        Assert.Equal("remembered", Evict(fifo));
    }

    [Fact]
    public void Remove_leaves_no_trace()
    {
        var fifo = New();
        fifo.Insert("purged", 10);
        fifo.Insert("kept", 5);
        Assert.True(fifo.Hit("purged"));
        Assert.True(fifo.Remove("purged"));
        Assert.False(fifo.Contains("purged"));
        Assert.False(fifo.Hit("purged"));
        Assert.False(fifo.Remove("never inserted"));
        Assert.Equal(5, fifo.Used);
        Assert.Equal(1, fifo.Count);
        Assert.Equal("kept", Evict(fifo));
        Assert.False(fifo.TryEvict(out _));

        // Not a ghost: inserted again it starts in the small queue, with no count.
        fifo.Insert("purged", 10);
        fifo.Insert("newer", 5);
        Assert.True(fifo.Hit("purged"));
        Assert.Equal("purged", Evict(fifo));
    }

    [Fact]
    public void Removing_a_ghost_forgets_it()
    {
        var fifo = New();
        fifo.Insert("gone", 10);
        fifo.Insert("kept", 5);
        Assert.Equal("gone", Evict(fifo));
        Assert.False(fifo.Remove("gone"));
        fifo.Insert("gone", 10);
        Assert.Equal("kept", Evict(fifo));
        fifo.Insert("newer", 5);
        Assert.Equal("gone", Evict(fifo));
    }

    [Fact]
    public void A_resident_key_cannot_be_inserted_twice_nor_a_size_be_negative()
    {
        var fifo = New();
        fifo.Insert("once", 10);
        Assert.Throws<ArgumentException>(() => fifo.Insert("once", 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => fifo.Insert("negative", -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => fifo.Capacity = -1);
        Assert.Equal(10, fifo.Used);
        Assert.Equal(1, fifo.Count);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Random_operations_keep_the_resident_set_equal_to_a_simple_model(int seed)
    {
        var random = new Random(seed);
        var fifo = new S3Fifo<string>(random.Next(50, 2_000));
        var model = new Dictionary<string, long>();
        string[] keys = [.. Enumerable.Range(0, 60).Select(i => $"k{i}")];

        for (int step = 0; step < 20_000; step++)
        {
            string key = keys[random.Next(keys.Length)];
            switch (random.Next(10))
            {
                case < 4:
                    if (model.ContainsKey(key)) Assert.True(fifo.Hit(key));
                    else
                    {
                        long size = random.Next(4) == 0 ? 0 : random.Next(1, 300);
                        fifo.Insert(key, size);
                        model[key] = size;
                        // As the store does: evict while over quota.
                        while (fifo.Used > fifo.Capacity)
                        {
                            Assert.True(fifo.TryEvict(out var victim));
                            Assert.True(model.Remove(victim));
                        }
                    }
                    break;
                case < 6:
                    Assert.Equal(model.ContainsKey(key), fifo.Hit(key));
                    break;
                case 6:
                    Assert.Equal(model.Remove(key), fifo.Remove(key));
                    break;
                case < 9:
                    if (fifo.TryEvict(out var evicted)) Assert.True(model.Remove(evicted));
                    else Assert.Empty(model);
                    break;
                default:
                    fifo.Capacity = random.Next(0, 2_000);
                    break;
            }
            Assert.Equal(model.Values.Sum(), fifo.Used);
            Assert.Equal(model.Count, fifo.Count);
            Assert.Equal(model.ContainsKey(key), fifo.Contains(key));
        }

        foreach (string key in keys) Assert.Equal(model.ContainsKey(key), fifo.Contains(key));
        while (fifo.TryEvict(out var victim)) Assert.True(model.Remove(victim));
        Assert.Empty(model);
        Assert.Equal(0, fifo.Used);
        Assert.Equal(0, fifo.Count);
        Assert.False(fifo.TryEvict(out _));
    }
}
