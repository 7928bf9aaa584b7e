"""ns per lazy round trip (user -> idle -> user), two ways side by side:

  emulator  a real `percpu run --workload lazy-roundtrip` (forked, pinned
            workers), on the engine this process runs (percpu/__init__.py)
  native    only the shared-memory operations of that round trip
            (ROUND_TRIP_OPS) in C (native/roundtrip.c, compiled here with the
            system compiler, the same inline atomics), forked and pinned
            alike, on a mapping laid out the same way

for each strategy, CPU count and layout, repeated and interleaved (the machine
may be shared and noisy), reporting medians. From them:

  overhead     emulator / native: the price of the emulator itself (its
               scheduler, checker and bookkeeping) over the cache lines
  visibility   refcount's slowdown from 1 CPU to N divided by tlbstate's: how
               much of the real contention a user of each gets to see
  packed cost  packed / padded: what false sharing costs

`percpu bench` (cli/bench.py) is the command line.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.resources
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from typing import Callable, NamedTuple

from percpu import engine
from percpu.workers.results import machine_info
from percpu.machine.segment import SharedState
from percpu.strategies import SAFE_STRATEGIES
from percpu.workers.pool import RunParams, new_state, run
from percpu.workloads import LazyRoundtrip

SCHEMA = "percpu.bench/1"
STRATEGIES = SAFE_STRATEGIES
KINDS = ("emulator", "native")
LAYOUTS = ("padded", "packed")
PROCESS_MM_SLOT = 1  # the lazy-roundtrip workload's process (slot 0 is init_mm)
PROCESS_MM = (1 << 32) | PROCESS_MM_SLOT  # what the hooks store: gen 1, slot 1

# The fidelity targets: what the emulator's numbers must come near (the
# document's "bars").
OVERHEAD_BAR = 4.0  # emulator / native, refcount and tlbstate at 1 CPU: at most
VISIBILITY_BAR = 0.7  # emulator's visibility at 2 CPUs / native's: at least
SIGNIFICANCE = 0.05  # a packed slowdown is "measurable" below this p-value

# The shared-memory operations of one emulated lazy round trip, in order,
# for the default kernel (Linux 6.18, IPI flushes; 6.12's round trip is the
# same) (tests/test_bench_fidelity.py checks that the emulator does exactly
# these, in this order, and that the native reference does what it says):
#   user quantum: interrupt point                  load ipi_pending
#   switch user -> idle: enter_lazy_tlb            store is_lazy
#     mmgrab_lazy_tlb        refcount: load gen (checker), fetch_add mm_count
#                            hazard: smp_mb, load hazard, store hazard (hp_allocate)
#                            lazy-mm: load lazy_mm, store lazy_mm
#     switch_mm_cid          smp_mb, unless mmgrab_lazy_tlb was one (refcount, hazard)
#     finish_task_switch     lazy-mm: load mm_to_mmdrop (drop_extra_mm_refs)
#   idle quantum: interrupt point, page-walk probe  load ipi_pending, load gen, load freed_tables_gen
#   switch idle -> user: switch_mm_irqs_off        store is_lazy, smp_mb, load gen (checker), load tlb_gen
#     switch_mm_cid          smp_mb (kernel -> user)
#     mmdrop_lazy_tlb_sched  refcount: load gen, add_return mm_count; shootdown: smp_mb
#                            hazard: smp_mb, store hazard; lazy-mm: load lazy_mm, store lazy_mm
#     finish_task_switch     lazy-mm: load mm_to_mmdrop
_USER = [("load", "ipi_pending"), ("store", "is_lazy")]
_IDLE = [("load", "ipi_pending"), ("load", "gen"), ("load", "freed_tables_gen"),
         ("store", "is_lazy"), ("smp_mb", ""), ("load", "gen"), ("load", "tlb_gen"), ("smp_mb", "")]
ROUND_TRIP_OPS = {
    "refcount": [*_USER, ("load", "gen"), ("fetch_add", "mm_count"),
                 *_IDLE, ("load", "gen"), ("add_return", "mm_count")],
    "shootdown": [*_USER, ("smp_mb", ""),
                  *_IDLE, ("smp_mb", "")],
    "hazard": [*_USER, ("smp_mb", ""), ("load", "hazard"), ("store", "hazard"),
               *_IDLE, ("smp_mb", ""), ("store", "hazard")],
    "lazy-mm": [*_USER, ("load", "lazy_mm"), ("store", "lazy_mm"), ("smp_mb", ""), ("load", "mm_to_mmdrop"),
                *_IDLE, ("load", "lazy_mm"), ("store", "lazy_mm"), ("load", "mm_to_mmdrop")],
    "tlbstate": [*_USER, ("smp_mb", ""),
                 *_IDLE],
}


CPU_FIELDS = ("ipi_pending", "is_lazy", "hazard", "lazy_mm", "mm_to_mmdrop")  # this CPU's record
MM_FIELDS = ("gen", "tlb_gen", "mm_count", "freed_tables_gen")  # the process's mm_struct


class Fields(NamedTuple):
    """Addresses of the fields one CPU's round trip touches."""

    ipi_pending: int
    is_lazy: int
    hazard: int
    lazy_mm: int
    mm_to_mmdrop: int
    gen: int
    tlb_gen: int
    mm_count: int
    freed_tables_gen: int


class BenchError(RuntimeError):
    """A measurement failed; the message is one line."""


class NativeUnavailable(BenchError):
    """The native reference cannot be built here (no compiler, or it fails)."""


# --- the segment, laid out as the emulator lays it out ------------------------
def emulator_segment(cpus: int, layout: str, line_size: int) -> SharedState:
    """A segment with the emulator's tables for lazy-roundtrip on `cpus`
    CPUs (as workers/pool.py's run() sizes them), its process's mm live."""
    state = new_state(RunParams(cpus=cpus, layout=layout, line_size=line_size), LazyRoundtrip(cpus, 1))
    state.field(state.mm, "gen")[PROCESS_MM_SLOT] = 1
    state.field(state.mm, "mm_count")[PROCESS_MM_SLOT] = 1
    return state


def round_trip_fields(state: SharedState, cpu: int) -> Fields:
    return Fields(*(state.addr(state.cpu, cpu, name) for name in CPU_FIELDS),
                  *(state.addr(state.mm, PROCESS_MM_SLOT, name) for name in MM_FIELDS))


def pinning(cpus: int) -> list[int]:
    """The core each CPU pins to, as the emulator pins its workers."""
    usable = sorted(os.sched_getaffinity(0))
    return [usable[i % len(usable)] for i in range(cpus)]


def ns_per_round_trip(counts: list[tuple[int, int]]) -> float:
    """Per CPU (round trips, elapsed ns) -> ns per round trip of one CPU, as
    the emulator's figure: CPUs / total rate."""
    if not counts or any(done <= 0 or elapsed <= 0 for done, elapsed in counts):
        raise BenchError("a measuring process reported nothing")
    return len(counts) / sum(done / elapsed for done, elapsed in counts)


# --- the two measurements -----------------------------------------------------
def emulator_run(strategy: str, cpus: int, duration: float, layout: str = "padded", line_size: int = 128) -> float:
    doc = run(RunParams(strategy=strategy, workload="lazy-roundtrip", cpus=cpus, duration=duration,
                        layout=layout, line_size=line_size))
    if doc["verdict"] != "SUCCESS":
        raise BenchError(f"emulator run of {strategy} on {cpus} CPUs failed: {'; '.join(doc['failure_reasons'])}")
    return cpus * 1e9 / doc["rate"]["total_ops_per_s"]


def native_source():
    return importlib.resources.files("percpu.bench").joinpath("native", "roundtrip.c")


def compiler() -> str:
    cc = os.environ.get("CC", "cc")
    path = shutil.which(cc)
    if path is None:
        raise NativeUnavailable(f"the native reference needs a C compiler: {cc!r} not found (install gcc, or set CC)")
    return path


def compiler_version() -> str:
    try:
        out = subprocess.run([compiler(), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (BenchError, OSError, subprocess.SubprocessError):
        return ""
    return out.splitlines()[0] if out else ""


def compile_native(directory: str, trace: bool = False) -> str:
    """Build the native reference into `directory` with `cc -O2`; returns the
    executable. trace: the build that prints each operation of one round trip."""
    exe = os.path.join(directory, "roundtrip-trace" if trace else "roundtrip")
    with importlib.resources.as_file(native_source()) as source, \
            importlib.resources.as_file(importlib.resources.files("percpu.machine")) as machine:
        cmd = [compiler(), "-O2", f"-I{machine}", *(["-DTRACE"] if trace else []), "-o", exe, str(source)]
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["(no message)"])[0]
        raise NativeUnavailable(f"cannot compile the native reference ({' '.join(cmd)}): {first}")
    return exe


@contextlib.contextmanager
def native_reference():
    """The compiled native reference, in a temporary directory for the run."""
    with tempfile.TemporaryDirectory(prefix="percpu-bench-") as directory:
        yield compile_native(directory)


def native_arguments(strategy: str, state: SharedState, cores: list[int]) -> list[str]:
    """The native program's command line: the same fields at the same offsets
    as in `state` (its mapping is page-aligned, as the segment is)."""
    offset = lambda addr: str(addr - state.base)
    mm = round_trip_fields(state, 0)
    per_cpu = [":".join([str(core), *(offset(getattr(round_trip_fields(state, cpu), name)) for name in CPU_FIELDS)])
               for cpu, core in enumerate(cores)]
    return [strategy, *(offset(getattr(mm, name)) for name in MM_FIELDS), *per_cpu]


def native_run(exe: str, strategy: str, cpus: int, duration: float, layout: str = "padded",
               line_size: int = 128) -> float:
    state = emulator_segment(cpus, layout, line_size)
    name, *offsets = native_arguments(strategy, state, pinning(cpus))
    size = state.size
    state.close()
    cmd = [exe, name, repr(duration), str(size), *offsets]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60 + 10 * duration)
    if done.returncode != 0:
        raise BenchError(f"native reference failed: {done.stderr.strip() or done.returncode}")
    counts = []
    for line in done.stdout.splitlines():
        _, trips, elapsed = line.split()
        counts.append((int(trips), int(elapsed)))
    if len(counts) != cpus:
        raise BenchError(f"native reference reported {len(counts)} CPUs, not {cpus}")
    return ns_per_round_trip(counts)


# --- the benchmark ---------------------------------------------------------------
def measure(strategies, cpu_counts, layouts, duration: float, repeat: int, line_size: int = 128,
            progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Every (layout, CPUs, strategy) both ways, `repeat` times, interleaved
    (a noisy stretch then hits every column alike); returns the document."""
    strategies = [s for s in STRATEGIES if s in strategies]
    samples: dict[tuple[str, int, str, str], list[float]] = {}
    total = repeat * len(layouts) * len(cpu_counts) * len(strategies) * len(KINDS)
    step = 0
    started, load_before = time.time(), os.getloadavg()
    with native_reference() as exe:
        runners = {
            "emulator": emulator_run,
            "native": lambda *args: native_run(exe, *args),
        }
        for rep in range(repeat):
            for layout in layouts:
                for cpus in cpu_counts:
                    for strategy in strategies:
                        for kind in KINDS:
                            if progress:
                                progress(step, total, f"repeat {rep + 1}/{repeat}: {kind} {strategy} {layout} {cpus} CPUs")
                            ns = runners[kind](strategy, cpus, duration, layout, line_size)
                            samples.setdefault((layout, cpus, strategy, kind), []).append(ns)
                            step += 1
    if progress:
        progress(total, total, "done")
    usable = sorted(os.sched_getaffinity(0))
    return {
        "schema": SCHEMA,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "wall_s": round(time.time() - started, 1),
        "engine": engine(),  # the emulator's
        "machine": {**machine_info(pinning(max(cpu_counts)), usable), "compiler": compiler_version(),
                    # 1, 5, 15 min: others' load on the machine makes the figures noisy
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "parameters": {"strategies": strategies, "cpus": list(cpu_counts), "layouts": list(layouts),
                       "duration_s": duration, "repeat": repeat, "line_size": line_size},
        **summarize(samples, strategies, cpu_counts, layouts),
        "samples": [{"layout": l, "cpus": c, "strategy": s, "kind": k, "ns": [round(x, 2) for x in v]}
                    for (l, c, s, k), v in samples.items()],
    }


def summarize(samples: dict, strategies, cpu_counts, layouts) -> dict:
    """Medians, overhead, contention visibility, packed cost and the bars."""
    med = {key: statistics.median(v) for key, v in samples.items()}
    rows = []
    for layout in layouts:
        for cpus in cpu_counts:
            for s in strategies:
                row = {"layout": layout, "cpus": cpus, "strategy": s}
                for kind in KINDS:
                    v = samples[(layout, cpus, s, kind)]
                    row[f"{kind}_ns"] = round(med[(layout, cpus, s, kind)], 2)
                    row[f"{kind}_spread_pct"] = round(100 * (max(v) - min(v)) / statistics.median(v), 1)
                row["overhead"] = round(row["emulator_ns"] / row["native_ns"], 2)
                rows.append(row)

    base = min(cpu_counts)
    visibility = []
    if {"refcount", "tlbstate"} <= set(strategies):
        for layout in layouts:
            for cpus in cpu_counts:
                if cpus == base:
                    continue
                entry = {"layout": layout, "from_cpus": base, "cpus": cpus}
                for kind in KINDS:
                    slow = {s: med[(layout, cpus, s, kind)] / med[(layout, base, s, kind)] for s in ("refcount", "tlbstate")}
                    entry[kind] = {"refcount_slowdown": round(slow["refcount"], 3),
                                   "tlbstate_slowdown": round(slow["tlbstate"], 3),
                                   "visibility": round(slow["refcount"] / slow["tlbstate"], 3)}
                visibility.append(entry)

    packed_cost = []
    if set(LAYOUTS) <= set(layouts):
        for cpus in cpu_counts:
            for s in strategies:
                entry = {"cpus": cpus, "strategy": s}
                for kind in KINDS:
                    padded, packed = samples[("padded", cpus, s, kind)], samples[("packed", cpus, s, kind)]
                    p = slower_p_value(packed, padded)
                    entry[kind] = {"packed_over_padded": round(statistics.median(packed) / statistics.median(padded), 3),
                                   "p_value": round(p, 4), "measurable": p < SIGNIFICANCE}
                packed_cost.append(entry)
    return {"rows": rows, "visibility": visibility, "packed_cost": packed_cost,
            "bars": bars(rows, visibility, packed_cost, layouts)}


def slower_p_value(a: list[float], b: list[float]) -> float:
    """One-sided exact Mann-Whitney test that the `a` samples are slower
    (larger) than the `b` samples: the chance, were both drawn alike, of a U
    at least this large. Needs no distribution of the noise, which on a
    shared machine comes in bursts; 4 repeats each can reach p = 0.014."""
    u = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    m, n = len(a), len(b)

    @functools.cache
    def ways(m: int, n: int, u: float) -> int:  # orderings of m a's and n b's with this U
        if u < 0:
            return 0
        if m == 0 or n == 0:
            return int(u == 0)
        return ways(m - 1, n, u - n) + ways(m, n - 1, u)

    return sum(ways(m, n, k) for k in range(math.ceil(u), m * n + 1)) / math.comb(m + n, m)


def bars(rows, visibility, packed_cost, layouts) -> dict:
    """The fidelity targets, each with its numbers and met: True,
    False, or None when this run did not measure what it needs."""
    layout = "padded" if "padded" in layouts else layouts[0]
    ones = {r["strategy"]: r["overhead"] for r in rows if r["layout"] == layout and r["cpus"] == 1
            and r["strategy"] in ("refcount", "tlbstate")}
    overhead = {"bar": f"emulator's refcount and tlbstate round trips at 1 CPU within {OVERHEAD_BAR:g}x of native",
                "layout": layout, "overhead": ones or None,
                "met": all(o <= OVERHEAD_BAR for o in ones.values()) if ones else None}
    two = next((v for v in visibility if v["layout"] == layout and v["from_cpus"] == 1 and v["cpus"] == 2), None)
    ratio = two and two["emulator"]["visibility"] / two["native"]["visibility"]
    seen = {"bar": f"emulator's contention visibility at 2 CPUs at least {VISIBILITY_BAR:g} of native's",
            "layout": layout, "emulator": two and two["emulator"]["visibility"],
            "native": two and two["native"]["visibility"],
            "ratio": ratio and round(ratio, 3), "met": None if two is None else ratio >= VISIBILITY_BAR}
    tlb = [p for p in packed_cost if p["strategy"] == "tlbstate" and p["cpus"] >= 2]
    packed = {"bar": "packed layout: a measurable slowdown of tlbstate at 2+ CPUs against padded "
                     f"(measurable: one-sided Mann-Whitney p < {SIGNIFICANCE:g} over the repeats)",
              "by_cpus": {p["cpus"]: {k: p[k] for k in KINDS} for p in tlb},
              "met": all(p["emulator"]["measurable"] for p in tlb) if tlb else None}
    return {"overhead_1cpu": overhead, "visibility_2cpus": seen, "packed_tlbstate": packed}
