#!/usr/bin/env bash
# The end-to-end benchmark of docs/BENCHMARKS.md: publishes quid as users get it (Native AOT,
# needs clang), then measures direct, microsocks, Quid with 1 and 3 hops, and a service published
# with quid serve and reached over a rendezvous, over real processes on loopback. Needs curl and
# microsocks. QUID=path/to/quid measures another build instead
# (QUID=src/Quid.Cli/bin/Release/net10.0/quid after `dotnet build -c Release src/Quid.Cli`: the JIT).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v microsocks >/dev/null || { echo "apt-get install -y microsocks curl" >&2; exit 1; }
if [ -z "${QUID:-}" ]; then
    dotnet publish src/Quid.Cli -c Release -r linux-x64 -o bench/bin/quid -v quiet -nologo
    export QUID="$PWD/bench/bin/quid/quid"
fi
dotnet run -c Release --project bench/Quid.Bench -- e2e "${1:-5}"
