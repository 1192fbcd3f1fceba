using System.Globalization;
using System.Numerics;
using Quid.Credits;
using Quid.Wire;

namespace Quid.Sim;

/// <summary>
/// The credit economy (PROTOCOL §10.2, §10.6) played out over weeks on the agreements a run
/// ended with. Time jumps on while the agreement graph stands still; every ask interval each
/// holder asks each issuer for what the real <see cref="Exchange.Market"/> says it owes, and
/// the issuer's own Market caps it, as in the node. Once a day a holder buys a day of storage at
/// each issuer with what it holds (up to what it wants stored and what the host has room for),
/// hands credits that would expire before its next purchase to a node that still wants storage
/// (the seed's pre-paid cards), and lets the rest expire by <see cref="CreditEpoch"/>. Tokens
/// and spent sets are counted as the issuer keeps them; the blind signatures are not computed,
/// because their quantities are the question here, not their cost.
/// </summary>
public sealed class Economy
{
    /// <summary>Spare disk of a home machine that its owner offers: log-normal, median 16 GiB.</summary>
    private const double MedianOfferMiB = 16 * 1024;

    private readonly Simulation _sim;
    private readonly TimeSpan _askInterval;
    private readonly Random _random;
    private readonly List<Holder> _holders = [];
    private readonly List<Edge> _edges = [];
    private readonly Dictionary<SimNode, Holder> _byNode = [];
    private readonly Totals[] _classes = new Totals[Enum.GetValues<AgentClass>().Length];
    private readonly List<Holder> _wanting = [];
    private long _held, _issued, _spent, _gifted, _expired, _refused, _minted;

    private Economy(Simulation sim, TimeSpan askInterval)
    {
        _sim = sim;
        _askInterval = askInterval;
        _random = new Random(Seeds.Derive(sim.Options.Seed, 11));
        for (int i = 0; i < _classes.Length; i++) _classes[i] = new Totals();
    }

    /// <summary>Per day: what is held, issued, spent, given, expired, and how big the spent sets are.</summary>
    public List<EconomyDay> Days { get; } = [];
    /// <summary>Disk granted over the agreements the economy runs on, in MiB.</summary>
    public long GrantedMiB { get; private set; }

    /// <summary>
    /// The disk a node offers and asks each partner for when the run models the economy: honest
    /// nodes offer their spare disk and ask each of their partners for a sixteenth of it (a
    /// quarter over four partners); donors ask nothing; free-riders offer nothing and ask as much.
    /// Other cheaters lie about bandwidth, not disk (a disk liar is caught by audits, §10.6).
    /// </summary>
    internal static (long OfferMiB, DiskBlock? Request) DiskFor(Agent agent, Random random)
    {
        double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
        double spare = MedianOfferMiB * Math.Exp(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        var offer = DiskBlock.Floor((long)Math.Clamp(spare, 1024, 1 << 20))!.Value;
        var request = new DiskBlock((byte)(offer.Order - 4));
        return agent.Class switch
        {
            AgentClass.Donor => (offer.MiB, null),
            AgentClass.FreeRider or AgentClass.RotatingFreeRider => (0, request),
            _ => (offer.MiB, request),
        };
    }

    /// <summary>
    /// While the network runs: every online node asks each partner that grants it disk for what is
    /// due, as the node does, so that agreements that end after their trial are paid what the real
    /// rule pays them. What the window's nodes earn is counted per node.
    /// </summary>
    internal static void AskDuringRun(Simulation sim)
    {
        bool inWindow = sim.Clock.Now >= sim.WindowStart;
        foreach (var node in sim.Online)
        {
            foreach (var partner in node.Market.Active.Where(a => a.TheyGrantDisk is not null).Select(a => a.Partner).Distinct().ToList())
            {
                if (sim.Find(partner) is not { Online: true } issuer) continue;
                if (node.Market.CreditsDue(partner) < 1) continue;
                long amount = node.Market.CreditsDue(partner, issuer.Market.CreditAllowance(node.Id));
                if (amount < 1) continue;
                issuer.Market.CreditsIssued(node.Id, amount);
                node.Market.CreditsReceived(partner, amount);
                if (inWindow) node.Stats.CreditsEarnedMiBDays += amount;
            }
        }
    }

    /// <summary>Plays <paramref name="days"/> days of the economy on <paramref name="sim"/>'s online nodes, after its run.</summary>
    public static Economy Run(Simulation sim, int days, TimeSpan askInterval)
    {
        var economy = new Economy(sim, askInterval);
        economy.Build();
        economy.Play(days);
        return economy;
    }

    private void Build()
    {
        foreach (var node in _sim.Online.OrderBy(n => n.Index))
        {
            var agent = node.Agent;
            // What a holder wants stored: a share of what it asks its partners for, as if four granted it.
            double use = agent.Class switch
            {
                AgentClass.Donor => 0,
                AgentClass.FreeRider or AgentClass.RotatingFreeRider => 1,
                _ => 0.25 + 0.75 * _random.NextDouble(),
            };
            long want = (long)(use * 4 * (node.Market.DiskRequest?.MiB ?? 0));
            var holder = new Holder(node, want, _holders.Count, (int)(_random.NextDouble() * TimeSpan.TicksPerDay / _askInterval.Ticks));
            _holders.Add(holder);
            _byNode[node] = holder;
            _classes[(int)agent.Class].Nodes++;
            _classes[(int)agent.Class].OfferedMiB += node.Market.OfferDiskMiB;
        }
        foreach (var holder in _holders)
        {
            foreach (var partner in holder.Node.Market.Active.Where(a => a.TheyGrantDisk is not null).Select(a => a.Partner).Distinct())
            {
                if (_sim.Find(partner) is not { Online: true } issuerNode || !_byNode.TryGetValue(issuerNode, out var issuer)) continue;
                long granted = holder.Node.Market.Active.Where(a => a.Partner == partner).Sum(a => a.TheyGrantDisk?.MiB ?? 0);
                _edges.Add(new Edge(holder, issuer));
                GrantedMiB += granted;
                _classes[(int)holder.Class].ReceivedGrantMiB += granted;
                _classes[(int)issuer.Class].GivenGrantMiB += granted;
            }
        }
    }

    private void Play(int days)
    {
        var clock = _sim.Clock;
        long start = clock.Now;
        long steps = days * TimeSpan.TicksPerDay / _askInterval.Ticks;
        long stepsPerDay = TimeSpan.TicksPerDay / _askInterval.Ticks;
        for (long step = 0; step <= steps; step++)
        {
            clock.AdvanceTo(start + step * _askInterval.Ticks);
            var now = clock.GetUtcNow();
            foreach (var edge in _edges) Ask(edge);
            int slot = (int)(step % stepsPerDay);
            foreach (var holder in _holders)
                if (holder.Slot == slot && step > 0) Daily(holder, now);
            if (step % stepsPerDay == 0) Record((int)(step / stepsPerDay), now);
        }
    }

    /// <summary>The holder asks for what its Market says the issuer owes it; the issuer's Market caps what it issues.</summary>
    private void Ask(Edge edge)
    {
        var holder = edge.Holder.Node.Market;
        var issuer = edge.Issuer.Node.Market;
        // The node asks what is due, and on NoAllowance what the issuer allows, if that is due too.
        if (holder.CreditsDue(edge.Issuer.Node.Id) < 1) return;
        long amount = holder.CreditsDue(edge.Issuer.Node.Id, issuer.CreditAllowance(edge.Holder.Node.Id));
        if (amount < 1) return;
        issuer.CreditsIssued(edge.Holder.Node.Id, amount);
        holder.CreditsReceived(edge.Issuer.Node.Id, amount);
        ulong epoch = CreditEpoch.Of(_sim.Clock.GetUtcNow());
        int tokens = BitOperations.PopCount((ulong)amount);
        edge.Holder.Receive((edge.Issuer, epoch, false), amount, tokens);
        _held += amount;
        _issued += amount;
        _minted += tokens;
        _classes[(int)edge.Issuer.Class].Issued += amount;
        _classes[(int)edge.Holder.Class].Earned += amount;
    }

    /// <summary>A holder's day: drop what expired, buy a day of storage, and give away what would expire before tomorrow.</summary>
    private void Daily(Holder holder, DateTimeOffset now)
    {
        foreach (var key in holder.Lots.Keys.Where(k => CreditEpoch.Expires(k.Epoch) <= now).ToList())
        {
            long amount = holder.Lots[key].Amount;
            holder.Lots.Remove(key);
            _held -= amount;
            _expired += amount;
            _classes[(int)holder.Class].Expired += amount;
        }
        holder.Unmet = holder.Want;
        foreach (var key in holder.Lots.Keys.OrderBy(k => k.Epoch).ThenBy(k => k.Issuer.Index).ToList())
            Buy(holder, key, now);
        if (holder.Unmet > 0 && !holder.Wanting)
        {
            holder.Wanting = true;
            _wanting.Add(holder);
        }
        var tomorrow = now + TimeSpan.FromDays(1);
        foreach (var key in holder.Lots.Keys.Where(k => CreditEpoch.Expires(k.Epoch) <= tomorrow).ToList())
        {
            // A card for someone who will use it today: the first of a few who still want storage.
            for (int tries = 0; tries < 3 && holder.Lots.ContainsKey(key) && _wanting.Count > 0; tries++)
            {
                int pick = _random.Next(_wanting.Count);
                var taker = _wanting[pick];
                if (taker == holder) continue;
                if (taker.Unmet <= 0)
                {
                    taker.Wanting = false;
                    _wanting[pick] = _wanting[^1];
                    _wanting.RemoveAt(_wanting.Count - 1);
                    continue;
                }
                var lot = holder.Lots[key];
                long given = Math.Min(lot.Amount, taker.Unmet);
                int tokens = Take(holder, key, given);
                var gift = (key.Issuer, key.Epoch, true);
                taker.Receive(gift, given, tokens);
                _gifted += given;
                _classes[(int)holder.Class].Given += given;
                _classes[(int)taker.Class].Gifts += given;
                Buy(taker, gift, now);
            }
        }
    }

    /// <summary>Spends what <paramref name="holder"/> holds of one issuer and epoch on a day of storage there, within its want and the host's room.</summary>
    private void Buy(Holder holder, (Holder Issuer, ulong Epoch, bool Gift) key, DateTimeOffset now)
    {
        if (holder.Unmet <= 0 || !holder.Lots.TryGetValue(key, out var lot)) return;
        var host = key.Issuer;
        if (!CreditEpoch.Redeemable(key.Epoch, now)) return;
        host.Release(_sim.Clock.Now);
        long room = host.Node.Market.OfferDiskMiB - host.HostedMiB;
        long price = Math.Min(Math.Min(lot.Amount, holder.Unmet), room);
        if (price < Math.Min(lot.Amount, holder.Unmet)) _refused += Math.Min(lot.Amount, holder.Unmet) - Math.Max(0, price);
        if (price < 1) return;
        int tokens = Take(holder, key, price);
        host.Spent.TryGetValue(key.Epoch, out long spent);
        host.Spent[key.Epoch] = spent + tokens;
        host.Host(_sim.Clock.Now + TimeSpan.TicksPerDay, price);
        holder.Unmet -= price;
        _held -= price;
        _spent += price;
        var totals = _classes[(int)holder.Class];
        if (key.Gift) totals.SpentGifts += price;
        else totals.Spent += price;
    }

    /// <summary>
    /// Takes <paramref name="amount"/> out of a lot. Its tokens go with it in proportion: a lot
    /// of many small credits holds an exact subset; a short one is changed at the issuer, whose
    /// exchange spends the old tokens (PROTOCOL §10.4), which the proportion undercounts by at
    /// most one token per payment.
    /// </summary>
    private static int Take(Holder holder, (Holder Issuer, ulong Epoch, bool Gift) key, long amount)
    {
        var lot = holder.Lots[key];
        int tokens = amount == lot.Amount ? lot.Tokens : (int)Math.Max(1, Math.Ceiling((double)lot.Tokens * amount / lot.Amount));
        tokens = Math.Min(tokens, lot.Tokens);
        if (amount == lot.Amount) holder.Lots.Remove(key);
        else holder.Lots[key] = lot with { Amount = lot.Amount - amount, Tokens = Math.Max(1, lot.Tokens - tokens) };
        return tokens;
    }

    private void Record(int day, DateTimeOffset now)
    {
        ulong oldest = CreditEpoch.OldestRedeemable(now);
        long spentSet = 0, spentSetMax = 0, hosted = 0;
        foreach (var holder in _holders)
        {
            // The issuer forgets an epoch's spent set with the epoch (CreditIssuer.Prune).
            foreach (var epoch in holder.Spent.Keys.Where(e => e < oldest).ToList()) holder.Spent.Remove(epoch);
            long size = holder.Spent.Values.Sum();
            spentSet += size;
            spentSetMax = Math.Max(spentSetMax, size);
            holder.Release(_sim.Clock.Now);
            hosted += holder.HostedMiB;
        }
        Days.Add(new EconomyDay(day, _held, _issued, _spent, _gifted, _expired, _refused, _minted, spentSet, spentSetMax, hosted));
    }

    public void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        Report.Csv(directory, "economy-days.csv",
            ["day", "held_mib_days", "issued_mib_days", "spent_mib_days", "given_mib_days", "expired_mib_days", "refused_no_room_mib_days", "tokens_minted",
                "spent_set_tokens", "spent_set_max_per_issuer", "hosted_mib", "held_of_granted_days"],
            Days.Select(d => new[] { I(d.Day), I(d.Held), I(d.Issued), I(d.Spent), I(d.Given), I(d.Expired), I(d.Refused), I(d.Minted), I(d.SpentSet),
                I(d.SpentSetMax), I(d.HostedMiB), F(GrantedMiB == 0 ? 0 : (double)d.Held / GrantedMiB, 2) }));
        Report.Csv(directory, "economy.csv", ["class", "nodes", "disk_offered_mib", "disk_granted_mib", "disk_received_mib", "issued_mib_days", "earned_mib_days",
                "spent_own_mib_days", "given_mib_days", "gifts_mib_days", "spent_gifts_mib_days", "expired_mib_days", "held_mib_days", "earned_of_issued",
                "stored_mib_per_node", "run_earned_mib_days_per_node_hour"],
            Classes());
        int days = Math.Max(1, Days.Count - 1);
        File.WriteAllText(Path.Combine(directory, "economy.svg"), Svg.Lines(
            $"Credits over {days} days ({_sim.Options.Nodes.ToString("N0", CultureInfo.InvariantCulture)} nodes), in days of the disk granted", "day", "MiB·days / MiB granted",
            [new Series("held", [.. Days.Select(d => ((double)d.Day, Per(d.Held)))]),
             new Series("issued, per day", [.. Daily(d => d.Issued)]),
             new Series("spent, per day", [.. Daily(d => d.Spent)]),
             new Series("expired, per day", [.. Daily(d => d.Expired)])]));
    }

    /// <summary>What the economy's invariants came to, for the summary.</summary>
    public IEnumerable<(string Key, string Value)> Summary()
    {
        if (Days.Count == 0) yield break;
        var last = Days[^1];
        yield return ("economy_days", I(last.Day));
        yield return ("economy_agreements_with_disk", I(_edges.Count));
        yield return ("economy_granted_mib", I(GrantedMiB));
        yield return ("economy_held_peak_of_granted_days", F(Days.Max(d => Per(d.Held)), 2));
        yield return ("economy_held_end_of_granted_days", F(Per(last.Held), 2));
        yield return ("economy_issued_of_granted_days", F(Per(last.Issued), 2));
        yield return ("economy_spent_share", F(last.Issued == 0 ? 0 : (double)last.Spent / last.Issued));
        yield return ("economy_expired_share", F(last.Issued == 0 ? 0 : (double)last.Expired / last.Issued));
        yield return ("economy_given_share", F(last.Issued == 0 ? 0 : (double)last.Given / last.Issued));
        yield return ("economy_refused_no_room_share", F(last.Issued == 0 ? 0 : (double)last.Refused / last.Issued));
        double honest = RunEarnedPerNodeHour(AgentClass.Honest);
        foreach (var cls in new[] { AgentClass.FreeRider, AgentClass.Whitewasher, AgentClass.UnderDeliverer })
            yield return ($"economy_run_earned_{cls.ToString().ToLowerInvariant()}_of_honest", F(honest == 0 ? 0 : RunEarnedPerNodeHour(cls) / honest, 2));
        yield return ("economy_spent_set_max_per_issuer", I(Days.Max(d => d.SpentSetMax)));
        yield return ("economy_spent_set_end", I(last.SpentSet));
        yield return ("economy_spent_set_peak", I(Days.Max(d => d.SpentSet)));
    }

    private IEnumerable<(double, double)> Daily(Func<EconomyDay, long> cumulative)
    {
        for (int i = 1; i < Days.Count; i++) yield return (Days[i].Day, Per(cumulative(Days[i]) - cumulative(Days[i - 1])));
    }

    private double Per(long mibDays) => GrantedMiB == 0 ? 0 : (double)mibDays / GrantedMiB;

    private IEnumerable<string[]> Classes()
    {
        int days = Math.Max(1, Days.Count - 1);
        foreach (var cls in Enum.GetValues<AgentClass>())
        {
            var t = _classes[(int)cls];
            if (t.Nodes == 0) continue;
            long held = _holders.Where(h => h.Class == cls).Sum(h => h.Lots.Values.Sum(l => l.Amount));
            yield return [cls.ToString(), I(t.Nodes), I(t.OfferedMiB), I(t.GivenGrantMiB), I(t.ReceivedGrantMiB), I(t.Issued), I(t.Earned), I(t.Spent),
                I(t.Given), I(t.Gifts), I(t.SpentGifts), I(t.Expired), I(held), F(t.Issued == 0 ? 0 : (double)t.Earned / t.Issued, 3),
                F((double)(t.Spent + t.SpentGifts) / days / t.Nodes, 1), F(RunEarnedPerNodeHour(cls), 1)];
        }
    }

    /// <summary>
    /// Over the run's window, while agreements still formed and ended: the disk credits a class
    /// earned per node-hour online. A node whose agreements keep ending after their trial (a
    /// cheater, a whitewasher's fresh identities) would earn a day ahead with each new one if the
    /// day ahead were paid at once; this is where that shows.
    /// </summary>
    private double RunEarnedPerNodeHour(AgentClass cls)
    {
        var nodes = _sim.All.Where(n => n.Agent.Class == cls).ToList();
        double hours = nodes.Sum(n => n.Stats.WindowSeconds) / 3600;
        return hours == 0 ? 0 : nodes.Sum(n => n.Stats.CreditsEarnedMiBDays) / hours;
    }

    private static string I(long value) => value.ToString(CultureInfo.InvariantCulture);
    private static string F(double value, int decimals = 4) => value.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    private sealed record Edge(Holder Holder, Holder Issuer);

    private sealed record Lot(long Amount, int Tokens);

    /// <summary>A node in its two roles here: the wallet it holds and, as an issuer, its spent set and what it hosts.</summary>
    private sealed class Holder(SimNode node, long want, int index, int slot)
    {
        private readonly Queue<(long Until, long MiB)> _hosted = new();

        public SimNode Node { get; } = node;
        public AgentClass Class => Node.Agent.Class;
        public long Want { get; } = want;
        public int Index { get; } = index;
        /// <summary>The ask step of the day at which it buys its storage.</summary>
        public int Slot { get; } = slot;
        public long Unmet { get; set; }
        /// <summary>Whether it is on the list of those who take cards.</summary>
        public bool Wanting { get; set; }
        public Dictionary<(Holder Issuer, ulong Epoch, bool Gift), Lot> Lots { get; } = [];
        /// <summary>As an issuer: tokens spent per epoch still taken.</summary>
        public Dictionary<ulong, long> Spent { get; } = [];
        public long HostedMiB { get; private set; }

        public void Receive((Holder Issuer, ulong Epoch, bool Gift) key, long amount, int tokens) =>
            Lots[key] = Lots.TryGetValue(key, out var lot) ? new Lot(lot.Amount + amount, lot.Tokens + tokens) : new Lot(amount, tokens);

        public void Host(long until, long mib)
        {
            _hosted.Enqueue((until, mib));
            HostedMiB += mib;
        }

        public void Release(long now)
        {
            while (_hosted.TryPeek(out var stored) && stored.Until <= now)
            {
                HostedMiB -= _hosted.Dequeue().MiB;
            }
        }
    }

    private sealed class Totals
    {
        public int Nodes;
        public long OfferedMiB, GivenGrantMiB, ReceivedGrantMiB, Issued, Earned, Spent, Given, Gifts, SpentGifts, Expired;
    }
}

public readonly record struct EconomyDay(int Day, long Held, long Issued, long Spent, long Given, long Expired, long Refused, long Minted,
    long SpentSet, long SpentSetMax, long HostedMiB);
