#!/usr/bin/env bash
# Every figure of the README's "Measured" section on a 2-core machine, in one
# go (about 20 minutes; run it with nothing else running): percpu bench
# (every safe strategy, both layouts; and the compiled engine's targets),
# the fork-exit teardown costs, the 2-core sweeps without and with the
# modelled switch cost, start-up against the CPU count, and what
# oversubscription keeps. Outputs go to bench/results/ (OUT to change).
#
#   bench/measure-2core.sh [OUT]
#
# Needs percpu installed (pip install .) and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results}
mkdir -p "$out"
uptime >&2
percpu bench --cpus 1,2 --strategies refcount,tlbstate --repeat 5 --out "$out/bench-2core-bars.json"
percpu bench --cpus 1,2 --repeat 5 --layout both --out "$out/bench-2core.json"
python3 -P -m percpu.bench.fork_exit --cpus 2 --repeat 3 --duration 2 --out "$out/fork-exit-2core.json"
for cost in 0 3600; do
    dir="$out/sweep-2core"; [ "$cost" = 0 ] || dir="$out/sweep-2core-switch$cost"
    rm -rf "$dir"  # a sweep writes into a new or empty directory
    percpu sweep --strategies all --cpus 1,2 --tasks-per-cpu 1,2 --workload context-switch-threads \
        --repeat 3 --switch-cost-ns "$cost" --out "$dir"
done
python3 -P -m percpu.bench.startup --cpus 2,8,32,64,128,256 --repeat 3 --out "$out/startup-2core.json"
python3 -P -m percpu.bench.oversubscribed --cpus 2,64 --repeat 3 --duration 2 --out "$out/oversubscribed-2core.json"
uptime >&2
