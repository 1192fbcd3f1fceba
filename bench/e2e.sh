#!/usr/bin/env bash
# The end-to-end benchmark of docs/BENCHMARKS.md: builds quid in Release, then measures direct,
# microsocks, and Quid with 1 and 3 hops over real processes on loopback. Needs curl and microsocks.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v microsocks >/dev/null || { echo "apt-get install -y microsocks curl" >&2; exit 1; }
dotnet build -c Release src/Quid.Cli -v quiet -nologo
dotnet run -c Release --project bench/Quid.Bench -- e2e "${1:-5}"
