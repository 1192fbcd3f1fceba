#!/usr/bin/env bash
# Checks Quid's port mapping against Debian's real miniupnpd (2.3.1, nftables build), in network
# namespaces of its own so that nothing touches this machine's interfaces:
#
#   lan (198.19.0.2, quid run --listen 0.0.0.0:7843) -- gw (198.19.0.1 | 198.18.0.1, masquerade, miniupnpd) -- wan (198.18.0.2: STUN, a second quid)
#
# It checks that the LAN node gets a mapping with PCP and advertises 198.18.0.1:7843, that a node
# on the WAN side dialing that address reaches the LAN node's listener (quid status then says
# "reachable"), and that stopping the LAN node deletes the mapping at the gateway. Root only.
# Prints each check; exits 1 when one fails, 2 when it cannot run.
#
# Usage: tests/testbed/portmap-check.sh        (QUID=/path/to/quid to skip the build; KEEP=1 keeps $WORK)
#
# What was surprising about miniupnpd in a namespace:
# - It maps nothing when its WAN address is reserved, and 198.18.0.0/15 is on its list (so is every
#   documentation range); ext_ip= with such an address is refused too. ext_perform_stun=yes with a
#   STUN server on the WAN side works: when its four probes are all answered it takes the answer as
#   the external address, reserved or not. A 20-line responder (stun-responder.py) is enough.
# - It needs the nftables table and chains to exist before it starts (2.3.0 moved their creation to
#   nft_init.sh). Debian's /etc/miniupnpd/nft_init.sh does not run: the miniupnpd_functions.sh
#   beside it is the iptables one from the miniupnpd package, so $NFT and $TABLE are empty. This
#   script writes the ruleset itself: table inet filter, with chains miniupnpd (forward),
#   prerouting_miniupnpd and postrouting_miniupnpd (nat) jumped to from base chains.
# - -d keeps it in the foreground and logs to stderr; -P puts the PID file somewhere writable (the
#   default is /var/run/miniupnpd.pid, shared with any other instance). A missing lease file is
#   only logged. uuid= must be set even with UPnP off.
# - 2.3.1 has no enable_pcp_pmp key: enable_natpmp=yes serves both NAT-PMP and PCP on UDP 5351.
# - It adds a dnat rule in prerouting_miniupnpd and an accept rule in miniupnpd per mapping, and
#   takes both away on a delete (lifetime 0).
set -uo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "portmap-check: skipped, needs root (network namespaces, nftables)"; exit 2; }
for tool in ip nft /usr/sbin/miniupnpd /usr/bin/python3; do
  command -v "$tool" >/dev/null || { echo "portmap-check: skipped, $tool not found (apt-get install iproute2 nftables miniupnpd-nftables python3)"; exit 2; }
done

WORK=$(mktemp -d /tmp/quid-portmap.XXXXXX)
TAG=qpm$$
GW=$TAG-gw LAN=$TAG-lan WAN=$TAG-wan
PIDS=()
failed=0
check() { # check "what" command...
  if "${@:2}" >/dev/null 2>&1; then echo "  ok    $1"; else echo "  FAIL  $1"; failed=1; fi
}
cleanup() {
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill "${PIDS[i]}" 2>/dev/null; done
  wait 2>/dev/null
  for ns in "$GW" "$LAN" "$WAN"; do ip netns del "$ns" 2>/dev/null; done
  [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${QUID:-}" ]; then
  echo "building quid..."
  dotnet build src/Quid.Cli -o "$WORK/bin" >"$WORK/build.log" 2>&1 || { echo "portmap-check: the build failed, see $WORK/build.log"; KEEP=1; exit 2; }
  QUID=$WORK/bin/Quid.Cli
fi

# ---- Three namespaces, two veth pairs; interface names are this run's own ----
for ns in "$GW" "$LAN" "$WAN"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "$TAG-l" type veth peer name "$TAG-gl"
ip link set "$TAG-l" netns "$LAN"; ip link set "$TAG-gl" netns "$GW"
ip link add "$TAG-w" type veth peer name "$TAG-gw"
ip link set "$TAG-w" netns "$WAN"; ip link set "$TAG-gw" netns "$GW"
ip -n "$LAN" addr add 198.19.0.2/24 dev "$TAG-l"; ip -n "$LAN" link set "$TAG-l" up; ip -n "$LAN" route add default via 198.19.0.1
ip -n "$GW" addr add 198.19.0.1/24 dev "$TAG-gl"; ip -n "$GW" link set "$TAG-gl" up
ip -n "$GW" addr add 198.18.0.1/24 dev "$TAG-gw"; ip -n "$GW" link set "$TAG-gw" up
ip -n "$WAN" addr add 198.18.0.2/24 dev "$TAG-w"; ip -n "$WAN" link set "$TAG-w" up
ip netns exec "$GW" sysctl -qw net.ipv4.ip_forward=1

# ---- The gateway: a home NAT (masquerade, nothing in unless asked for) with miniupnpd's chains ----
ip netns exec "$GW" nft -f - <<NFT
table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "$TAG-gl" accept
    jump miniupnpd
  }
  chain miniupnpd { }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname "$TAG-gw" masquerade
  }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
NFT

# miniupnpd's STUN probes are answered from the WAN side (see stun-responder.py).
ip netns exec "$WAN" /usr/bin/python3 tests/testbed/stun-responder.py 198.18.0.2 >"$WORK/stun.log" 2>&1 &
PIDS+=($!)

sed -e "s|@EXT_IF@|$TAG-gw|" -e "s|@LAN_IF@|$TAG-gl|" -e "s|@LAN_NET@|198.19.0.0/24|" -e "s|@STUN_HOST@|198.18.0.2|" \
    -e "s|@WORK@|$WORK|" -e "s|@UUID@|$(cat /proc/sys/kernel/random/uuid)|" tests/testbed/miniupnpd.conf.template >"$WORK/miniupnpd.conf"
ip netns exec "$GW" /usr/sbin/miniupnpd -f "$WORK/miniupnpd.conf" -d -P "$WORK/miniupnpd.pid" >"$WORK/miniupnpd.log" 2>&1 &
PIDS+=($!)

wait_for() { # wait_for seconds file pattern
  local deadline=$((SECONDS + $1))
  until grep -qE "$3" "$2" 2>/dev/null; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}
retry() { # retry seconds command...: until it succeeds, or the time is up
  local deadline=$((SECONDS + $1))
  until "${@:2}"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}
json_field() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin)['reachability']; print(d['$1'])"; }

echo "portmap-check: miniupnpd on $GW (LAN 198.19.0.1, WAN 198.18.0.1), quid on $LAN (198.19.0.2), a peer on $WAN (198.18.0.2)"
check "miniupnpd enables port forwarding after STUN" wait_for 15 "$WORK/miniupnpd.log" "Port forwarding is now enabled"
check "miniupnpd listens for NAT-PMP/PCP" wait_for 15 "$WORK/miniupnpd.log" "Listening for NAT-PMP/PCP traffic on port 5351"

# ---- The node behind the NAT: zero configuration but for its data directory and quiet proxies ----
ip netns exec "$LAN" "$QUID" run --data-dir "$WORK/lan" --listen 0.0.0.0:7843 --socks off --http-proxy off --control 127.0.0.1:0 \
    --offer 256 --request 0 >"$WORK/lan.log" 2>&1 &
PIDS+=($!); LAN_PID=$!
check "the LAN node gets 198.18.0.1:7843 from gateway 198.19.0.1 with PCP" wait_for 30 "$WORK/lan.log" "Gateway 198\.19\.0\.1 maps 198\.18\.0\.1:7843 to our port 7843 \(PCP"
check "miniupnpd added the mapping (PCP MAP)" wait_for 5 "$WORK/miniupnpd.log" "PCP MAP: added mapping TCP 7843->198\.19\.0\.2:7843"
check "the gateway has a dnat rule to 198.19.0.2:7843" bash -c "ip netns exec $GW nft list chain inet filter prerouting_miniupnpd | grep -q 'dnat ip to 198.19.0.2:7843'"
status=$(ip netns exec "$LAN" "$QUID" status --data-dir "$WORK/lan" --json 2>/dev/null)
check "quid status --json advertises 198.18.0.1:7843" test "$(echo "$status" | json_field address)" = "198.18.0.1:7843"
check "quid status says advertised, no link dialed in yet" test "$(echo "$status" | json_field state)" = "Advertised"
echo "        $(echo "$status" | json_field text)"

# ---- A node on the WAN side dials the mapped address ----
ip netns exec "$WAN" "$QUID" run --data-dir "$WORK/wan" --listen 198.18.0.2:7843 --socks off --http-proxy off --control 127.0.0.1:0 \
    --offer 256 --request 0 --peer 198.18.0.1:7843 >"$WORK/wan.log" 2>&1 &
PIDS+=($!)
check "the WAN node links to the LAN node through 198.18.0.1:7843" wait_for 30 "$WORK/wan.log" "Linked with .* \(outbound\)"
check "the LAN node sees the link arrive at its listener" wait_for 10 "$WORK/lan.log" "Linked with .* \(inbound\)"
reachable() { [ "$(ip netns exec "$LAN" "$QUID" status --data-dir "$WORK/lan" --json 2>/dev/null | json_field state)" = Reachable ]; }
check "quid status says reachable" retry 10 reachable
echo "        $(ip netns exec "$LAN" "$QUID" status --data-dir "$WORK/lan" --json 2>/dev/null | json_field text)"
echo "        $(ip netns exec "$LAN" "$QUID" status --data-dir "$WORK/lan" 2>/dev/null | grep -A1 dialable | tr -s ' ')"

# ---- Stopping deletes the mapping ----
kill -TERM "$LAN_PID"
stopped() { ! kill -0 "$LAN_PID" 2>/dev/null; }
unmapped() { ! ip netns exec "$GW" nft list chain inet filter prerouting_miniupnpd | grep -q 'dnat ip to 198.19.0.2:7843'; }
check "the LAN node stops" retry 20 stopped
check "miniupnpd removed the mapping" wait_for 5 "$WORK/miniupnpd.log" "PCP: TCP port 7843 mapping removed"
check "the gateway's dnat rule is gone" unmapped

if [ $failed -ne 0 ]; then
  echo "portmap-check: FAILED; logs kept in $WORK (miniupnpd.log, lan.log, wan.log)"
  KEEP=1
  exit 1
fi
echo "portmap-check: all checks passed"
