#!/usr/bin/python3
"""The Quid testbed: real quid processes on emulated hosts with real bandwidth limits.

Mininet (Debian's package) builds the hosts, each in a network namespace of its own, on Linux
bridges, each host's link capped with htb (TCLink). The whole run happens inside `unshare -n`
(run.sh does that), so the bridges and hosts live in a namespace of the testbed's own and
nothing touches the machine's interfaces. Addresses come from the benchmarking range of RFC 2544:
public hosts in 198.18.0.0/16, the LAN behind the NAT host in 198.19.0.0/24.

The nodes run with probes on and real grants, and the script asserts what the seed promises:
requests met, downloads at the granted rate, no verdicts against honest nodes, liars cut,
free-riders starved, churn survived, NAT'd nodes trading. It prints one row per assertion and
a last line "N passed, N failed".

Run it with run.sh (which builds the Native AOT quid first), not by hand.
"""

import argparse
import hashlib
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import datetime

# Mininet's API lives in Debian's python3-mininet, for /usr/bin/python3 only.
import mininet.net
from mininet.link import TCLink
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.nodelib import NAT, LinuxBridge

# At start Mininet raises machine-wide limits (socket buffers, ARP cache, PTYs) where it can: the
# testbed changes nothing outside its own namespace, and 30 hosts need none of it.
mininet.net.fixLimits = lambda: None

KBPS_PER_MBIT = 1000
WEB_IP = '198.18.0.1'
NAT_PUBLIC_IP = '198.18.255.254'
LAN = '198.19.0.0/24'
LAN_GATEWAY = '198.19.0.1'
LINK_PORT = 7843
# The exits here must reach the web server, which sits in the benchmarking range that the default
# policy refuses as private: the testbed allows it explicitly, and nothing else.
EXIT_POLICY = 'accept 198.18.0.0/15:*, reject *:*'
FILES = {'hello': 1024, 'download': 1024 * 1024}
# A grant counts whole 2048-byte cells (docs/PROTOCOL.md, 7.3), of which 1910 bytes are a stream's
# data: a client served at exactly its grant receives this share of it as data.
DATA_PER_CELL = 1910 / 2048
REQUEST_KBPS = 1024


def block_at_most(kbps):
    """The largest offer block (16·2^k kbps) not above kbps."""
    k = max(0, int(math.floor(math.log2(max(16, kbps) / 16))))
    return 16 * 2 ** k


class TestbedNAT(NAT):
    """Mininet's NAT node without its edit of the machine's /etc/network/interfaces."""

    def setManualConfig(self, intf):
        pass


class Node:
    """One quid node on one emulated host."""

    def __init__(self, name, cap_mbit, offer, request, role='honest', behind_nat=False):
        self.name = name
        self.cap_mbit = cap_mbit
        self.offer = offer
        self.request = request
        self.role = role
        self.behind_nat = behind_nat
        self.host = None
        self.ip = None
        self.id = None
        self.proc_pid = None
        self.client = None

    @property
    def honest(self):
        return self.role in ('honest', 'twin')


# Assertions the node does not meet yet, each with what is missing: they are run and shown as
# FAIL like any other, but do not fail the run, so that the suite stays a guard for everything
# else. One that starts to pass is reported, to be removed from here.
KNOWN_GAPS = {
    'nat-ultrapeer': 'when the first ultrapeer is a node behind the NAT, its neighbours there cannot reach it (miniupnpd '
                     'forwards only what arrives from outside), and having heard of an ultrapeer they did not promote in '
                     'its place for minutes: they stayed unmet meanwhile (2 of 10 in 2 runs of 10; once in stop 36\'s 12). '
                     'Since stop 37 one failed dial to a peer at the node\'s own public address puts it out of reach '
                     '(PROTOCOL 5.3), which was not the whole gap: in stop 38 q4 and q13 behind the NAT held 3 of their 4 '
                     'partners from their first seconds until each became an ultrapeer itself, 2 and 4 minutes in, and met '
                     'its request within 20 s after (Information logs, not traced)',
    'idle-nodes': 'a node behind the NAT that carried nothing for others in the whole run, while an honest public node '
                  'carried nothing either: whose circuits cross a node is its partners\' draw, among partners drawn without '
                  'regard to their capacity (SIMULATION.md, "Next hops drawn by their offer"). Since stop 49 a probe\'s '
                  'echoes no longer count as carrying; in 9 of its 12 runs a node behind the NAT carried less than 200 KB '
                  'through the two minutes of load, and in 8 an honest public node did too (nodes of 3 to 76 Mbit/s); '
                  'over the whole run the node behind the NAT that carried least had 12 KB to 12.8 MB, and in 3 runs an honest '
                  'public node (3.4 to 22.7 Mbit/s) carried nothing',
    'rate-at-least-grant': 'a relay\'s grant from its next hop carries every circuit it extends there; since stop 36 a '
                           'relay refuses to extend onto a next hop whose grant its neighbours\' circuits in use already '
                           'take (PROTOCOL 6.1): the row passed 5 of the 6 runs of stop 36\'s final rules (the sixth, 0.93, '
                           'exited at the over-claimer, whose grants promise what its link cannot carry), after failing 4 of 9 '
                           '(0.90 to 0.97) with its earlier ones; in stop 37 q1 got 0.87 through the 3.9 Mbit/s exit q7, whose '
                           'downlink its own downloads on lent capacity fill, and three clients whose first hop was the '
                           'over-claimer 0.00 to 0.65 until a first hop that times out was set aside (PROTOCOL 6.5); a '
                           'client\'s own probe of its first hop also draws on its grant; in stop 48 it failed 3 of 9 '
                           'Debug runs, twice exiting at the over-claimer and once (0.91) at a 2.3 Mbit/s exit whose own '
                           'probes filled its uplink; with probes paced 2 of 11: through the over-claimer as a middle hop, and '
                           'at a 2.3 Mbit/s exit whose own downloads on lent capacity filled its downlink; in stop 49, '
                           'with probes paced again and a next hop counted at its measure where that is less than its '
                           'grant, 4 of 12: three where slow downloads exited at or crossed the over-claimer (its partners\' '
                           'probes see it deliver, each alone), and one through a 3.4 Mbit/s middle hop (TESTBED.md)',
    'liar-lent': 'above its class\'s upper quartile: partners lend their idle capacity to whichever '
                 'partner has traffic waiting, the over-claimer\'s own downloads included, so what it receives per byte it '
                 'carries can land above most honest nodes of its capacity (twice in stop 34\'s runs, once in stop 38\'s five: 2.48 '
                 'against an upper quartile of 2.14, honest 0.94-2.73, 45 of its 85 MB from one partner that granted it '
                 '256 kbps). Lending that follows what a partner gives, not its traffic, is what is missing; a ceiling on '
                 'lending tried in stop 38 held every client to its grant (TESTBED.md). Since stop 49 probe echoes are not '
                 'counted as carried or received, and honest nodes that carried less than a mebibyte are left out; in '
                 'its 12 runs it was above the quartile once (2.53 against 1.56, its downloads at 1,793 kbps against '
                 'their mean of 759); once more, with 4 partners whose circuits passed it by, it carried 14 KB for '
                 'others and downloaded at 3,391 kbps on their idle capacity against its peers\' mean of 472, as '
                 'any idle node may. Above every honest node of its capacity was a failure until stop 49: while probe '
                 'echoes counted, those it answered to its many probers counted as carried, and it never came within '
                 '0.68 of the largest in stop 48\'s nine unpaced runs; without them it came above every one once in '
                 '25 runs of stop 49 (3.58 against at most 2.27, downloading at 2,392 kbps against their mean of 684)',
    'verdict-at-nothing': 'an honest partner measured at nothing by two probes in a row, 10 s apart, and shunned. The CI run of '
                          'stop 46 and 3 of 4 Debug runs of stop 47 traced it: two probes of one partner shared one failed '
                          'circuit build (fixed: one probe at a time), and CREATEs waited 10 to 13 s in kernel send buffers '
                          '(fixed: TCP_NOTSENT_LOWAT and an urgent lane, PROTOCOL 2.2). After both, 1 run of 9 still had it: '
                          'q2 on q23, 44 s in, before the load began, while q23 measured q2 at 88 and 1232 kbps (Information '
                          'logs, not traced). Stop 48 traced one (q23 on q2): q23\'s own probes had a partner echo 2 '
                          'Mbit/s onto its 3 Mbit/s downlink, and q2\'s CREATED waited behind them; since stop 49 probes '
                          'pace their echoes at twice the grant, and none of its 12 runs had this verdict (TESTBED.md). '
                          'A verdict at any measure above nothing is a failure',
    'latency-under-load': 'a survivor\'s page can wait seconds behind a full link on its way, where cells queue first in '
                          'first out below the relays\' per-circuit queues: its own downlink, full of its downloads on its '
                          'partners\' idle capacity and a probe\'s echoes, or the over-claimer\'s, when its circuit crosses it '
                          '(in 5 of the 57 runs kept since 2026-12-04 the last survivor had its page 12 to 17 s after the first; '
                          'since stop 34 a stream whose exit has not answered in 5 s moves to another circuit; since stop 37 a '
                          'first hop that refuses two next hops as full is passed over, after a survivor waited 18.7 s for a '
                          'circuit insisted through one; traced in TESTBED.md). Since stop 46 a circuit\'s sender keeps '
                          'only 48 to 64 cells queued on its path (Vegas congestion control, PROTOCOL 6.4), where a '
                          'download used to fill 2 MiB, 40 s of a 420 kbit/s path; since stop 47 a link keeps its backlog in '
                          'its own queue, not megabytes of kernel buffer, and sends circuit builds before the bulk (PROTOCOL '
                          '2.2): kept here until it has passed more runs',
}


class Results:
    def __init__(self):
        self.rows = []

    def check(self, scenario, what, ok, measured, gap=None, at=None):
        """Records an assertion; `at` puts its row at that place in the table rather than last."""
        known = gap in KNOWN_GAPS
        self.rows.insert(len(self.rows) if at is None else at, (scenario, what, bool(ok), measured, gap if known else None))
        label = 'pass' if ok else 'FAIL' + (' (known gap)' if known else '')
        print('  %-6s %s: %s' % (label, what, measured), flush=True)

    @property
    def unexpected_failures(self):
        return [r for r in self.rows if not r[2] and not r[4]]

    def table(self):
        lines = ['', '| scenario | assertion | result | measured |', '|---|---|---|---|']
        for scenario, what, ok, measured, gap in self.rows:
            lines.append('| %s | %s | %s | %s |' % (scenario, what, 'pass' if ok else 'FAIL (known gap)' if gap else 'FAIL', measured))
        for scenario, what, ok, measured, gap in self.rows:
            if gap and not ok:
                lines.append('known gap, %s: %s' % (what, KNOWN_GAPS[gap]))
            elif gap and ok:
                lines.append('known gap passed this run (remove it from KNOWN_GAPS once it passes every run): %s' % what)
        passed = sum(1 for r in self.rows if r[2])
        lines.append('')
        lines.append('%d passed, %d failed' % (passed, len(self.rows) - passed))
        return '\n'.join(lines)


class Testbed:
    def __init__(self, args):
        self.args = args
        self.quid = os.path.abspath(args.quid)
        self.work = os.path.abspath(args.work)
        self.rng = random.Random(args.seed)
        self.nodes = []
        self.results = Results()
        self.net = None
        self.history = []
        self.last_observed = 0.0

    # ---- Topology ----

    def plan(self):
        """Caps spread log-uniformly over 2–100 Mbit/s; offers and requests the largest blocks that fit."""
        n = self.args.nodes
        if n < 12:
            raise SystemExit('testbed: --nodes must be at least 12 (seeds, the NAT third, a liar, its twin, a free-rider and victims)')
        caps = [round(2 * (50 ** (i / (n - 1))), 1) for i in range(n)]
        self.rng.shuffle(caps)
        for i in range(n):
            name = 'q%d' % (i + 1)
            cap = caps[i]
            # A relay carries each byte in and out, and its own downloads come in beside them: an
            # honest node offers at most half its link. Every node asks for the same 1024 kbps (four
            # partners at 256): with requests that differ, today's market lets a large requester
            # take a small node's whole offer for a quarter of it (docs/TESTBED.md, "what it found").
            offer = block_at_most(cap * KBPS_PER_MBIT / 2)
            request = REQUEST_KBPS
            self.nodes.append(Node(name, cap, offer, request))
        # The first three public nodes are everyone's way in.
        for node in self.nodes[3:3 + n // 3]:
            node.behind_nat = True
        public = [x for x in self.nodes[3:] if not x.behind_nat]
        liar, twin, freerider = public[0], public[1], public[2]
        # The over-claimer and its honest twin share a 4 Mbit/s link; the liar offers four times it.
        liar.cap_mbit = twin.cap_mbit = 4
        twin.offer = block_at_most(4 * KBPS_PER_MBIT / 2)
        liar.offer = 16384  # the block nearest four times its link
        liar.role, twin.role = 'liar', 'twin'
        freerider.cap_mbit = 20
        freerider.offer, freerider.role = 16, 'freerider'

    def netem_available(self):
        """Whether this kernel has netem, which TCLink needs for delay: tried on a scratch namespace's loopback."""
        probe = subprocess.run(['unshare', '-n', 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms'],
                               capture_output=True)
        return probe.returncode == 0

    def build(self):
        # Latency where the kernel can add it; bandwidth limits only where it cannot (no netem).
        self.delay = '%dms' % self.args.delay_ms if self.args.delay_ms and self.netem_available() else None
        print('testbed: links %s' % ('delayed %s each way' % self.delay if self.delay
                                      else 'without added latency (this kernel has no netem)' if self.args.delay_ms
                                      else 'without added latency (--delay-ms 0)'), flush=True)
        net = Mininet(switch=LinuxBridge, controller=None, link=TCLink, ipBase='198.18.0.0/16', autoSetMacs=False)
        public_switch = net.addSwitch('s1')
        lan_switch = net.addSwitch('s2')
        web = net.addHost('web', ip=WEB_IP + '/16')
        net.addLink(web, public_switch)
        nat = net.addHost('nat0', cls=TestbedNAT, ip=LAN_GATEWAY + '/24', subnet=LAN, inNamespace=True)
        net.addLink(nat, lan_switch)
        net.addLink(nat, public_switch, params1={'ip': NAT_PUBLIC_IP + '/16'})
        public_index, lan_index = 1, 10
        for node in self.nodes:
            if node.behind_nat:
                lan_index += 1
                node.ip = '198.19.0.%d' % lan_index
                host = net.addHost(node.name, ip=node.ip + '/24', defaultRoute='via ' + LAN_GATEWAY)
                net.addLink(host, lan_switch, bw=node.cap_mbit, delay=self.delay)
            else:
                public_index += 1
                node.ip = '198.18.1.%d' % public_index
                host = net.addHost(node.name, ip=node.ip + '/16')
                net.addLink(host, public_switch, bw=node.cap_mbit, delay=self.delay)
            node.host = host
        net.start()
        self.net = net
        self.web = web
        self.nat = nat

    def start_port_mapping(self):
        """miniupnpd on the NAT host, as portmap-check.sh runs it, beside Mininet's masquerade."""
        here = os.path.dirname(os.path.abspath(__file__))
        lan_if, wan_if = self.nat.intfList()[0].name, self.nat.intfList()[1].name
        # miniupnpd's chains must exist before it starts; forwarding itself stays with Mininet's
        # iptables rules, so this table accepts and only jumps to the chains miniupnpd fills.
        ruleset = os.path.join(self.work, 'nat.nft')
        with open(ruleset, 'w') as f:
            f.write('''table inet filter {
  chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
''')
        self.nat.cmd('nft -f %s' % ruleset)
        # miniupnpd maps nothing while its WAN address is in a reserved range (198.18/15 is) unless
        # a STUN server outside confirms it: the web host answers.
        self.web.cmd("/usr/bin/python3 '%s/stun-responder.py' %s > %s/stun.log 2>&1 &" % (here, WEB_IP, self.work))
        with open(os.path.join(here, 'miniupnpd.conf.template')) as f:
            conf = f.read()
        for key, value in {'@EXT_IF@': wan_if, '@LAN_IF@': lan_if, '@LAN_NET@': LAN, '@STUN_HOST@': WEB_IP,
                           '@WORK@': self.work, '@UUID@': '5ba1e0c0-7e57-4bed-8000-000000000001'}.items():
            conf = conf.replace(key, value)
        with open(os.path.join(self.work, 'miniupnpd.conf'), 'w') as f:
            f.write(conf)
        self.nat.cmd('/usr/sbin/miniupnpd -f %s/miniupnpd.conf -d -P %s/miniupnpd.pid > %s/miniupnpd.log 2>&1 &' % ((self.work,) * 3))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            log = os.path.join(self.work, 'miniupnpd.log')
            if os.path.exists(log):
                with open(log) as f:
                    if 'Port forwarding is now enabled' in f.read():
                        return True
            time.sleep(0.2)
        return False

    # ---- Processes ----

    def data_dir(self, node):
        return os.path.join(self.work, node.name)

    def start_web(self):
        root = os.path.join(self.work, 'www')
        os.makedirs(root, exist_ok=True)
        self.hashes = {}
        rng = random.Random(self.args.seed + 1)
        for name, size in FILES.items():
            data = rng.randbytes(size)
            with open(os.path.join(root, name), 'wb') as f:
                f.write(data)
            self.hashes[name] = hashlib.sha256(data).hexdigest()
        self.web.cmd('cd %s && /usr/bin/python3 -m http.server 80 --bind %s > %s/web.log 2>&1 &' % (root, WEB_IP, self.work))

    def start_node(self, node, peers):
        directory = self.data_dir(node)
        os.makedirs(directory, exist_ok=True)
        listen = ('0.0.0.0:%d' if node.behind_nat else node.ip + ':%d') % LINK_PORT
        args = [self.quid, 'run', '--data-dir', directory, '--listen', listen,
                '--offer', str(node.offer), '--request', str(node.request),
                '--socks', '127.0.0.1:1080', '--http-proxy', 'off', '--control', '127.0.0.1:9051',
                '--exit-policy', EXIT_POLICY, '--log-format', 'json', '--log-level', self.args.node_log_level]
        for peer in peers:
            args += ['--peer', '%s:%d' % (peer.ip, LINK_PORT)]
        command = ' '.join("'%s'" % a for a in args)
        node.host.cmd('%s >> %s/node.log 2>&1 & echo $! > %s/pid' % (command, directory, directory))
        with open(os.path.join(directory, 'pid')) as f:
            node.proc_pid = int(f.read().strip())

    def quid_json(self, node, *command):
        out = node.host.cmd("'%s' %s --data-dir '%s' --json 2>/dev/null" % (self.quid, ' '.join(command), self.data_dir(node)))
        # The host's shell is a terminal, so .NET's console writes mode switches around the JSON.
        out = re.sub(r'\x1b(\[[0-9;?]*[a-zA-Z]|[=>])', '', out).strip()
        try:
            return json.loads(out) if out else None
        except ValueError:
            return None

    def start_client(self, node, file_name):
        """A download loop on the node's host, through its SOCKS proxy, logging one JSON line per download."""
        log = os.path.join(self.data_dir(node), 'downloads.jsonl')
        node.client = log
        script = os.path.abspath(__file__)
        node.host.cmd("/usr/bin/python3 '%s' client --url http://%s/%s --sha256 %s --log '%s' > /dev/null 2>&1 & echo $! > '%s/client.pid'"
                      % (script, WEB_IP, file_name, self.hashes[file_name], log, self.data_dir(node)))

    def stop_client(self, node):
        terminate(os.path.join(self.data_dir(node), 'client.pid'))

    def downloads(self, node):
        if not node.client or not os.path.exists(node.client):
            return []
        with open(node.client) as f:
            return [json.loads(line) for line in f if line.strip()]

    # ---- Observation ----

    def observe(self):
        """Every node's status and ledger, kept with the time they were read."""
        now = time.time()
        snapshot = {}
        for node in self.nodes:
            snapshot[node.name] = (self.quid_json(node, 'status'), self.quid_json(node, 'ledger') or [])
        self.history.append((now, snapshot))
        with open(os.path.join(self.work, 'history.jsonl'), 'a') as f:
            f.write(json.dumps({'time': now, 'nodes': snapshot}) + '\n')
        self.last_observed = time.monotonic()
        return snapshot

    def pause(self, seconds):
        """Waits, reading every node's state every few seconds meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if time.monotonic() - self.last_observed >= self.args.observe_every:
                self.observe()
            time.sleep(max(0.0, min(1.0, end - time.monotonic())))

    def wait(self, condition, timeout):
        """Observes until condition(snapshot) holds or the deadline passes; returns the seconds it took, or None."""
        start = time.monotonic()
        while True:
            if condition(self.observe()):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                return None
            self.pause(max(0.0, self.args.observe_every - (time.monotonic() - self.last_observed)))

    def ledger(self, node):
        return self.history[-1][1][node.name][1] if self.history else []

    def status(self, node):
        return self.history[-1][1][node.name][0] if self.history else None

    # ---- Scenarios ----

    def run(self):
        self.plan()
        self.build()
        print('testbed: %d nodes (%d behind NAT); caps in Mbit/s: %s' % (
            len(self.nodes), sum(1 for n in self.nodes if n.behind_nat),
            ' '.join('%s=%g' % (n.name, n.cap_mbit) for n in self.nodes)), flush=True)
        self.start_web()
        self.mapping_ready = self.start_port_mapping()
        self.started_wall = time.time()
        seeds = self.nodes[:3]
        for node in seeds:
            self.start_node(node, [s for s in seeds if s is not node])
        for node in self.nodes[3:]:
            self.start_node(node, seeds)
        for node in self.nodes:
            deadline = time.monotonic() + 20
            while node.id is None and time.monotonic() < deadline:
                node.id = (self.quid_json(node, 'id') or {}).get('id')
                if node.id is None:
                    time.sleep(0.2)
        self.by_id = {n.id: n for n in self.nodes if n.id}
        self.scenario_honest()
        self.scenario_liar()
        self.check_rates()
        self.scenario_freerider()
        self.scenario_nat()
        self.scenario_churn()
        self.check_nat_trade()

    def requesters(self):
        return [n for n in self.nodes if n.request > 0]

    def scenario_honest(self):
        print('\n== 1. honest network, full load', flush=True)
        honest = [n for n in self.requesters() if n.honest]
        met_at = {}

        def all_met(snapshot):
            for node in honest:
                status = snapshot[node.name][0]
                if node.name not in met_at and status and status.get('requestMet'):
                    met_at[node.name] = time.time() - self.started_wall
            return len(met_at) == len(honest)

        self.wait(all_met, 120)
        times = sorted(met_at.values())
        unmet = [n for n in honest if met_at.get(n.name, float('inf')) > 120]
        # The known gap is about nodes behind the NAT; an unmet node outside it is a failure.
        self.results.check('honest', 'every honest request met within 2 min', not unmet,
                           '%d/%d met; median %.0f s, slowest %.0f s after start; unmet: %s' % (
                               len(met_at), len(honest), times[len(times) // 2] if times else float('nan'), times[-1] if times else float('nan'),
                               ', '.join('%s%s' % (n.name, ' (behind the NAT)' if n.behind_nat else '') for n in unmet) or 'none'),
                           gap='nat-ultrapeer' if all(n.behind_nat for n in unmet) else None)
        # Everyone downloads at once, over and over, a file sized to last several seconds at its grant.
        self.load_started = time.time()
        for node in self.requesters():
            self.start_client(node, 'download')
        self.pause(self.args.load_seconds)
        self.load_ended = time.time()
        failed, wrong, total = 0, 0, 0
        for node in honest:
            downloads = self.downloads(node)
            total += len(downloads)
            failed += sum(1 for d in downloads if not d.get('ok'))
            wrong += sum(1 for d in downloads if d.get('error') == 'sha256')
        self.results.check('honest', 'every download\'s sha256 matches', wrong == 0 and total > 0,
                           '%d downloads, %d failed, %d with a wrong sha256' % (total, failed, wrong))
        # Rates are judged once the downloads begun under load have ended (check_rates, after the
        # liar's scenario), so that a client whose first download outlasts the load is measured
        # on it rather than counted at nothing; the row keeps its place here.
        self.rate_row = len(self.results.rows)
        # From honest probers, as TESTBED.md says: the liar's own probes go out behind the link it
        # oversold, so they judge its partners by its congestion, not by what they deliver.
        verdicts = self.verdicts_against(lambda n: n.honest, judges=lambda n: n.honest)
        # Only a verdict at nothing (two probes that saw not a byte) is the known gap; any other is a failure.
        self.results.check('honest', 'no honest node receives a verdict from an honest node', not verdicts, '; '.join(verdicts) or 'none',
                           gap='verdict-at-nothing' if all(', delivered 0 of ' in v for v in verdicts) else None)

    def client_rate(self, node):
        """kbps while bytes flowed, over the whole downloads begun while every client was loading."""
        done = [d for d in self.downloads(node) if d.get('ok') and self.load_started <= d['start'] <= self.load_ended]
        seconds = sum(d['transfer_seconds'] for d in done)
        return sum(d['bytes'] for d in done) * 8 / 1000 / seconds if seconds else 0.0

    def check_rates(self):
        rows = [(n.name, self.client_rate(n), n.request / 4 * DATA_PER_CELL) for n in self.requesters() if n.honest]
        ratios = sorted(r / g for _, r, g in rows)
        low = [(n, r, g) for n, r, g in rows if r < g]
        print('\n== 1. honest network, full load (rates, now that the downloads begun under load have ended)', flush=True)
        self.results.check('honest', 'each client receives at least its granted rate (in data: 1910 of each 2048-byte cell)', not low,
                           'received/granted min %.2f, median %.2f; below: %s' % (
                               ratios[0], ratios[len(ratios) // 2], ', '.join('%s %.0f<%.0f kbps' % x for x in low) or 'none'),
                           gap='rate-at-least-grant', at=self.rate_row)

    def verdicts_against(self, which, judges=lambda n: True):
        """Every verdict other than Good that a node `judges` picks ever held against a node that `which` picks."""
        by_name = {n.name: n for n in self.nodes}
        found = {}
        for _, snapshot in self.history:
            for name, (_, ledger) in snapshot.items():
                if name in by_name and not judges(by_name[name]):
                    continue
                for row in ledger:
                    partner = self.by_id.get(row.get('partner'))
                    if partner and which(partner) and row.get('verdict') not in ('Good', None):
                        found[(name, partner.name)] = '%s on %s: %s, delivered %d of %d kbps' % (
                            name, partner.name, row['verdict'], round(row.get('deliveredKbps') or 0), row.get('promisedKbps', 0))
        return list(found.values())

    def scenario_liar(self):
        print('\n== 2. over-claimer', flush=True)
        liar = next(n for n in self.nodes if n.role == 'liar')
        self.pause(max(0, self.args.liar_seconds - (time.time() - self.load_ended)))

        def rows_about(node, snapshot):
            return [(name, row) for name, (_, ledger) in snapshot.items() if name != node.name
                    for row in ledger if row.get('partner') == node.id]

        # Each partner is judged from its own first probe of the liar: until then it has measured
        # nothing, and a partner met late (the liar's claim draws new ones all through the load)
        # holds only the small trial grant every newcomer gets. A partner is done when its grant
        # is at most 1.25x what it measured, or it has ended the agreement (a grant of the smallest
        # block stays above a measured 0 until then).
        first_probes = {}
        for _, snapshot in self.history:
            for name, row in rows_about(liar, snapshot):
                if row.get('lastProbe'):
                    first_probes[name] = min(first_probes.get(name, float('inf')), parse_time(row['lastProbe']))
        cut_after = {}
        for name, probed in first_probes.items():
            for at, snapshot in self.history:
                rows = [row for prober, row in rows_about(liar, snapshot) if prober == name and row.get('weGrantKbps', 0) > 0]
                if at >= probed and all(row['weGrantKbps'] <= 1.25 * (row.get('deliveredKbps') or 0) for row in rows):
                    cut_after[name] = at - probed
                    break
        slowest = max(cut_after, key=cut_after.get) if cut_after else None
        # One that first probed it less than 60 s before the last reading has had no full minute.
        last_reading = self.history[-1][0]
        uncut = set(first_probes) - set(cut_after)
        never = sorted(n for n in uncut if last_reading - first_probes[n] >= 60)
        pending = sorted(uncut - set(never))
        # As this row read until 2026-12-05: the first moment every partner's grant was within
        # 1.25x of its measure, probed or not, counted from the first probe by anyone. Shown, not judged.
        first_probe = min(first_probes.values()) if first_probes else None
        all_cut_at = None
        for at, snapshot in self.history:
            if first_probe and at >= first_probe and all(
                    row.get('weGrantKbps', 0) <= 1.25 * (row.get('deliveredKbps') or 0) for _, row in rows_about(liar, snapshot) if row.get('weGrantKbps', 0) > 0):
                all_cut_at = at
                break
        measured = sorted({(round(row.get('deliveredKbps') or 0), row.get('promisedKbps', 0)) for _, snapshot in self.history
                           for _, row in rows_about(liar, snapshot) if row.get('lastProbe')})
        final = [row for _, row in rows_about(liar, self.history[-1][1])]
        granted = sum(row.get('weGrantKbps', 0) for row in final)
        self.results.check('liar', 'each partner cuts its grant within 60 s of its first probe, to at most 1.25x what it delivers',
                           bool(cut_after) and not never and cut_after[slowest] <= 60,
                           'first probe %s after start; %d partners probed it, each cut within %s of its first probe%s%s; all at once %s after the first probe; '
                           'its partners measured %s kbps delivered (of promised); granted to it at the end %d kbps' % (
                               '%.0f s' % (first_probe - self.started_wall) if first_probe else 'never', len(first_probes),
                               '%.0f s' % cut_after[slowest] if slowest else '-', ' (slowest %s)' % slowest if slowest else '',
                               ('; never cut: %s' % ', '.join(never) if never else '') + ('; first probed within the last minute, not cut yet: %s' % ', '.join(pending) if pending else ''),
                               '%.0f s' % (all_cut_at - first_probe) if all_cut_at and first_probe else 'never',
                               ', '.join('%d of %d' % m for m in measured[:6]) or 'nothing', granted))
        # Against honest nodes of its real capacity (links within a factor of two of its own), per
        # unit it gives, as the simulator measures it (SIMULATION.md, "Two definitions were wrong"):
        # the liar's many partners run their circuits through it, so it carries more for others
        # than its honest peers do, and a node that gets exactly what it gives then holds more
        # grants than they do. What lying would earn is more received for the same given: more
        # than most honest nodes of its capacity get, so it is held to their upper quartile
        # (TESTBED.md, "The over-claimer's yardstick", says why not their median).
        peers = [n for n in self.nodes if n.honest and liar.cap_mbit / 2 <= n.cap_mbit <= liar.cap_mbit * 2]
        peer_ratios = sorted(r for r in (self.received_per_given(n) for n in peers) if r is not None)
        liar_ratio = self.received_per_given(liar)
        liar_given = ((self.status(liar) or {}).get('rates') or {}).get('givenBytes', 0)
        median = peer_ratios[len(peer_ratios) // 2] if peer_ratios else None
        quartile = peer_ratios[3 * len(peer_ratios) // 4] if peer_ratios else None
        liar_rate = self.client_rate(liar)
        peer_rate = sum(self.client_rate(n) for n in peers) / len(peers)
        liar_grants = (self.status(liar) or {}).get('receivedGrantKbps', 0)
        peer_grants = max((self.status(n) or {}).get('receivedGrantKbps', 0) for n in peers)
        self.results.check('liar', 'no better served than an honest node of its real capacity, per byte it carries for others',
                           liar_ratio is not None and quartile is not None and liar_ratio <= quartile,
                           'received %s against an upper quartile of %s, median %s (%d honest nodes on %g-%g Mbit/s links that carried a mebibyte or more, %s); '
                           'its downloads %.0f kbps against their mean %.0f; granted %d kbps against at most %d' % (
                               '%.2f bytes per byte it carried' % liar_ratio if liar_ratio is not None
                               else 'with no ratio to judge (it carried only %.0f KB for others)' % (liar_given / 1024),
                               'none' if quartile is None else '%.2f' % quartile,
                               'none' if median is None else '%.2f' % median,
                               len(peer_ratios), liar.cap_mbit / 2, liar.cap_mbit * 2,
                               '%.2f-%.2f' % (peer_ratios[0], peer_ratios[-1]) if peer_ratios else 'none carried a mebibyte',
                               liar_rate, peer_rate, liar_grants, peer_grants),
                           # Above the quartile, above every peer, or with no ratio to judge (it carried next to
                           # nothing, and an honest node in that place is left out): what it drew is the lending
                           # that known gap is about.
                           gap='liar-lent' if peer_ratios else None)

    def received_per_given(self, node):
        """
        Bytes its partners carried for it per byte it carried for them, over the run (its ledger's
        totals); None if it carried less than a mebibyte. A node whose partners' circuits passed it
        by has carried next to nothing, and its ratio (hundreds, once echoes stopped counting as
        carried) says nothing of what the same giving earns: it would only stretch the yardstick.
        """
        rates = (self.status(node) or {}).get('rates') or {}
        given = rates.get('givenBytes', 0)
        return rates.get('receivedBytes', 0) / given if given >= 1 << 20 else None

    def scenario_freerider(self):
        print('\n== 3. free-rider', flush=True)
        rider = next(n for n in self.nodes if n.role == 'freerider')
        honest = [n for n in self.nodes if n.honest and n.request == rider.request]

        def received(node):
            return sum(d['bytes'] for d in self.downloads(node) if d.get('ok') and d['start'] >= self.load_started)

        mean = sum(received(n) for n in honest) / len(honest)
        got = received(rider)
        self.results.check('free-rider', 'receives at most 10% of what an honest node of the same request receives',
                           mean > 0 and got <= 0.1 * mean,
                           '%.0f KB against an honest mean of %.0f KB (%d nodes): %.0f%%' % (
                               got / 1024, mean / 1024, len(honest), 100 * got / mean if mean else float('nan')))

    def scenario_nat(self):
        print('\n== 5. NAT', flush=True)
        natted = [n for n in self.nodes if n.behind_nat]
        # Judged after the churn, over the whole run (check_nat_trade): whose circuits cross a
        # node is its partners' draw, and a node may go unused through the two minutes of load.
        self.nat_row = len(self.results.rows)
        reachable = sum(1 for n in natted if any(((snapshot[n.name][0] or {}).get('reachability') or {}).get('state') == 'Reachable'
                                                   for _, snapshot in self.history))
        # Each advertised a mapped address; a host outside the NAT can open a connection to it.
        final = {n.name: ((self.status(n) or {}).get('reachability') or {}) for n in natted}
        mapped = {name: r['address'] for name, r in final.items() if r.get('origin') == 'PortMapping' and r.get('address')}
        # The SYN and its answer cross the node's capped link while its downloads fill it, and
        # htb's leaf queue (1,000 packets) holds 6 s of data at 2 Mbit/s: a dial gets 20 s.
        caps = {n.name: n.cap_mbit for n in natted}
        dialable, undialable = [], []
        for name, address in mapped.items():
            host, port = address.rsplit(':', 1)
            answer = self.web.cmd("/usr/bin/python3 -c 'import socket; socket.create_connection((\"%s\", %s), 20); print(\"open\")' 2>&1" % (host, port))
            if 'open' in answer:
                dialable.append(name)
            else:
                undialable.append('%s on %g Mbit/s at %s: %s' % (name, caps[name], address, (answer.strip().splitlines() or ['no answer'])[-1]))
        self.results.check('nat', 'each gets a port from the gateway (PCP / NAT-PMP to miniupnpd), advertises it, and can be dialed there',
                           self.mapping_ready and len(dialable) == len(natted),
                           'miniupnpd %s; %d mapped, %d dialable from outside, %d saw a link dialed in; status says e.g. "%s"%s' % (
                               'forwarding' if self.mapping_ready else 'never enabled forwarding', len(mapped), len(dialable),
                               reachable, next((r.get('text') for r in final.values() if r.get('state') == 'Reachable'),
                                                         next(iter(final.values()), {}).get('text', '?')),
                               ''.join('; not dialable: %s' % u for u in undialable)))

    def check_nat_trade(self):
        """Whether every node behind the NAT joined, met its request, granted and carried others' bytes at some time in the run."""
        natted = [n for n in self.nodes if n.behind_nat]
        ever = {n.name: {'joined': False, 'met': False, 'granting': False} for n in natted}
        carried = {n.name: 0 for n in self.nodes}
        for _, snapshot in self.history:
            for node in self.nodes:
                status = snapshot[node.name][0] or {}
                # Cells carried on others' circuits: a probe's echoes are not counted (PROTOCOL 7.4).
                carried[node.name] = max(carried[node.name], (status.get('rates') or {}).get('givenBytes', 0))
                if node.behind_nat:
                    seen = ever[node.name]
                    seen['joined'] |= status.get('neighbours', 0) > 0
                    seen['met'] |= bool(status.get('requestMet'))
                    seen['granting'] |= status.get('grantedKbps', 0) > 0
        counts = {k: sum(1 for v in ever.values() if v[k]) for k in ('joined', 'met', 'granting')}
        counts['carried'] = sum(1 for n in natted if carried[n.name] > 0)
        least = min(natted, key=lambda n: carried[n.name])
        # Whose circuits cross a node is its partners' draw, behind the NAT or not: a node behind it
        # that carried nothing is the known gap only while an honest public node carried nothing too.
        idle_public = [n.name for n in self.nodes if n.honest and not n.behind_nat and carried[n.name] == 0]
        short = {k for k, c in counts.items() if c < len(natted)}
        gap = ('nat-ultrapeer' if short <= {'joined', 'met'} else 'idle-nodes' if short == {'carried'} and idle_public else None) if short else None
        self.results.check('nat', 'nodes behind the NAT join, trade and carry circuits',
                           not short,
                           '%d behind the NAT: %d joined, %d met, %d granting, %d carried others\' bytes over the whole run (least %s, %.0f KB); '
                           'honest public nodes that carried nothing: %s' % (
                               len(natted), counts['joined'], counts['met'], counts['granting'], counts['carried'], least.name,
                               carried[least.name] / 1024, ', '.join(idle_public) or 'none'),
                           gap=gap, at=self.nat_row)

    def scenario_churn(self):
        print('\n== 4. churn', flush=True)
        candidates = [n for n in self.nodes[3:] if n.honest and not n.behind_nat]
        victims = self.rng.sample(candidates, min(5, len(candidates)))
        survivors = [n for n in self.requesters() if n not in victims and n.honest]
        kill = time.time()
        for v in victims:
            os.kill(v.proc_pid, signal.SIGKILL)
            self.stop_client(v)
        # A new request from every survivor at once, each tried again until it succeeds; each host
        # notes when its first one did.
        for node in survivors:
            node.host.cmd("(until curl -s -o /dev/null --max-time 10 --socks5-hostname 127.0.0.1:1080 http://%s/hello; do sleep 0.2; done; "
                          "date +%%s.%%N > '%s/recovered') > /dev/null 2>&1 &" % (WEB_IP, self.data_dir(node)))
        recovery = {}
        while len(recovery) < len(survivors) and time.time() - kill < 30:
            for node in survivors:
                path = os.path.join(self.data_dir(node), 'recovered')
                if node.name not in recovery and os.path.exists(path):
                    # The shell creates the file before date writes to it: an empty one is read again.
                    with open(path) as f:
                        written = f.read().strip()
                    if written:
                        recovery[node.name] = float(written) - kill
            time.sleep(0.5)
        pending = [n for n in survivors if n.name not in recovery]
        slowest = max(recovery.values()) if recovery else float('nan')
        # The known gap is a page that waits behind a full link on its way; a survivor that never
        # recovers, or takes more than twice the 10 s, is a failure.
        self.results.check('churn', 'after %d SIGKILLs mid-transfer' % len(victims) + ', every survivor\'s new request succeeds within 10 s',
                           not pending and slowest <= 10,
                           '%d/%d recovered, median %.1f s, slowest %.1f s%s; never: %s' % (
                               len(recovery), len(survivors), sorted(recovery.values())[len(recovery) // 2] if recovery else float('nan'),
                               slowest, ' (%s)' % max(recovery, key=recovery.get) if recovery else '', ', '.join(n.name for n in pending) or 'none'),
                           gap='latency-under-load' if not pending and slowest <= 20 else None)
        # Streams cut by the kills end in errors, never in a short file taken for a whole one, and
        # none hangs: every download in flight at the kills ends (curl gives up on one after 120 s).
        def settled(node):
            return any(d['start'] > kill or d['start'] + d['seconds'] >= kill for d in self.downloads(node))

        deadline = time.monotonic() + 150
        while not all(settled(n) for n in survivors) and time.monotonic() < deadline:
            self.pause(1)
        hung = [n.name for n in survivors if not settled(n)]
        cut = wrong = 0
        for node in survivors:
            for d in self.downloads(node):
                if d['start'] <= kill <= d['start'] + d['seconds'] and not d.get('ok') and d.get('error') != 'stopped':
                    cut += 1
                if d.get('error') == 'sha256':
                    wrong += 1
        self.results.check('churn', 'streams through the killed nodes fail with errors, none hangs, no wrong file delivered',
                           wrong == 0 and not hung,
                           '%d downloads in flight ended in an error, %d wrong files; still running after 150 s: %s' % (
                               cut, wrong, ', '.join(hung) or 'none'))
        # The killed nodes come back as themselves, with their ledgers, and rejoin.
        for v in victims:
            self.start_node(v, self.nodes[:3])
        back = {}

        def rejoined(snapshot):
            for v in victims:
                status = snapshot[v.name][0]
                if v.name not in back and status and status.get('id') == v.id and status.get('requestMet'):
                    back[v.name] = time.time() - kill
            return len(back) == len(victims)

        self.wait(rejoined, 120)
        kept = [v for v in victims if any(r.get('bytesGiven', 0) + r.get('bytesReceived', 0) > 0 for r in self.ledger(v))]
        self.results.check('churn', 'killed nodes restart with their identity and ledger, and rejoin',
                           len(back) == len(victims) and len(kept) == len(victims),
                           '%d/%d back with the same id and their request met (slowest %s after the kill), %d kept their ledger' % (
                               len(back), len(victims), '%.0f s' % max(back.values()) if back else '-', len(kept)))

    def stop(self):
        for node in self.nodes:
            self.stop_client(node)
        for node in self.nodes:
            if node.proc_pid:
                try:
                    os.kill(node.proc_pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        terminate(os.path.join(self.work, 'miniupnpd.pid'))
        if self.net:
            self.net.stop()


def terminate(pid_file):
    """SIGTERM to the process whose id the file holds, if the file and the process are there."""
    if not os.path.exists(pid_file):
        return
    with open(pid_file) as f:
        try:
            os.kill(int(f.read().strip()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass


def parse_time(text):
    """An ISO 8601 time from the node's JSON, as seconds since the epoch."""
    # .NET writes seven digits of a second, Python reads six.
    text = re.sub(r'(\.\d{6})\d+', r'\1', text.replace('Z', '+00:00'))
    return datetime.fromisoformat(text).timestamp()


def client(args):
    """The download loop run on a host: curl through the node's SOCKS proxy, one JSON line per download.
    SIGTERM ends it at once, the download in flight with it (logged as stopped)."""
    out = '/tmp/quid-testbed-%d.bin' % os.getpid()
    state = {'running': True, 'curl': None}

    def stop(*_):
        state['running'] = False
        if state['curl'] is not None:
            state['curl'].terminate()

    signal.signal(signal.SIGTERM, stop)
    while state['running']:
        start = time.time()
        # Credentials of their own put the downloads on a circuit of their own (SOCKS isolation), as
        # a second application would be: a page asked for on the same circuit waits behind the
        # download's cells in every queue along it.
        curl = subprocess.Popen(['curl', '-s', '-S', '--max-time', '120', '-o', out, '--socks5-hostname', '127.0.0.1:1080',
                                 '--proxy-user', 'download:x', '-w', '%{http_code} %{size_download} %{time_starttransfer} %{time_total}', args.url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        state['curl'] = curl
        stdout, stderr = curl.communicate()
        state['curl'] = None
        record = {'start': start, 'seconds': time.time() - start, 'exit': curl.returncode}
        try:
            code, size, first, total = stdout.split()
            record.update(bytes=int(size), transfer_seconds=max(1e-3, float(total) - float(first)), status=int(code))
        except ValueError:
            record.update(bytes=0)
        if not state['running']:
            record.update(ok=False, error='stopped')
        elif curl.returncode != 0 or record.get('status') != 200:
            record.update(ok=False, error=(stderr.strip() or 'status %s' % record.get('status'))[:200])
        else:
            with open(out, 'rb') as f:
                ok = hashlib.sha256(f.read()).hexdigest() == args.sha256
            record.update(ok=ok, error=None if ok else 'sha256')
        with open(args.log, 'a') as f:
            f.write(json.dumps(record) + '\n')
        if state['running'] and curl.returncode != 0:
            time.sleep(0.5)
    if os.path.exists(out):
        os.remove(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command')
    run = sub.add_parser('run')
    run.add_argument('--quid', required=True)
    run.add_argument('--work', required=True)
    run.add_argument('--nodes', type=int, default=30)
    run.add_argument('--seed', type=int, default=1)
    run.add_argument('--load-seconds', type=int, default=60)
    run.add_argument('--liar-seconds', type=int, default=60)
    run.add_argument('--observe-every', type=float, default=5)
    run.add_argument('--delay-ms', type=int, default=20, help='latency added to each host link where the kernel has netem')
    run.add_argument('--node-log-level', default='Information', help='Debug logs every circuit and stream, to diagnose a failure')
    run.add_argument('--result', help='also write the table here')
    c = sub.add_parser('client')
    c.add_argument('--url', required=True)
    c.add_argument('--sha256', required=True)
    c.add_argument('--log', required=True)
    args = parser.parse_args()
    if args.command == 'client':
        client(args)
        return 0
    setLogLevel('error')
    bed = Testbed(args)
    try:
        bed.run()
    finally:
        bed.stop()
    table = bed.results.table()
    print(table)
    if args.result:
        with open(args.result, 'w') as f:
            f.write(table + '\n')
    return 1 if bed.results.unexpected_failures else 0


if __name__ == '__main__':
    sys.exit(main())
