"""Torture: back-to-back rounds, each a run of a randomly chosen strategy,
workload, kernel version and flush model with faults injected, until the time is up or a
round fails (rcutorture's shape: long, seeded, clean SUCCESS or a precise
FAILURE)."""
from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass

from percpu.linux.include_.linux.version import FLUSHES, KERNELS
from percpu.machine.stats import COUNTERS
from percpu.strategies import STRATEGIES
from percpu.workloads import WORKLOADS
from percpu.workers.pool import RunParams, run


@dataclass
class TortureParams:
    strategies: tuple[str, ...]
    duration: float
    cpus: int
    seed: int = 1
    faults: tuple[str, ...] = ()
    round_s: float = 3.0
    kill_after_s: float = 0.0  # > 0: a worker is killed outright at this time


def torture(params: TortureParams, on_round=None) -> dict:
    """Run rounds until params.duration is spent or one fails; on_round(summary,
    doc) after each. Returns the summary."""
    rng = random.Random(params.seed)
    start = time.monotonic()
    totals: Counter = Counter()
    summary = {"rounds": 0, "failed_round": None, "failure_reasons": [], "totals": totals,
               "per_strategy_rounds": Counter(), "elapsed_s": 0.0, "min_cpu_ops_per_s": None,
               "max_cpu_ops_per_s": None}
    while True:
        elapsed = time.monotonic() - start
        remaining = params.duration - elapsed
        if remaining <= 0.05:
            break
        strategy = rng.choice(params.strategies)
        kernel = rng.choice(sorted(KERNELS))
        # broadcast flushes need 6.15+; a strategy runs only where it claims to be safe
        flush = rng.choice([f for f in FLUSHES if f in STRATEGIES[strategy].safe_under
                            and (f == "ipi" or KERNELS[kernel].flush_switching)] or ["ipi"])
        # hotplug only where the scheme survives it: 6.14+ (sched_force_init_mm);
        # 6.12's cpu_down window catches every scheme (README: percpu explore)
        hotplug = STRATEGIES[strategy].hotplug_safe and KERNELS[kernel].force_init_mm
        faults = params.faults if hotplug else tuple(f for f in params.faults if f != "hotplug")
        round_params = RunParams(
            strategy=strategy,
            workload=rng.choice(sorted(WORKLOADS)),
            kernel=kernel,
            flush=flush,
            cpus=params.cpus,
            duration=min(params.round_s, remaining),
            seed=rng.randrange(1 << 31),
            faults=faults,
        )
        if params.kill_after_s > 0 and elapsed <= params.kill_after_s < elapsed + round_params.duration:
            round_params.kill_after_s = params.kill_after_s - elapsed
        doc = run(round_params)
        summary["rounds"] += 1
        summary["per_strategy_rounds"][round_params.strategy] += 1
        for name in COUNTERS:
            totals[name] += doc["totals"][name] or 0  # None: an aborted round's CPUs never reported
        totals["violations_found"] += doc["violation_count"]
        for key, pick in (("min_cpu_ops_per_s", min), ("max_cpu_ops_per_s", max)):
            value = doc["rate"][key]
            summary[key] = value if summary[key] is None else pick(summary[key], value)
        summary["elapsed_s"] = time.monotonic() - start
        if on_round:
            on_round(summary, doc)
        if doc["verdict"] != "SUCCESS":
            summary["failed_round"] = summary["rounds"]
            summary["failure_reasons"] = doc["failure_reasons"]
            break
    summary["verdict"] = "FAILURE" if summary["failed_round"] else "SUCCESS"
    return summary
