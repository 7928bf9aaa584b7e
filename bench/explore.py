"""The explorer's figures in the README, measured in one go: the barrier
table (is each smp_mb needed on x86?), the safe strategies at 2 CPUs bound
2 and 3 CPUs bound 1, the flush models, CPU hotplug on 6.12 and 6.18, the
unbounded (sleep-set) searches with a time limit each, and the litmus
folder.

    python -P -m percpu.bench.explore --out bench/results/explore-2core.json

Run it from the repository root (the litmus tests are read from
tests/data/litmus). Each row is one search; seconds are wall time of that
search alone (one process, nothing else of this script running beside it),
so the load of the machine shows in them: the load averages are recorded.
`--only barrier,flush,...` picks tables.
"""
from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import sys
import time

import percpu

percpu.use_engine("interpreted")  # the explorer's engine, chosen before any engine module loads

from percpu.bench import write_document  # noqa: E402
from percpu.explore.litmus import load_test, run_test  # noqa: E402
from percpu.explore.scenarios import LAZY_TLB_SCENARIOS as LAZY_TLB  # noqa: E402
from percpu.explore.search import Config, Report, explore  # noqa: E402
from percpu.linux.include_.linux.version import FLUSHES  # noqa: E402
from percpu.strategies import SAFE_STRATEGIES as SAFE  # noqa: E402


class OutOfTime(Exception):
    pass


def barrier_rows():
    lazy_return = dict(strategy="refcount", scenario="munmap-race")
    reader = dict(strategy="hazard", scenario="hazptr-try-protect")
    return [
        *((dict(lazy_return, strategy=s, tso=True, drop_barrier="switch_mm_irqs_off"), 2) for s in SAFE),
        (dict(lazy_return, tso=False, drop_barrier="switch_mm_irqs_off"), 2),
        (dict(lazy_return, tso=True), 2),
        (dict(reader, tso=True, drop_barrier="hazptr_load_try_protect"), 1),
        (dict(reader, tso=False, drop_barrier="hazptr_load_try_protect"), 2),
        (dict(reader, tso=True), 1),
        (dict(reader, tso=True), 2),
    ]


def tables(only):
    rows = []
    if "barrier" in only:
        rows += [("barrier", Config(cpus=2, **kw), bound) for kw, bound in barrier_rows()]
    if "safe" in only:
        for cpus, bound in ((2, 2), (3, 1)):
            rows += [("safe", Config(s, scenario, cpus), bound) for scenario in LAZY_TLB for s in SAFE]
    if "flush" in only:
        rows += [("flush", Config(s, "exit-race", 2, flush=flush), 1)
                 for s in (*SAFE, "unsafe") for flush in FLUSHES]
    if "hotplug" in only:
        rows += [("hotplug", Config(s, "hotplug", 2, kernel=kernel), 2) for s in SAFE for kernel in ("6.12", "6.18")]
    if "unbounded" in only:
        rows += [("unbounded", Config(s, scenario, cpus), None)
                 for cpus in (2, 3) for scenario in LAZY_TLB for s in ("refcount", "tlbstate")]
        rows += [("unbounded", Config("hazard", "hazptr-try-protect", 2, tso=tso), None) for tso in (False, True)]
    return rows


def measure(table, cfg, bound, max_schedules, time_limit):
    deadline = time.monotonic() + time_limit

    def progress(report):
        if time.monotonic() > deadline:
            raise OutOfTime

    started = time.monotonic()
    report = Report(cfg, "bounded" if bound is not None else "reduced", bound)  # filled in, also when cut short
    try:
        explore(cfg, bound=bound, max_schedules=max_schedules, progress=progress, por=bound is None, report=report)
        timed_out = False
    except OutOfTime:
        timed_out = True
    seconds = time.monotonic() - started
    row = {"table": table, "strategy": cfg.strategy, "scenario": cfg.scenario, "cpus": cfg.cpus,
           "kernel": cfg.kernel, "tso": cfg.tso,
           "flush": cfg.flush, "drop_barrier": cfg.drop_barrier, "bound": bound, "seconds": round(seconds, 2),
           "timed_out": timed_out}
    best = report.best
    row.update(schedules=report.schedules, complete=report.complete, states=report.states, cut=report.cut,
               exhaustive=report.exhaustive, exhausted=report.exhausted,
               result="safe" if best is None else best.violations[0]["kind"],
               preemptions=None if best is None else best.preemptions)
    return row


def litmus(directory, repeat):
    rows = []
    for path in sorted(glob.glob(os.path.join(directory, "*.litmus"))):
        test = load_test(path)
        times, outcome = [], None
        for _ in range(repeat):
            started = time.perf_counter()
            outcome = run_test(test)
            times.append(time.perf_counter() - started)
        rows.append({"test": test.name, "cpus": len(test.programs), "verdict": outcome.verdict,
                     "states": len(outcome.states), "positive": outcome.positive, "negative": outcome.negative,
                     "schedules": outcome.report.schedules, "complete": outcome.report.complete,
                     "seconds": round(statistics.median(times), 3)})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="barrier,safe,flush,hotplug,unbounded,litmus")
    parser.add_argument("--max-schedules", type=int, default=200000)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per unbounded search")
    parser.add_argument("--litmus-dir", default="tests/data/litmus")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each litmus test (median seconds)")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    doc = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                       "cores": os.cpu_count()},
           "load_before": os.getloadavg(), "rows": []}
    for table, cfg, bound in tables(only):
        limit = args.time_limit if bound is None else 3600.0
        row = measure(table, cfg, bound, args.max_schedules, limit)
        doc["rows"].append(row)
        print(row, file=sys.stderr, flush=True)
    if "litmus" in only:
        doc["litmus"] = litmus(args.litmus_dir, args.repeat)
    doc["load_after"] = os.getloadavg()
    write_document(args.out, doc)


if __name__ == "__main__":
    main()
