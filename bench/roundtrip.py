"""ns per lazy round trip (user -> idle -> user), side by side in one run:

  emulator  `percpu run --workload lazy-roundtrip` (forked, pinned workers)
  minimal   a Python loop doing only the shared-memory operations the
            emulator does in that round trip, with the same atomics on the
            same fields of the same segment layout, forked and pinned alike

for refcount and tlbstate at each CPU count, repeated and interleaved (the
machine is shared and noisy), reporting medians. Overhead = emulator /
minimal; contention = refcount's slowdown from 1 CPU to N.

    python bench/roundtrip.py --cpus 1,2 --repeat 5 --duration 1 --out bench/results/roundtrip.json
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import platform
import statistics
import time

import numpy as np

from percpu import _atomic
from percpu.cpu import COUNTERS, HIST_BUCKETS
from percpu.state import SharedState
from percpu.workers.pool import RunParams, run

STRATEGIES = ("refcount", "tlbstate")

# The shared-memory operations of one emulated lazy round trip, in order
# (tests/test_bench_fidelity.py checks the emulator does exactly these):
#   user quantum: interrupt point                 load  ipi_pending
#   switch user -> idle: enter_lazy_tlb           store is_lazy
#     refcount's mmgrab_lazy_tlb                  load  gen, fetch_add mm_count
#   idle quantum: interrupt point, page-walk probe load ipi_pending, load gen
#   switch idle -> user: switch_mm_irqs_off       store is_lazy, load gen, load tlb_gen
#     refcount's mmdrop_lazy_tlb                  load  gen, add_return mm_count
MINIMAL_OPS = {
    "refcount": [
        ("load", "ipi_pending"), ("store", "is_lazy"), ("load", "gen"), ("fetch_add", "mm_count"),
        ("load", "ipi_pending"), ("load", "gen"),
        ("store", "is_lazy"), ("load", "gen"), ("load", "tlb_gen"), ("load", "gen"), ("add_return", "mm_count"),
    ],
    "tlbstate": [
        ("load", "ipi_pending"), ("store", "is_lazy"),
        ("load", "ipi_pending"), ("load", "gen"),
        ("store", "is_lazy"), ("load", "gen"), ("load", "tlb_gen"),
    ],
}


def minimal_refcount(n, load, store, fetch_add, add_return, pending, is_lazy, gen, tlb_gen, mm_count):
    for _ in range(n):
        load(pending)
        store(is_lazy, 1)
        load(gen)
        fetch_add(mm_count, 1)
        load(pending)
        load(gen)
        store(is_lazy, 0)
        load(gen)
        load(tlb_gen)
        load(gen)
        add_return(mm_count, -1)


def minimal_tlbstate(n, load, store, fetch_add, add_return, pending, is_lazy, gen, tlb_gen, mm_count):
    for _ in range(n):
        load(pending)
        store(is_lazy, 1)
        load(pending)
        load(gen)
        store(is_lazy, 0)
        load(gen)
        load(tlb_gen)


MINIMAL_LOOPS = {"refcount": minimal_refcount, "tlbstate": minimal_tlbstate}


def minimal_run(strategy: str, cpus: int, duration: float) -> float:
    """ns per round trip of the minimal loop, cpus forked pinned processes
    on one mm (the same segment layout as the emulator)."""
    state = SharedState(ncpus=cpus, nmm=3, ntasks=2 * cpus, npipes=0, counters=COUNTERS, hist_buckets=3 * HIST_BUCKETS)
    state.field(state.mm, "gen")[1] = 1
    state.field(state.mm, "mm_count")[1] = 1
    a_go = state.addr(state.control, 0, "phase")
    a_ready = state.addr(state.control, 0, "ready")
    cores = sorted(os.sched_getaffinity(0))
    loop = MINIMAL_LOOPS[strategy]
    results_map = mmap.mmap(-1, 16 * cpus)  # per CPU: round trips, elapsed ns
    results = np.frombuffer(results_map, dtype=np.int64)
    pids = []
    for cpu in range(cpus):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.sched_setaffinity(0, {cores[cpu % len(cores)]})
                args = (
                    _atomic.load_acquire, _atomic.store_release, _atomic.fetch_add, _atomic.add_return,
                    state.addr(state.cpu, cpu, "ipi_pending"), state.addr(state.cpu, cpu, "is_lazy"),
                    state.addr(state.mm, 1, "gen"), state.addr(state.mm, 1, "tlb_gen"),
                    state.addr(state.mm, 1, "mm_count"),
                )
                _atomic.fetch_add(a_ready, 1)
                while not _atomic.load_acquire(a_go):
                    pass
                batch, done, start = 2000, 0, time.perf_counter()
                while time.perf_counter() - start < duration:
                    loop(batch, *args)
                    done += batch
                elapsed = time.perf_counter() - start
                results[2 * cpu], results[2 * cpu + 1] = done, int(elapsed * 1e9)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    while _atomic.load_acquire(a_ready) < cpus:
        time.sleep(0.001)
    _atomic.store_release(a_go, 1)
    for pid in pids:
        os.waitpid(pid, 0)
    state.close()
    return statistics.mean(float(results[2 * c + 1]) / results[2 * c] for c in range(cpus))


def emulator_run(strategy: str, cpus: int, duration: float) -> float:
    doc = run(RunParams(strategy=strategy, workload="lazy-roundtrip", cpus=cpus, duration=duration))
    if doc["verdict"] != "SUCCESS":
        raise SystemExit(f"emulator run failed: {doc['failure_reasons']}")
    return cpus * 1e9 / doc["rate"]["total_ops_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpus", default="1,2", help="comma-separated CPU counts (default 1,2)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    cpu_counts = [int(x) for x in args.cpus.split(",")]

    samples: dict[tuple[str, str, int], list[float]] = {}
    for rep in range(args.repeat):
        for cpus in cpu_counts:
            for strategy in STRATEGIES:
                for kind, measure in (("emulator", emulator_run), ("minimal", minimal_run)):
                    ns = measure(strategy, cpus, args.duration)
                    samples.setdefault((kind, strategy, cpus), []).append(ns)
        print(f"repeat {rep + 1}/{args.repeat} done", flush=True)

    med = {key: statistics.median(v) for key, v in samples.items()}
    rows = []
    for cpus in cpu_counts:
        for strategy in STRATEGIES:
            e, m = med[("emulator", strategy, cpus)], med[("minimal", strategy, cpus)]
            rows.append({"cpus": cpus, "strategy": strategy, "emulator_ns": round(e, 1), "minimal_ns": round(m, 1),
                         "overhead": round(e / m, 2),
                         "emulator_spread_ns": round(max(samples[("emulator", strategy, cpus)]) - min(samples[("emulator", strategy, cpus)]), 1),
                         "minimal_spread_ns": round(max(samples[("minimal", strategy, cpus)]) - min(samples[("minimal", strategy, cpus)]), 1)})
    print(f"\nns per lazy round trip, median of {args.repeat} (machine: {platform.node()}, {os.cpu_count()} cores)")
    print(f"{'cpus':>4} {'strategy':>9} {'emulator':>9} {'minimal':>9} {'overhead':>9}")
    for r in rows:
        print(f"{r['cpus']:>4} {r['strategy']:>9} {r['emulator_ns']:>9.0f} {r['minimal_ns']:>9.0f} {r['overhead']:>8.2f}x")
    contention = {}
    lo = min(cpu_counts)
    for cpus in cpu_counts:
        if cpus == lo:
            continue
        entry = {}
        for kind in ("emulator", "minimal"):
            slow = {s: med[(kind, s, cpus)] / med[(kind, s, lo)] for s in STRATEGIES}
            entry[kind] = {"refcount_slowdown": round(slow["refcount"], 2), "tlbstate_slowdown": round(slow["tlbstate"], 2),
                           "visibility": round(slow["refcount"] / slow["tlbstate"], 2),
                           "refcount_over_tlbstate": round(med[(kind, "refcount", cpus)] / med[(kind, "tlbstate", cpus)], 2)}
        contention[cpus] = entry
        print(f"\n{lo} -> {cpus} CPUs: refcount slowdown emulator {entry['emulator']['refcount_slowdown']}x, "
              f"minimal {entry['minimal']['refcount_slowdown']}x; tlbstate emulator {entry['emulator']['tlbstate_slowdown']}x, "
              f"minimal {entry['minimal']['tlbstate_slowdown']}x; contention visibility (refcount slowdown / "
              f"tlbstate slowdown) emulator {entry['emulator']['visibility']}, minimal {entry['minimal']['visibility']}")
    if args.out:
        result = {
            "benchmark": "roundtrip",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"hostname": platform.node(), "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
                        "processor": _cpu_model(), "kernel": platform.release(), "python": platform.python_version()},
            "parameters": vars(args),
            "rows": rows,
            "contention": contention,
            "samples": {f"{k}/{s}/{c}": v for (k, s, c), v in samples.items()},
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"\nwrote {args.out}")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
