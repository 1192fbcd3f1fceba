#!/usr/bin/env bash
# The testbed: builds the Native AOT quid as users get it, then runs testbed.py inside a network
# namespace of its own (unshare -n), where Mininet makes the emulated hosts. Root only; prints
# why and exits 0 with "skipped" where it cannot run. Extra arguments go to testbed.py run
# (--nodes, --seed, --load-seconds …). docs/TESTBED.md says what it does.
set -euo pipefail
cd "$(dirname "$0")/../.."

skip() { echo "testbed skipped: $1"; exit 0; }
[ "$(id -u)" = 0 ] || skip "it needs root (network namespaces, bridges, tc)"
command -v unshare >/dev/null || skip "unshare (util-linux) is not installed"
/usr/bin/python3 -c 'import mininet' 2>/dev/null || skip "Mininet is not installed (apt-get install mininet; .ci/run does)"
command -v tc >/dev/null || skip "tc (iproute2) is not installed"
command -v curl >/dev/null || skip "curl is not installed"
unshare -n true 2>/dev/null || skip "this machine refuses new network namespaces (unshare -n)"

work=${TESTBED_WORK:-$(mktemp -d /tmp/quid-testbed.XXXXXX)}
result=${TESTBED_RESULT:-$work/result.md}
mkdir -p "$work"
echo "testbed: building the Native AOT quid into $work/quid"
dotnet publish src/Quid.Cli -c Release -r linux-x64 -o "$work/quid" -v quiet -nologo >"$work/publish.log" 2>&1 \
  || { cat "$work/publish.log"; echo "testbed: the build failed"; exit 1; }
exec unshare -n /usr/bin/python3 tests/testbed/testbed.py run --quid "$work/quid/quid" --work "$work" --result "$result" "$@"
