"""How much throughput oversubscription keeps: each blocking workload at a
CPU per core and at many CPUs per core, interleaved and repeated, with the
medians of the total ops/s, their ratio, and how the CPUs blocked (halts,
their share of the time, timeouts, kicks).

    python -m percpu.bench.oversubscribed --cpus 2,64 --repeat 3 --duration 2 \\
        --out bench/results/oversubscribed-2core.json
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from percpu import engine
from percpu.bench import write_document
from percpu.workers.pool import RunParams, run
from percpu.workers.results import machine_info

WORKLOADS = ("context-switch-threads", "context-switch-processes", "fork-exit")


def measure(cpu_counts: list[int], repeat: int, duration: float) -> dict:
    samples: dict[tuple[str, int], list[dict]] = {}
    load_before = os.getloadavg()
    for rep in range(repeat):
        for workload in WORKLOADS:
            for cpus in cpu_counts if rep % 2 == 0 else reversed(cpu_counts):  # alternate the order
                doc = run(RunParams(workload=workload, cpus=cpus, duration=duration))
                if doc["verdict"] != "SUCCESS":
                    raise SystemExit(f"{workload} on {cpus} CPUs failed: {'; '.join(doc['failure_reasons'])}")
                samples.setdefault((workload, cpus), []).append(
                    {"ops_per_s": doc["rate"]["total_ops_per_s"], **doc["blocking"]})
                print(f"repeat {rep + 1}: {workload} {cpus} CPUs {doc['rate']['total_ops_per_s']:,.0f} ops/s",
                      file=sys.stderr)
    base = min(cpu_counts)
    rows = []
    for (workload, cpus), runs in samples.items():
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        base_ops = statistics.median(r["ops_per_s"] for r in samples[(workload, base)])
        rows.append({"workload": workload, "cpus": cpus, **median, "of_base": round(median["ops_per_s"] / base_ops, 3),
                     "ops_per_s_samples": [round(r["ops_per_s"]) for r in runs]})
    usable = sorted(os.sched_getaffinity(0))
    return {"schema": "percpu.oversubscribed/1", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "engine": engine(),
            "machine": {**machine_info(usable, usable), "load_average_before": load_before,
                        "load_average_after": os.getloadavg()},
            "parameters": {"cpus": cpu_counts, "repeat": repeat, "duration_s": duration}, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpus", default="2,64", help="CPU counts; the first is the base")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--out")
    args = p.parse_args(argv)
    doc = measure([int(c) for c in args.cpus.split(",")], args.repeat, args.duration)
    print(f"{doc['engine']} engine, {len(doc['machine']['usable_cores'])} cores; median of {args.repeat} "
          f"interleaved runs of {args.duration:g} s; load average {doc['machine']['load_average_before'][0]:.1f}")
    print(f"{'workload':<26} {'CPUs':>4} {'ops/s':>10} {'of base':>8} {'halted':>7} {'timeouts':>9} {'kicks':>9}")
    for r in doc["rows"]:
        print(f"{r['workload']:<26} {r['cpus']:>4} {r['ops_per_s']:>10,.0f} {r['of_base']:>8.3f} "
              f"{r['halted_share']:>7.3f} {r['halt_timeouts']:>9,.0f} {r['kicks']:>9,.0f}")
    write_document(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
