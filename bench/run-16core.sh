#!/usr/bin/env bash
# `percpu bench` on a 16-core machine, in one go: the emulator and the native
# C reference for every safe strategy at 1, 2, 4, 8 and 16 CPUs,
# padded and packed side by side, median of 5 interleaved 1 s measurements
# (about 15 minutes), written to bench/results/bench-16core.json.
#
#   bench/run-16core.sh [CPU_COUNTS [OUT [more percpu bench options]]]
#
# Needs percpu installed (pip install .) and a C compiler. Each CPU count must
# be at most the usable cores: `percpu bench` refuses more (a shared core would
# time-share, and its ns would not be a round trip's).
set -euo pipefail
cd "$(dirname "$0")/.."
cpus=${1:-1,2,4,8,16}
out=${2:-bench/results/bench-16core.json}
if command -v percpu >/dev/null; then percpu=(percpu); else percpu=(python3 -m percpu.cli.app); fi
echo "$(nproc) usable cores; CPU counts $cpus; writing $out" >&2
"${percpu[@]}" bench --cpus "$cpus" --layout both --repeat 5 --duration 1 --out "$out" "${@:3}"
