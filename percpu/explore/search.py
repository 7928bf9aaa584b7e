"""Harness: the explorer's search (stateless model checking, as CHESS).

A schedule is the list of choices made at the points where more than one
actor could go. The default choice keeps the running CPU running; any other
choice while it could go on is a *preemption*. `explore` tries every
schedule with at most `bound` preemptions (depth first, re-running the
scenario from scratch for each), for bounds 0, 1, ... up to the bound, and
stops at the first bound that shows a violation, so the schedule it reports
has the fewest preemptions, and among those the fewest steps found. States
are fingerprinted (shared memory, each CPU's history of (operation, result),
its store buffer and whether it is blocked); a state already explored with
as few preemptions is not explored again. `distinct states` counts
fingerprints.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

from percpu.explore.machine import Result, Run
from percpu.machine.segment import SharedState
from percpu.machine.stats import COUNTERS, HIST_BUCKETS, HISTOGRAMS


@dataclass
class Config:
    strategy: str
    scenario: str
    cpus: int = 2
    tso: bool = False
    kernel: str = "6.18"
    flush: str = "ipi"
    max_steps: int = 5000
    drop_barrier: str = ""  # a kernel function whose smp_mb() calls are removed


def make_state(cfg: Config) -> SharedState:
    return SharedState(ncpus=cfg.cpus, nmm=2 + 2 * cfg.cpus, ntasks=4 * cfg.cpus + 4, npipes=0,
                       counters=COUNTERS, hist_buckets=len(HISTOGRAMS) * HIST_BUCKETS)


@dataclass
class Report:
    config: Config
    mode: str  # "exhaustive" or "random"
    bound: int  # preemption bound explored (exhaustive)
    schedules: int = 0
    complete: int = 0
    pruned: int = 0
    states: int = 0
    seconds: float = 0.0
    exhausted: bool = False  # every schedule within the bound was explored
    violating_schedules: int = 0
    barriers_dropped: int = 0  # smp_mb() calls removed by Config.drop_barrier, over all schedules
    best: Result | None = None

    def count(self, result: Result) -> None:
        """Account one schedule's result."""
        self.schedules += 1
        self.barriers_dropped += result.barriers_dropped
        if result.outcome == "pruned":
            self.pruned += 1
        else:
            self.complete += 1
        if result.outcome == "violation":
            self.violating_schedules += 1
            if _better(result, self.best):
                self.best = result


class _Node:
    """A decision point of the depth-first search."""

    __slots__ = ("options", "default", "cost_before", "cur_can_go", "chosen", "tried")

    def __init__(self, options, default, cost_before, cur_can_go, chosen):
        self.options, self.default, self.cost_before = options, default, cost_before
        self.cur_can_go, self.chosen, self.tried = cur_can_go, chosen, {chosen}

    def next_alternative(self, bound):
        for o in self.options:
            cost = 1 if (o != self.default and self.cur_can_go) else 0
            if o not in self.tried and self.cost_before + cost <= bound:
                self.tried.add(o)
                self.chosen = o
                return o
        return None


def _better(a: Result, b: Result | None) -> bool:
    return b is None or (a.preemptions, len(a.steps)) < (b.preemptions, len(b.steps))


def explore(cfg: Config, bound: int = 2, max_schedules: int = 20000, progress=None) -> Report:
    """Exhaustive search with preemption bounds 0..bound, stopping at the
    first bound with a violation."""
    state = make_state(cfg)
    start = time.perf_counter()
    report = Report(cfg, "exhaustive", bound)
    fingerprints: set = set()
    try:
        for b in range(bound + 1):
            report.bound = b
            visited: dict = {}
            stack: list[_Node] = []
            prefix: list = []
            while True:
                if report.schedules >= max_schedules:
                    report.exhausted = False
                    return report
                result = Run(cfg, state, prefix, visited=visited, fingerprints=fingerprints).execute()
                report.count(result)
                if progress is not None:
                    progress(report)
                for options, default, chosen, cost_before, cur_can_go in result.decisions[len(prefix):]:
                    stack.append(_Node(options, default, cost_before, cur_can_go, chosen))
                prefix = None
                while stack:
                    alternative = stack[-1].next_alternative(b)
                    if alternative is not None:
                        prefix = [node.chosen for node in stack]
                        break
                    stack.pop()
                if prefix is None:
                    break
            if report.best is not None:
                break
        report.exhausted = True
        return report
    finally:
        report.states = len(fingerprints)
        report.seconds = time.perf_counter() - start
        state.close()


def explore_random(cfg: Config, schedules: int, seed: int = 1, switch_probability: float = 0.1,
                   progress=None) -> Report:
    """Random schedules: at each decision, a random actor with the given
    probability, else the default."""
    state = make_state(cfg)
    rng = random.Random(seed)
    start = time.perf_counter()
    report = Report(cfg, "random", -1)
    fingerprints: set = set()

    def chooser(options, default):
        return rng.choice(options) if rng.random() < switch_probability else default

    try:
        for _ in range(schedules):
            result = Run(cfg, state, [], chooser=chooser, fingerprints=fingerprints).execute()
            report.count(result)
            if progress is not None:
                progress(report)
        return report
    finally:
        report.states = len(fingerprints)
        report.seconds = time.perf_counter() - start
        state.close()


def replay(cfg: Config, choices: list) -> Result:
    state = make_state(cfg)
    try:
        return Run(cfg, state, list(choices)).execute()
    finally:
        state.close()
