"""Where each strategy pays: per lazy context switch or per mm teardown.

Runs `percpu run --workload fork-exit` for every safe strategy, interleaved
and repeated, and prints medians of: ns per context switch (sampled, the lazy
hooks included), teardown latency p50, IPIs and waiting per teardown, shared
atomics per op.

    python -P -m percpu.bench.fork_exit --cpus 2 --repeat 3 --duration 2 --out bench/results/fork-exit-2core.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from percpu.linux.include_.linux.version import FLUSHES, KERNELS
from percpu.strategies import SAFE_STRATEGIES
from percpu.workers.pool import RunParams, run

METRICS = {
    "switch_ns_mean": lambda d: d["ns_per_switch"]["mean"],
    "teardown_ns_p50": lambda d: d["teardown"]["ns"]["p50"],
    "ipis_per_teardown": lambda d: d["teardown"]["ipis_per_teardown"],
    "wait_ns_per_teardown": lambda d: d["teardown"]["wait_ns_per_teardown"],
    "shared_atomics_per_op": lambda d: d["per_op"]["shared_atomics"],
    "teardowns": lambda d: d["teardown"]["count"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--fork-rate", type=float, default=500.0)
    parser.add_argument("--kernel", default="6.18", choices=sorted(KERNELS))
    parser.add_argument("--flush", default="ipi", choices=FLUSHES)
    parser.add_argument("--out")
    args = parser.parse_args()
    samples: dict[str, dict[str, list[float]]] = {s: {m: [] for m in METRICS} for s in SAFE_STRATEGIES}
    for rep in range(args.repeat):
        for strategy in SAFE_STRATEGIES:
            doc = run(RunParams(strategy=strategy, workload="fork-exit", cpus=args.cpus, duration=args.duration,
                                fork_rate=args.fork_rate, kernel=args.kernel, flush=args.flush,
                                seed=rep + 1))
            if doc["verdict"] != "SUCCESS":
                raise SystemExit(f"{strategy}: {doc['failure_reasons']}")
            for name, get in METRICS.items():
                samples[strategy][name].append(get(doc))
        print(f"repeat {rep + 1}/{args.repeat} done", flush=True)
    med = {s: {m: statistics.median(v) for m, v in ms.items()} for s, ms in samples.items()}
    print(f"\nfork-exit, {args.cpus} CPUs, Linux {args.kernel}, {args.flush} flushes, fork rate {args.fork_rate:g}/s per CPU, "
          f"median of {args.repeat} ({platform.node()}, {os.cpu_count()} cores)")
    print(f"{'strategy':>10} {'switch ns':>10} {'teardown ns':>12} {'IPIs/td':>8} {'wait ns/td':>11} {'atomics/op':>11}")
    for s in SAFE_STRATEGIES:
        m = med[s]
        print(f"{s:>10} {m['switch_ns_mean']:>10.0f} {m['teardown_ns_p50']:>12.0f} {m['ipis_per_teardown']:>8.2f} "
              f"{m['wait_ns_per_teardown']:>11.0f} {m['shared_atomics_per_op']:>11.2f}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"benchmark": "fork-exit", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       "machine": {"hostname": platform.node(), "cores": os.cpu_count(), "kernel": platform.release(),
                                   "python": platform.python_version()},
                       "parameters": vars(args), "medians": med, "samples": samples}, f, indent=2)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
