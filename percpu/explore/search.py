"""Harness: the explorer's search (stateless model checking, as CHESS).

A schedule is the list of choices made at the points where more than one
actor could go. The default choice keeps the running CPU running; any other
choice while it could go on is a *preemption*. Three exhaustive searches,
each re-running the program from scratch for every schedule, depth first:

- bounded (`bound` = P): every schedule with at most P preemptions, for
  bounds 0, 1, ... P, stopping at the first bound that shows a violation,
  so the schedule reported has the fewest preemptions, and among those the
  fewest steps found; a state already explored with as few preemptions and
  the same CPU running is not explored again. Choices the bound forbade are
  counted (`Report.cut`): with none, the search was exhaustive.
- unbounded (`bound=None`): every schedule; a state already explored is not
  explored again; the first violation ends the search.
- reduced (`bound=None, por=True`): the unbounded search with sleep sets
  (percpu/explore/por.py): one schedule per class of equivalent
  interleavings; with `cache`, a state already explored is explored again
  only along what was asleep then and is not now; the first violation ends
  the search.

States are fingerprinted (shared memory, each CPU's history of (operation,
result), its store buffer and whether it is blocked); `distinct states`
counts fingerprints.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from percpu.explore.machine import Result, Run
from percpu.explore.por import SleepSets
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
    config: object
    mode: str  # "bounded", "unbounded", "reduced" or "random"
    bound: int | None  # preemption bound explored (bounded)
    schedules: int = 0
    complete: int = 0
    pruned: int = 0  # cut at a known state
    blocked: int = 0  # cut where every enabled actor was asleep (reduced)
    states: int = 0
    seconds: float = 0.0
    exhausted: bool = False  # the search ran to its end (not stopped by max_schedules or an interrupt)
    cut: int = 0  # choices not taken because of the preemption bound
    violating_schedules: int = 0
    barriers_dropped: int = 0  # smp_mb() calls removed by Config.drop_barrier, over all schedules
    best: Result | None = None
    finals: dict = field(default_factory=dict)  # end state -> the executions that reached it

    @property
    def exhaustive(self) -> bool:
        """Every schedule was explored: no choice cut by a bound or a limit."""
        return self.exhausted and self.cut == 0 and self.mode != "random"

    def count(self, result: Result) -> None:
        """Account one schedule's result."""
        self.schedules += 1
        self.barriers_dropped += result.barriers_dropped
        if result.outcome == "pruned":
            self.pruned += 1
        elif result.outcome == "sleep-blocked":
            self.blocked += 1
        else:
            self.complete += 1
        if result.final is not None:
            executions = self.finals.setdefault(result.final, set())
            if result.execution is not None:
                executions.add(result.execution)
        if result.outcome == "violation":
            self.violating_schedules += 1
            if _better(result, self.best):
                self.best = result


class _Node:
    """A decision point of the bounded depth-first search."""

    __slots__ = ("options", "default", "cost_before", "cur_can_go", "chosen", "tried")

    def __init__(self, options, default, cost_before, cur_can_go, chosen):
        self.options, self.default, self.cost_before = options, default, cost_before
        self.cur_can_go, self.chosen, self.tried = cur_can_go, chosen, {chosen}

    def _cost(self, o):
        return 1 if (o != self.default and self.cur_can_go) else 0

    def next_alternative(self, bound):
        for o in self.options:
            if o not in self.tried and (bound is None or self.cost_before + self._cost(o) <= bound):
                self.tried.add(o)
                self.chosen = o
                return o
        return None

    def cut(self) -> int:
        """Options never tried (the bound forbade them)."""
        return len(self.options) - len(self.tried)


def _better(a: Result, b: Result | None) -> bool:
    return b is None or (a.preemptions, len(a.steps)) < (b.preemptions, len(b.steps))


def search(run, report: Report, bound: int | None, max_schedules: int, progress=None,
           fingerprints: set | None = None, por: bool = False, cache: bool = True) -> Report:
    """The exhaustive searches over `run(prefix, **interleaving options) -> Result`
    (the module's docstring); `report` is filled in, also when interrupted."""
    start = time.perf_counter()
    fingerprints = set() if fingerprints is None else fingerprints
    try:
        if por:
            _reduced(run, report, max_schedules, progress, fingerprints, cache)
        else:
            for b in (range(bound + 1) if bound is not None else [None]):
                report.bound = b
                if not _bounded(run, report, b, max_schedules, progress, fingerprints) or report.best is not None:
                    break
        return report
    finally:
        report.states = len(fingerprints)
        report.seconds = time.perf_counter() - start


def _bounded(run, report, b, max_schedules, progress, fingerprints) -> bool:
    """One depth-first pass at bound `b` (None: unbounded); False when stopped early."""
    visited: dict = {}
    stack: list[_Node] = []
    prefix: list = []
    report.cut = 0
    while True:
        if report.schedules >= max_schedules:
            report.exhausted = False
            return False
        result = run(prefix, visited=visited, fingerprints=fingerprints, bounded=b is not None)
        report.count(result)
        if progress is not None:
            progress(report)
        if b is None and report.best is not None:
            return False  # no bound: the first violation ends the search
        for options, default, chosen, cost_before, cur_can_go in result.decisions[len(prefix):]:
            stack.append(_Node(options, default, cost_before, cur_can_go, chosen))
        prefix = None
        while stack:
            alternative = stack[-1].next_alternative(b)
            if alternative is not None:
                prefix = [node.chosen for node in stack]
                break
            report.cut += stack.pop().cut()
        if prefix is None:
            report.exhausted = True
            return True


def _reduced(run, report, max_schedules, progress, fingerprints, cache) -> None:
    """The sleep-set search (percpu/explore/por.py)."""
    report.bound = None
    visited: dict | None = {} if cache else None
    stack: list = []
    prefix: list = []
    start, sleep = -1, {}
    while True:
        if report.schedules >= max_schedules:
            report.exhausted = False
            return
        policy = SleepSets(start, sleep, visited, fingerprints)
        result = run(prefix, por=policy, bounded=False)
        report.count(result)
        if progress is not None:
            progress(report)
        if report.best is not None:
            return  # the first violation ends the search
        if start >= 0 and policy.first is not None:
            stack[start].done[stack[start].chosen] = policy.first
        stack.extend(policy.nodes)
        prefix = None
        while stack:
            node = stack[-1]
            if node.todo:
                node.chosen = node.todo.pop(0)
                start, sleep = len(stack) - 1, node.candidates()
                prefix = [n.chosen for n in stack]
                break
            stack.pop()
        if prefix is None:
            report.exhausted = True
            return


def explore(cfg: Config, bound: int | None = 2, max_schedules: int = 20000, progress=None, por: bool = False,
            report: Report | None = None) -> Report:
    """Exhaustive search of a kernel scenario (the module's docstring)."""
    state = make_state(cfg)
    mode = "reduced" if por else ("bounded" if bound is not None else "unbounded")
    report = report if report is not None else Report(cfg, mode, bound)

    def run(prefix, **options):
        return Run(cfg, state, prefix, **options).execute()

    try:
        return search(run, report, bound, max_schedules, progress, por=por)
    finally:
        state.close()


def explore_random(cfg: Config, schedules: int, seed: int = 1, switch_probability: float = 0.1,
                   progress=None, report: Report | None = None) -> Report:
    """Random schedules: at each decision, a random actor with the given
    probability, else the default."""
    state = make_state(cfg)
    rng = random.Random(seed)
    start = time.perf_counter()
    report = report if report is not None else Report(cfg, "random", None)
    fingerprints: set = set()

    def chooser(options, default):
        return rng.choice(options) if rng.random() < switch_probability else default

    try:
        for _ in range(schedules):
            result = Run(cfg, state, [], chooser=chooser, fingerprints=fingerprints).execute()
            report.count(result)
            if progress is not None:
                progress(report)
        report.exhausted = True
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
