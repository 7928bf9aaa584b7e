"""How start-up grows with the number of emulated CPUs.

Runs `percpu run --cpus N --duration D --json` for each N, the counts
interleaved and repeated, and reports per N the medians of: start-up (the
run document's `startup_s`: from the first fork until every CPU waits at the
start barrier) and the whole command's wall time (Python's start and
imports, start-up, the run, the CPUs' exit and the report), with the load
averages before and after; then how start-up grows from one count to the
next (the exponent k in time ~ N^k: 1 is linear).

    python -m percpu.bench.startup --cpus 2,8,32,64,128,256 --repeat 5 \\
        --out bench/results/startup-2core.json

`--percpu` names another installation's command (e.g. an older venv's
percpu) to measure it the same way.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

from percpu.bench import write_document


def run_once(command: list[str], cpus: int, duration: float, timeout: float) -> dict:
    args = [*command, "run", "--cpus", str(cpus), "--duration", repr(duration), "--json"]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"startup: {shlex.join(args)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    doc = json.loads(done.stdout)
    return {"startup_s": doc.get("startup_s"), "wall_s": wall, "verdict": doc["verdict"]}


def growth(rows: list[dict], key: str) -> list[dict]:
    """Between consecutive counts: k in time ~ N^k."""
    out = []
    for low, high in zip(rows, rows[1:]):
        if low[key] and high[key]:
            k = math.log(high[key] / low[key]) / math.log(high["cpus"] / low["cpus"])
            out.append({"from_cpus": low["cpus"], "to_cpus": high["cpus"], "exponent": round(k, 2)})
    return out


def measure(command: list[str], counts: list[int], duration: float, repeat: int, timeout: float, progress=None):
    samples = {n: [] for n in counts}
    for r in range(repeat):
        for n in (counts if r % 2 == 0 else counts[::-1]):  # interleaved, the order alternating
            samples[n].append(run_once(command, n, duration, timeout))
            if progress:
                last = samples[n][-1]
                progress(f"repeat {r + 1}/{repeat} cpus={n}: start-up {last['startup_s']} s, wall {last['wall_s']:.2f} s")
    rows = []
    for n in counts:
        startups = [s["startup_s"] for s in samples[n] if s["startup_s"] is not None]
        rows.append({
            "cpus": n,
            "startup_s": round(statistics.median(startups), 3) if startups else None,
            "wall_s": round(statistics.median(s["wall_s"] for s in samples[n]), 3),
            "startup_samples": startups,
            "wall_samples": [round(s["wall_s"], 3) for s in samples[n]],
        })
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpus", default="2,8,32,64,128,256", help="CPU counts, ascending")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--duration", type=float, default=0.2, help="seconds of measurement in each run")
    p.add_argument("--percpu", default="percpu", help="the percpu command to measure (default: on PATH)")
    p.add_argument("--timeout", type=float, default=600, help="seconds before one run counts as failed")
    p.add_argument("--out", help="write the samples and medians as JSON here")
    args = p.parse_args(argv)
    counts = sorted({int(c) for c in args.cpus.split(",")})
    load_before = os.getloadavg()
    rows = measure(shlex.split(args.percpu), counts, args.duration, args.repeat, args.timeout,
                   progress=lambda line: print(line, file=sys.stderr))
    doc = {
        "benchmark": "startup",
        "command": shlex.join([sys.executable, "-m", "percpu.bench.startup", *(argv or sys.argv[1:])]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"hostname": platform.node(), "cores": len(os.sched_getaffinity(0)), "kernel": platform.release(),
                    "python": platform.python_version(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "percpu": args.percpu, "duration_s": args.duration, "repeat": args.repeat,
        "rows": rows, "startup_growth": growth(rows, "startup_s"),
    }
    m = doc["machine"]
    print(f"{args.percpu}: start-up and wall time by CPU count, median of {args.repeat} interleaved runs of "
          f"{args.duration:g} s; {m['cores']} cores, load average {load_before[0]:.1f} -> {m['load_average_after'][0]:.1f}")
    print(f"{'CPUs':>5} {'start-up s':>11} {'wall s':>8}")
    for row in rows:
        startup = "-" if row["startup_s"] is None else f"{row['startup_s']:.3f}"
        print(f"{row['cpus']:>5} {startup:>11} {row['wall_s']:>8.2f}")
    for g in doc["startup_growth"]:
        print(f"start-up from {g['from_cpus']} to {g['to_cpus']} CPUs grows as N^{g['exponent']:g}")
    write_document(args.out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
