"""Harness: the result document of one run: parameters, machine, rates, latency,
counters, teardown costs, violations, verdict. Versioned, JSON-ready."""
from __future__ import annotations

import os
import platform
import statistics

import numpy as np

from percpu import engine
from percpu.machine.stats import COUNTERS, HIST_BUCKET_WIDTH_PCT, bucket_value

SCHEMA = "percpu.run/1"


def machine_info(pinning: list[int], usable_cores: list[int]) -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ncpus = len(pinning)
    return {
        "hostname": platform.node(),
        "cpu_model": model,
        "online_cores": os.cpu_count(),
        "usable_cores": usable_cores,
        "pinning": pinning,
        "oversubscription": round(ncpus / len(usable_cores), 3),
        "oversubscribed": ncpus > len(usable_cores),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def percentiles(hist, points=(50, 90, 99)) -> dict:
    """Percentiles of a log-bucket histogram, as bucket midpoints in ns,
    with the buckets' width (the resolution)."""
    hist = np.asarray(hist)
    total = int(hist.sum())
    cumulative = np.cumsum(hist)
    out = {}
    for p in points:
        bucket = int(np.searchsorted(cumulative, total * p / 100.0))
        out[f"p{p}"] = round(bucket_value(bucket), 1) if total else None
    out["bucket_width_pct"] = HIST_BUCKET_WIDTH_PCT
    return out


def rate_summary(samples: list[list[float]]) -> dict:
    """samples: per sample, each CPU's ops/s. will-it-scale prints per sample
    the min and max over tasks and the total; we report their medians."""
    kept = samples[1:] if len(samples) >= 3 else samples  # first is warm-up
    if not kept:
        return {"samples": 0, "total_ops_per_s": 0.0, "min_cpu_ops_per_s": 0.0, "max_cpu_ops_per_s": 0.0}
    return {
        "samples": len(kept),
        "total_ops_per_s": statistics.median(sum(s) for s in kept),
        "min_cpu_ops_per_s": statistics.median(min(s) for s in kept),
        "max_cpu_ops_per_s": statistics.median(max(s) for s in kept),
        "per_sample_total": [round(sum(s), 1) for s in kept],
    }


def _per(total, count, digits: int):
    """total / count, rounded; None when either is unknown or count is 0."""
    if total is None or not count:
        return None
    return round(total / count, digits)


def build_document(*, parameters, machine, workload_op, elapsed_s, counted_s, samples, per_cpu_counters,
                   counters_reported, op_hist, switch_hist, teardown_hist, violation_total, violations,
                   end_state_problems, aborted) -> dict:
    """The run document. `counters_reported` False (an aborted run: its CPUs
    never reported) leaves every counter but the ops the CPUs published
    while running as None, not 0. `counted_s`: the span the counters cover
    (from the start of the run to the CPUs' exit)."""
    totals = {name: None if any(c[name] is None for c in per_cpu_counters) else int(sum(c[name] for c in per_cpu_counters))
              for name in COUNTERS}
    warnings = [v for v in violations if v["kind"] == "warn"]  # the kernel's own WARN_ONs: not violations
    problems = [v for v in violations if v["kind"] != "warn"] + list(end_state_problems)
    failure_reasons = []
    if aborted:
        failure_reasons.append(aborted)
    if violation_total:
        kinds = sorted({v["kind"] for v in problems})
        failure_reasons.append(f"{violation_total} violation(s): {', '.join(kinds)}")
    if end_state_problems:
        kinds = sorted({p["kind"] for p in end_state_problems})
        failure_reasons.append(f"end-of-run check: {len(end_state_problems)} problem(s): {', '.join(kinds)}")
    ops = totals["ops"]
    teardowns = totals["teardowns"]
    cpu_ns = len(per_cpu_counters) * counted_s * 1e9
    return {
        "schema": SCHEMA,
        "engine": engine(),  # compiled or interpreted: the costs differ ~10x
        "parameters": parameters,
        "machine": machine,
        "verdict": "FAILURE" if failure_reasons else "SUCCESS",
        "failure_reasons": failure_reasons,
        "aborted": aborted,
        "elapsed_s": round(elapsed_s, 3),
        "op": workload_op,
        "rate": rate_summary(samples),
        "ns_per_op": percentiles(op_hist),
        "ns_per_switch": {**percentiles(switch_hist), "mean": _per(totals["timed_switch_ns"], totals["timed_switches"], 1)},
        "counters_reported": counters_reported,
        "totals": totals,
        "per_op": {
            "shared_atomics": _per(totals["shared_atomics"], ops, 3),
            "lazy_switches": _per(totals["lazy_switches"], ops, 3),
        },
        "teardown": {
            "count": teardowns,
            "ns": percentiles(teardown_hist),
            "ipis_per_teardown": _per(totals["teardown_ipis"], teardowns, 3),
            "wait_ns_per_teardown": _per(totals["teardown_wait_ns"], teardowns, 1),
            "hazard_slots_scanned_per_teardown": _per(totals["slots_scanned"], teardowns, 3),
            "fixups_per_teardown": _per(totals["fixups"], teardowns, 3),
        },
        # oversubscribed: how much the CPUs waited by leaving their core (machine/context.py);
        # halted_share: of the CPUs' time from the start of the run to their exit
        "blocking": {
            "halts": totals["halts"],
            "halted_share": _per(totals["halted_ns"], cpu_ns, 3),
            "halt_timeouts": totals["halt_timeouts"],
            "kicks": totals["kicks"],
            "yields": totals["yields"],
        },
        "per_cpu": per_cpu_counters,
        "violation_count": violation_total + len(end_state_problems),
        "violations": problems,
        "warnings": warnings,
    }
