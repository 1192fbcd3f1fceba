#!/usr/bin/env bash
# Builds the fuzz targets, instruments Quid.dll for AFL++, and fuzzes each target for about
# EXECS inputs (default one million), one after another. Prints a line per target from AFL++'s
# own statistics. See docs/FUZZING.md. Usage: fuzz/run.sh [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
EXECS=${EXECS:-1000000}
WORK=${WORK:-/tmp/quid-fuzz}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(socks http-request http-response http-chunked link-handshake link-frame cell create created relay control descriptor pcp natpmp port-mapper session-address share-request service-record introduction)

command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install -y afl++" >&2; exit 2; }
command -v sharpfuzz >/dev/null || export PATH="$PATH:$HOME/.dotnet/tools"
command -v sharpfuzz >/dev/null || dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0

rm -rf "$WORK/bin" "$WORK/seeds"
dotnet build fuzz/Quid.Fuzz -c Release -o "$WORK/bin" >/dev/null
# Seeds first: instrumented code runs only under Fuzzer.Run, which sets up AFL++'s shared memory.
dotnet "$WORK/bin/Quid.Fuzz.dll" seeds "$WORK/seeds"
sharpfuzz "$WORK/bin/Quid.dll" >/dev/null

# dotnet itself is not instrumented (SharpFuzz instruments Quid.dll), and this is no tuned fuzzing box.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
printf '%-16s %10s %9s %8s %8s %6s %7s %6s\n' target execs execs/s seconds crashes hangs corpus edges
for target in "${targets[@]}"; do
  out="$WORK/findings/$target"
  rm -rf "$out" && mkdir -p "$WORK/findings"
  afl-fuzz -i "$WORK/seeds/$target" -o "$out" -E "$EXECS" -t 5000 -m none -- dotnet "$WORK/bin/Quid.Fuzz.dll" "$target" > "$WORK/$target.log" 2>&1 || true
  stats="$out/default/fuzzer_stats"
  if [ ! -f "$stats" ]; then echo "$target: afl-fuzz did not start; see $WORK/$target.log" >&2; continue; fi
  get() { awk -v k="$1" '$1 == k { print $3 }' "$stats"; }
  printf '%-16s %10s %9s %8s %8s %6s %7s %6s\n' "$target" "$(get execs_done)" "$(get execs_per_sec)" "$(get run_time)" "$(get saved_crashes)" "$(get saved_hangs)" "$(get corpus_count)" "$(get edges_found)"
done
