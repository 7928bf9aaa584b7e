#!/bin/sh
# The 16-core reproduction in one go: every safe strategy at 1, 2, 4, 8 and
# 16 CPUs, with one and with two tasks per CPU, on context-switch-threads
# (will-it-scale's context_switch1_threads), 5 interleaved repeats of 2 s;
# percpu sweep prints the speedup table (250 runs: about 10 minutes).
# Installs nothing: run it where `percpu` is installed (pip install .).
#
#   sh bench/sweep16.sh                     # on a machine with 16 cores or more
#   SWEEP_CPUS=1,2 sh bench/sweep16.sh      # the same sweep, smaller
#
# Overrides (environment): SWEEP_CPUS (1,2,4,8,16), SWEEP_REPEAT (5),
# SWEEP_DURATION (seconds per run, 2), SWEEP_SWITCH_COST_NS (a modelled rest
# of each context switch, 0; 3600 is the background's VM), SWEEP_OUT
# (bench/results/sweep-16core, relative to the repository; it must not
# exist yet or be empty). Every
# run's JSON (machine included), summary.json, summary.csv, table.md and the
# plots go there.
set -eu
cd "$(dirname "$0")/.."  # the default --out is the repository's bench/results/

command -v percpu >/dev/null || { echo "sweep16.sh: percpu is not installed (pip install .)" >&2; exit 2; }

exec percpu sweep --strategies all --workload context-switch-threads --tasks-per-cpu 1,2 \
    --cpus "${SWEEP_CPUS:-1,2,4,8,16}" --repeat "${SWEEP_REPEAT:-5}" --duration "${SWEEP_DURATION:-2}" \
    --switch-cost-ns "${SWEEP_SWITCH_COST_NS:-0}" \
    --out "${SWEEP_OUT:-bench/results/sweep-16core}"
