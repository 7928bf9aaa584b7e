"""A/B: the same `percpu run` from two installations (or two engines, or two
settings) side by side, interleaved, so that both see the same noisy
machine. Each repeat runs A then B (the order alternating by repeat) for
every strategy and CPU count; the report gives each side's median ns per op
(CPUs / total ops/s) and the median of the paired per-repeat ratios B / A.

    python -m percpu.bench.ab --a /old/venv/bin/percpu --b /new/venv/bin/percpu \\
        --strategies refcount,tlbstate --cpus 1,2 --repeat 7

A side is a command line (split like a shell would): `--b "env
PERCPU_ENGINE=interpreted percpu"` runs the same installation another way.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys

from percpu.bench import write_document


def run_once(command: list[str], strategy: str, cpus: int, workload: str, duration: float, extra: list[str]) -> dict:
    args = [*command, "run", "--strategy", strategy, "--cpus", str(cpus), "--workload", workload,
            "--duration", repr(duration), "--json", *extra]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120 + 10 * duration)
    if done.returncode != 0:
        raise SystemExit(f"ab: {shlex.join(args)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    doc = json.loads(done.stdout)
    ops = doc["rate"]["total_ops_per_s"]
    # no op in any sample (a starved machine): infinitely slow, which the medians survive
    return {"ops_per_s": ops, "ns_per_op": cpus * 1e9 / ops if ops else math.inf, "engine": doc.get("engine")}


def measure(a: list[str], b: list[str], strategies, cpu_counts, workload, duration, repeat, extra, progress=None):
    samples = {(side, s, c): [] for side in "ab" for s in strategies for c in cpu_counts}
    engines = {}
    for r in range(repeat):
        for c in cpu_counts:
            for s in strategies:
                order = (("a", a), ("b", b)) if r % 2 == 0 else (("b", b), ("a", a))
                for side, command in order:
                    result = run_once(command, s, c, workload, duration, extra)
                    samples[(side, s, c)].append(result["ns_per_op"])
                    engines[side] = result["engine"]
                    if progress:
                        progress(f"repeat {r + 1}/{repeat} {s} cpus={c} {side}: {result['ns_per_op']:.1f} ns/op")
    rows = []
    for c in cpu_counts:
        for s in strategies:
            va, vb = samples[("a", s, c)], samples[("b", s, c)]
            rows.append({"strategy": s, "cpus": c, "a_ns": statistics.median(va), "b_ns": statistics.median(vb),
                         "paired_b_over_a": statistics.median(y / x for x, y in zip(va, vb)),
                         "a_samples": [round(x, 2) for x in va], "b_samples": [round(x, 2) for x in vb]})
    return {"workload": workload, "duration_s": duration, "repeat": repeat, "engines": engines, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", required=True, help="command line of side A (e.g. a venv's percpu)")
    p.add_argument("--b", required=True, help="command line of side B")
    p.add_argument("--strategies", default="refcount,tlbstate")
    p.add_argument("--cpus", default="1,2")
    p.add_argument("--workload", default="lazy-roundtrip")
    p.add_argument("--duration", type=float, default=1.0)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--extra", default="", help="more `percpu run` options for both sides")
    p.add_argument("--out", help="write the samples and medians as JSON here")
    args = p.parse_args(argv)
    doc = measure(shlex.split(args.a), shlex.split(args.b), args.strategies.split(","),
                  [int(c) for c in args.cpus.split(",")], args.workload, args.duration, args.repeat,
                  shlex.split(args.extra), progress=lambda line: print(line, file=sys.stderr))
    doc["a"], doc["b"] = args.a, args.b
    print(f"A: {args.a} (engine {doc['engines'].get('a')})\nB: {args.b} (engine {doc['engines'].get('b')})")
    print(f"{args.workload}, median of {args.repeat} interleaved runs of {args.duration:g} s; ns per op")
    print(f"{'strategy':<10} {'CPUs':>4} {'A ns':>9} {'B ns':>9} {'B / A (paired)':>15}")
    for row in doc["rows"]:
        print(f"{row['strategy']:<10} {row['cpus']:>4} {row['a_ns']:>9.1f} {row['b_ns']:>9.1f} "
              f"{row['paired_b_over_a']:>14.3f}x")
    write_document(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
