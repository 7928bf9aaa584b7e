"""percpu explore: the deterministic interleaving explorer finds every broken
variant, keeps every safe strategy clean, and replays a schedule exactly."""
import glob
import json
import os
import signal
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from broken_strategies import BROKEN, BROKEN_VARIANT
from conftest import percpu_cli, percpu_command
from percpu.cli import app
from percpu import strategies
from percpu.explore.machine import Interleaving, NextSteps
from percpu.explore.scenarios import LAZY_TLB_SCENARIOS, SITE_HP_READER
from percpu.explore.schedule import load_schedule
from percpu.explore.search import Config, explore, explore_random, replay
from percpu.strategies import SAFE_STRATEGIES, STRATEGIES
from percpu.linux.include_.linux.version import FLUSHES
from percpu.machine.checker import site_name

DATA = os.path.join(os.path.dirname(__file__), "data", "explore")
SCHEDULES = sorted(glob.glob(os.path.join(DATA, "*.json")))


@pytest.fixture(autouse=True)
def broken_registered(monkeypatch):
    registry = dict(strategies.STRATEGIES)
    registry.update({b.name: b for b in BROKEN})
    monkeypatch.setattr(strategies, "STRATEGIES", registry)


# (strategy, flush model) for every flush model a strategy is declared safe under
SAFE_UNDER = [(s, f) for s in SAFE_STRATEGIES for f in FLUSHES if f in STRATEGIES[s].safe_under]
NOT_SAFE_UNDER = [(s, f) for s in STRATEGIES for f in FLUSHES if f not in STRATEGIES[s].safe_under]
# the lifetime a violation shows broken: the page tables or the mm_struct
LIFETIME_KINDS = {"freed-while-loaded", "use-after-free", "page-table-use-after-free", "stale-tlb"}


@pytest.mark.parametrize("scenario", LAZY_TLB_SCENARIOS)
@pytest.mark.parametrize("strategy,flush", SAFE_UNDER)
def test_safe_strategy_has_no_violation_up_to_one_preemption(strategy, flush, scenario):
    """Clean wherever its safe_under says (with the other half below: safe_under is what the explorer finds)."""
    report = explore(Config(strategy, scenario, 2, flush=flush), bound=1, max_schedules=5000)
    assert report.exhausted, "the bound was not explored completely"
    assert report.best is None, report.best.violations
    assert report.complete > 1 and report.states > report.complete  # it did explore


@pytest.mark.parametrize("strategy,flush", NOT_SAFE_UNDER)
def test_strategy_is_caught_under_every_flush_model_it_is_not_safe_under(strategy, flush):
    """Where safe_under leaves a flush model out, some scenario shows a
    lifetime broken (tlbstate and lazy-mm under broadcast: no flush IPI moves
    a lazy CPU off the mm; unsafe under both)."""
    for scenario in LAZY_TLB_SCENARIOS:
        report = explore(Config(strategy, scenario, 2, flush=flush), bound=1, max_schedules=5000)
        if report.best is not None:
            assert {v["kind"] for v in report.best.violations} & LIFETIME_KINDS, report.best.violations
            return
    pytest.fail(f"{strategy} is clean under --flush {flush} in every scenario: add it to its safe_under")


# Where each broken variant is caught, under its caught_under flush model
# (tests/broken_strategies.py): every scenario, both CPU counts. Under
# "ipi" x86's exit flush already moves every lazy CPU off the mm before
# __mmdrop, so shootdown-misses-one and hazard-noscan, whose missing step
# only repeats that move, are caught under "broadcast" (and are clean
# under "ipi": the test after this one).
def _caught_under(strategy):
    return getattr(STRATEGIES.get(strategy) or BROKEN_BY_NAME[strategy], "caught_under", "ipi")


BROKEN_BY_NAME = {b.name: b for b in BROKEN}


@pytest.mark.parametrize("cpus", [2, 3])
@pytest.mark.parametrize("scenario", LAZY_TLB_SCENARIOS)
@pytest.mark.parametrize("strategy", ["unsafe", *(b.name for b in BROKEN)])
def test_explorer_finds_every_broken_strategy(strategy, scenario, cpus):
    cfg = Config(strategy, scenario, cpus, flush=_caught_under(strategy))
    report = explore(cfg, bound=1, max_schedules=2000)
    assert report.best is not None, f"{strategy} not caught in {scenario}"
    kinds = {v["kind"] for v in report.best.violations}
    expected = {"bad-end-state", "leaked-mm"} if strategy == "broken-refcount-leaky" else LIFETIME_KINDS
    assert kinds & expected, kinds
    # the reported schedule replays to the same violation
    again = replay(cfg, report.best.choices)
    assert again.outcome == "violation"
    assert [s.op for s in again.steps] == [s.op for s in report.best.steps]


@pytest.mark.parametrize("scenario", LAZY_TLB_SCENARIOS)
@pytest.mark.parametrize("strategy", [b.name for b in BROKEN if b.caught_under == "broadcast"])
def test_exit_flush_ipi_covers_a_missing_teardown_step(strategy, scenario):
    """Under --flush ipi the freed-tables flush of exit_mmap IPIs every CPU
    in mm_cpumask, lazy ones included, and each leaves the mm for init_mm:
    by __mmdrop no CPU uses it, and the broken teardown step is not missed."""
    report = explore(Config(strategy, scenario, 2, flush="ipi"), bound=1, max_schedules=5000)
    assert report.exhausted and report.best is None, report.best and report.best.violations


# --- CPU hotplug: finish_cpu runs on a surviving CPU ------------------------------
@pytest.mark.parametrize("strategy,flush", [(s, f) for s, f in SAFE_UNDER if s != "hazard"])
def test_hotplug_is_clean_where_the_exit_flush_or_a_reference_covers_the_dead_cpu(strategy, flush):
    """refcount's finish_cpu drops the dead idle task's real reference;
    shootdown and tlbstate hold nothing per CPU. lazy-mm (hotplug_safe
    False) is clean here too under "ipi": finish_cpu does clear the control
    CPU's own rq->lazy_mm, but a CPU lazy on an mm is in its mm_cpumask,
    so the freed-tables flush IPI moves it to init_mm before the mm is
    freed; the lost lazy_mm matters only where no flush IPI is sent, and
    lazy-mm is not safe under "broadcast" without hotplug either."""
    report = explore(Config(strategy, "hotplug", 2, flush=flush), bound=1, max_schedules=5000)
    assert report.exhausted and report.best is None, report.best and report.best.violations
    assert report.complete > 1


def test_hazard_hotplug_hangs_in_hp_scan():
    """finish_cpu's mmdrop_lazy_tlb clears the control CPU's own hazard
    slot; the dead CPU's slot keeps its lazy mm. The teardown's hp_scan
    finds it, its IPIs fail (offline) or change nothing (the CPU, up again,
    runs on init_mm), and it waits for the slot forever: every CPU ends
    blocked, a deadlock (on hardware, the CPU spinning in __mmdrop)."""
    cfg = Config("hazard", "hotplug", 2, kernel="6.12")
    report = explore(cfg, bound=1, max_schedules=5000)
    assert report.best is not None and report.best.preemptions == 1
    assert [v["kind"] for v in report.best.violations] == ["deadlock"]
    spinning = [s for s in report.best.steps if s.actor == 0 and s.where.endswith("hp_scan > spin_until > _wait")]
    assert spinning and all(s.result != 0 for s in spinning[-1:])  # the slot it waits on still holds the mm
    finish = [s for s in report.best.steps if "finish_cpu" in s.where and s.op == "store"]
    assert any(s.actor == 0 and s.where.endswith("finish_cpu > mmdrop_lazy_tlb") for s in finish)
    assert replay(cfg, report.best.choices).violations[0]["kind"] == "deadlock"


@pytest.mark.parametrize("strategy,caught", [("refcount", "page-table-use-after-free"),
                                              ("tlbstate", "freed-while-loaded")])
def test_6_12_cpu_down_window_and_6_18_sched_force_init_mm(strategy, caught):
    """6.12: a CPU going down leaves cpu_online_mask (__cpu_disable) still
    lazy on an mm, and stays on it until idle_task_exit; the exit flush,
    sent only to online CPUs, skips it, and the mm's page tables (refcount
    keeps the mm_struct) or the mm itself (tlbstate keeps nothing) go while
    it is loaded there. 6.14+ switches it to init_mm first
    (sched_force_init_mm, from sched_cpu_wait_empty): clean."""
    old = explore(Config(strategy, "hotplug", 2, kernel="6.12"), bound=2)
    assert old.best is not None and old.best.preemptions == 2, old.best
    assert [v["kind"] for v in old.best.violations] == [caught]
    disabled = max(i for i, s in enumerate(old.best.steps) if s.actor == 1 and s.where.endswith("set_cpu_online"))
    assert not any(s.actor == 1 and "switch_mm" in s.where for s in old.best.steps[disabled:])  # still on the mm
    new = explore(Config(strategy, "hotplug", 2, kernel="6.18"), bound=2)
    assert new.exhausted and new.best is None and new.complete > 1


def test_every_broken_variant_and_unsafe_has_a_kept_schedule():
    kept = {json.load(open(p))["strategy"] for p in SCHEDULES}
    assert {"unsafe", *(b.name for b in BROKEN)} <= kept
    assert set(BROKEN_VARIANT) == set(SAFE_STRATEGIES)


# the explorer's findings about the real schemes, each kept (README: percpu explore)
FINDINGS = {
    "tlbstate-exit-race-cpus2-broadcast.json": "freed-while-loaded",  # no flush IPI moves the lazy CPU
    "lazy-mm-exit-race-cpus2-broadcast.json": "freed-while-loaded",
    "hazard-hotplug-cpus2-kernel6.12.json": "deadlock",  # hp_scan waits on the dead CPU's slot
    "lazy-mm-hotplug-cpus2-kernel6.12.json": "freed-while-loaded",  # 6.12's cpu_down window
    "hazard-hazptr-try-protect-cpus2-tso-no-mb-hazptr_load_try_protect.json": "use-after-free",
    # x86's lazy-return smp_mb is needed (a 2-preemption store-buffering window)
    "refcount-munmap-race-cpus2-tso-no-mb-switch_mm_irqs_off.json": "stale-tlb",
}


@pytest.mark.parametrize("name", FINDINGS)
def test_each_finding_is_kept_and_replays(name):
    cfg, doc = load_schedule(os.path.join(DATA, name))
    assert cfg.strategy in SAFE_STRATEGIES  # a real scheme, not a broken control
    result = replay(cfg, doc["choices"])
    assert result.outcome == "violation" and result.violations[0]["kind"] == FINDINGS[name]
    assert result.preemptions == doc["preemptions"]


@pytest.mark.parametrize("path", SCHEDULES, ids=os.path.basename)
def test_kept_schedule_replays_the_same_violation(path):
    cfg, doc = load_schedule(path)
    result = replay(cfg, doc["choices"])
    assert result.outcome == "violation"
    assert len(result.steps) == doc["steps"]
    assert result.violations[0]["kind"] == doc["violations"][0]["kind"]
    assert result.violations[0].get("site") == doc["violations"][0].get("site")


@pytest.mark.parametrize("path", SCHEDULES[:3], ids=os.path.basename)
def test_kept_schedule_does_not_fail_a_safe_strategy(path):
    """The same choices under the strategy the variant breaks: no violation
    (a schedule that diverges is cut short by the replay, not a failure)."""
    cfg, doc = load_schedule(path)
    cfg.strategy = "refcount"
    try:
        result = replay(cfg, doc["choices"])
    except Exception as exc:  # the safe strategy took another path
        assert type(exc).__name__ == "ReplayDiverged"
        return
    assert result.outcome == "ok", result.violations


def test_replay_is_deterministic():
    cfg = Config("shootdown", "fork-exit", 3)
    report = explore_random(cfg, 5, seed=3)
    assert report.best is None
    first = replay(cfg, [])
    second = replay(cfg, [])
    assert [(s.actor, s.op, s.args, s.result) for s in first.steps] == [
        (s.actor, s.op, s.args, s.result) for s in second.steps]


def test_state_caching_keeps_the_verdicts():
    """Pruning at known states cuts schedules, never violations: the
    preemption-bounded search without pruning finds the same."""
    report = explore(Config("broken-hazard-noscan", "exit-race", 2, flush="broadcast"), bound=1)
    assert report.pruned > 0 or report.schedules == 1
    assert report.best is not None and report.best.preemptions == 0


def test_tso_store_buffer_delays_stores_and_atomics_drain_it():
    result = replay(Config("hazard", "exit-race", 2, tso=True, drop_barrier="mmgrab_lazy_tlb"), [])
    ops = [s.op for s in result.steps]
    assert "flush" in ops or any("drains" in op for op in ops)
    # a store sits in the buffer: its own later load sees it before memory does
    assert any("drains" in op for op in ops)


@pytest.mark.parametrize("scenario", LAZY_TLB_SCENARIOS)
@pytest.mark.parametrize("drop_barrier", ["", "mmgrab_lazy_tlb"])
def test_hazard_under_tso_up_to_one_preemption(drop_barrier, scenario):
    """In this emulator's protocol every lazy CPU drops its last reference
    with a locked atomic (mmput's add_return), which drains the store buffer:
    the hazard slot is visible to hp_scan with or without the smp_mb (see
    the README)."""
    report = explore(Config("hazard", scenario, 2, tso=True, drop_barrier=drop_barrier), bound=1, max_schedules=5000)
    assert report.exhausted and report.best is None
    assert bool(report.barriers_dropped) == bool(drop_barrier)


def test_tso_catches_a_missing_store_load_barrier():
    """The RFC's generic hazptr_load_try_protect without its smp_mb: under
    TSO the reader's second load of the source passes its slot store, the
    teardown's hp_scan misses the slot and frees the mm the reader uses."""
    cfg = Config("hazard", "hazptr-try-protect", 2, tso=True, drop_barrier="hazptr_load_try_protect")
    report = explore(cfg, bound=1)
    assert report.best is not None and report.best.preemptions == 1
    v = report.best.violations[0]
    assert v["kind"] == "use-after-free" and v["site"] == site_name(SITE_HP_READER)
    again = replay(cfg, report.best.choices)
    assert again.outcome == "violation"
    assert [(s.actor, s.op, s.args, s.result) for s in again.steps] == [
        (s.actor, s.op, s.args, s.result) for s in report.best.steps]
    # the slot store was still buffered when the teardown scanned past it
    ops = [(s.actor, s.op, s.where) for s in again.steps]
    scan = max(i for i, (a, op, where) in enumerate(ops) if a == 1 and where.endswith("hp_scan"))
    slot = max(i for i, (a, op, where) in enumerate(ops[:scan])
               if a == 0 and op == "store" and where.endswith("hazptr_load_try_protect > hp_allocate"))
    assert not any(a in (0, 2) and ("flush" in op or "drains" in op) for a, op, where in ops[slot:scan])


@pytest.mark.parametrize("drop_barrier,tso", [("hazptr_load_try_protect", False), ("", True)])
def test_store_load_barrier_is_what_matters(drop_barrier, tso):
    """Without store buffers (sequential consistency) the barrier-less reader
    is safe, and with the barrier it is safe under TSO, at the bound that
    finds the barrier-less one under TSO."""
    report = explore(Config("hazard", "hazptr-try-protect", 2, tso=tso, drop_barrier=drop_barrier), bound=1)
    assert report.exhausted and report.best is None and report.complete > 1


def test_violation_found_at_3_cpus():
    """At 3 CPUs the hotplug scenario's third CPU's thread exits too; hazard's
    hp_scan still waits forever on the dead CPU's slot."""
    cfg = Config("hazard", "hotplug", 3, kernel="6.12")
    report = explore(cfg, bound=1)
    assert report.best is not None and report.best.violations[0]["kind"] == "deadlock"
    assert replay(cfg, report.best.choices).outcome == "violation"


def _memory_states(monkeypatch, cfg, bound, forget):
    """Shared memory, store buffers and each CPU's status at every decision
    point the search reaches (no per-CPU history)."""
    seen = set()

    def record(sched):
        seen.add((sched.memory.snapshot(), tuple(map(tuple, sched.memory.buffers)), tuple(sched.status)))
        return _FINGERPRINT(sched)

    monkeypatch.setattr(Interleaving, "fingerprint", record)
    monkeypatch.setattr(Interleaving, "block",
                        _BLOCK if forget else lambda sched, c, epoch, history=None, reads=None: _BLOCK(sched, c, epoch, None, reads))
    report = explore(cfg, bound=bound)
    assert report.exhausted and report.best is None
    return seen, report


_FINGERPRINT, _BLOCK = Interleaving.fingerprint, Interleaving.block


@pytest.mark.parametrize("cfg,bound", [(Config("hazard", "exit-race", 2), 1), (Config("refcount", "exit-race", 3), 0),
                                       (Config("hazard", "exit-race", 2, tso=True), 1)])
def test_forgetting_failed_waits_reaches_the_same_states(monkeypatch, cfg, bound):
    """A failed try of a wait leaves its CPU as it was, so the search drops
    its loads from the fingerprint: it must reach exactly the memory states
    the search that keeps them reaches, with fewer distinct fingerprints."""
    full, slow = _memory_states(monkeypatch, cfg, bound, forget=False)
    reduced, fast = _memory_states(monkeypatch, cfg, bound, forget=True)
    assert reduced == full
    assert fast.states < slow.states and fast.schedules <= slow.schedules


def _finals(monkeypatch, cfg, bound, reduced):
    if not reduced:  # every buffer's flush offered at every point, every blocked CPU woken by any write
        monkeypatch.setattr(NextSteps, "flush_matters", lambda steps, c: True)
        monkeypatch.setattr(NextSteps, "woken", lambda steps, c: steps.memory.write_epoch > steps.block_epoch[c])
    report = explore(cfg, bound=bound, max_schedules=50000)
    monkeypatch.undo()
    assert report.exhausted and report.best is None
    return set(report.finals), report


@pytest.mark.parametrize("cfg,bound", [(Config("hazard", "exit-race", 2, tso=True), 1),
                                       (Config("refcount", "fork-exit", 2, tso=True), 1),
                                       (Config("shootdown", "double-teardown", 2, tso=True), 0),
                                       (Config("lazy-mm", "exit-race", 3), 0)])
def test_flushes_on_demand_and_precise_wakeups_reach_the_same_end_states(monkeypatch, cfg, bound):
    """A buffered store is offered to memory only where another CPU's next
    step could tell (or where it costs no preemption), and a blocked CPU is
    woken only by a write to a word its failed try read: both cut choices
    that lead nowhere new, so the end states are those of the search that
    offers every flush at every point and wakes every blocked CPU at every write."""
    full, slow = _finals(monkeypatch, cfg, bound, reduced=False)
    reduced, fast = _finals(monkeypatch, cfg, bound, reduced=True)
    assert reduced == full and len(full) >= 1
    assert fast.schedules < slow.schedules


def test_three_cpus_exhaust_one_preemption():
    report = explore(Config("refcount", "exit-race", 3), bound=1, max_schedules=5000)
    assert report.exhausted and report.best is None


def test_cli_finds_writes_and_replays(tmp_path):
    out = tmp_path / "s.json"
    found = percpu_cli("explore", "--strategy", "unsafe", "--scenario", "exit-race", "--out", str(out))
    assert found.returncode == 1, found.stderr
    assert "VIOLATION freed-while-loaded" in found.stdout and out.exists()
    again = percpu_cli("explore", "--replay", str(out))
    assert again.returncode == 1 and "reproduced" in again.stdout
    assert [l for l in again.stdout.splitlines() if "CPU" in l and "[" in l] == [
        l for l in found.stdout.splitlines() if "CPU" in l and "[" in l]


def test_cli_tlbstate_is_safe_only_with_the_flush_ipi(tmp_path):
    """tlbstate adds nothing at teardown: x86's freed-tables flush IPI moves
    every lazy CPU to init_mm. With broadcast flushes (INVLPGB) no CPU is
    moved: a lazy CPU keeps the mm loaded while it is freed."""
    clean = percpu_cli("explore", "--strategy", "tlbstate", "--scenario", "exit-race", "--flush", "ipi")
    assert clean.returncode == 0 and "SAFE: no violation" in clean.stdout and "flush=ipi" in clean.stdout, clean.stdout
    out = tmp_path / "b.json"
    found = percpu_cli("explore", "--strategy", "tlbstate", "--scenario", "exit-race", "--flush", "broadcast",
                       "--out", str(out))
    assert found.returncode == 1 and "VIOLATION" in found.stdout and "flush=broadcast" in found.stdout, found.stdout
    assert json.load(open(out))["flush"] == "broadcast"
    again = percpu_cli("explore", "--replay", str(out))
    assert again.returncode == 1 and "reproduced" in again.stdout and "flush=broadcast" in again.stdout, again.stdout


def test_cli_safe_and_bad_input():
    safe = percpu_cli("explore", "--strategy", "refcount", "--scenario", "exit-race", "--bound", "1")
    assert safe.returncode == 0 and "SAFE" in safe.stdout and "distinct states" in safe.stdout
    for args in (["--strategy", "nope", "--scenario", "exit-race"], ["--strategy", "refcount", "--scenario", "x"],
                 ["--strategy", "refcount", "--scenario", "exit-race", "--cpus", "5"], ["--replay", "/nonexistent"]):
        bad = percpu_cli("explore", *args)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, (args, bad.stderr)


@pytest.mark.stress
@pytest.mark.parametrize("cpus,bound", [(2, 2), (3, 1)])
@pytest.mark.parametrize("scenario", LAZY_TLB_SCENARIOS)
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_safe_strategy_deeper(strategy, scenario, cpus, bound):
    report = explore(Config(strategy, scenario, cpus), bound=bound, max_schedules=100000)
    assert report.exhausted
    assert report.best is None, report.best.violations


@pytest.mark.stress
def test_tso_catches_x86_lazy_return_without_its_smp_mb():
    """switch_mm_irqs_off's smp_mb orders the is_lazy clear before the
    tlb_gen read. Without it TSO lets the clear sit in the store buffer
    while the CPU reads the old tlb_gen and flush_tlb_mm_range, reading the
    CPU as still lazy, skips it: the CPU then runs user code with a TLB
    older than a flush that has returned."""
    cfg = Config("refcount", "munmap-race", 2, tso=True, drop_barrier="switch_mm_irqs_off")
    report = explore(cfg, bound=2)
    assert report.barriers_dropped > 0
    assert report.best is not None and report.best.preemptions == 2
    assert [v["kind"] for v in report.best.violations] == ["stale-tlb"]
    steps = report.best.steps
    cleared = max(i for i, s in enumerate(steps) if s.actor == 1 and s.op == "store" and s.args == (0,)
                  and s.where.endswith("switch_mm_irqs_off"))
    skipped = next(i for i, s in enumerate(steps) if s.actor == 0 and s.where.endswith("should_flush_tlb")
                   and s.op == "load" and s.result == 1)
    # the flusher read is_lazy = 1 after the CPU had stored 0: still in its buffer
    assert cleared < skipped
    assert not any(s.actor == 1 and ("flush" in s.op or "drains" in s.op) for s in steps[cleared:skipped])


def test_lazy_return_barrier_matters_only_with_store_buffers():
    """Sequentially consistent memory needs no barrier there: safe at the bound TSO needs."""
    report = explore(Config("refcount", "munmap-race", 2, drop_barrier="switch_mm_irqs_off"), bound=2)
    assert report.barriers_dropped > 0
    assert report.exhausted and report.best is None


@pytest.mark.stress
def test_lazy_return_with_its_smp_mb_is_safe_under_tso():
    report = explore(Config("refcount", "munmap-race", 2, tso=True), bound=2, max_schedules=100000)
    assert report.exhausted and report.best is None


def test_cli_drop_barrier_must_name_a_barrier_that_runs():
    bad = percpu_cli("explore", "--strategy", "refcount", "--scenario", "exit-race", "--bound", "0",
                     "--drop-barrier", "no_such_function")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no_such_function" in bad.stderr, bad.stderr


def test_cli_replay_checks_the_file_scenario(tmp_path):
    doc = json.load(open(os.path.join(DATA, "unsafe-exit-race-cpus2.json")))
    for scenario, words in (("hazptr-try-protect", "written for the hazard strategies"), ("nope", "unknown scenario")):
        path = tmp_path / f"{scenario}.json"
        path.write_text(json.dumps({**doc, "scenario": scenario}))
        bad = percpu_cli("explore", "--replay", str(path))
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and words in bad.stderr, bad.stderr


# --- the unbounded and reduced searches ----------------------------------------------
def test_bounded_search_says_what_the_bound_cut():
    cut = explore(Config("refcount", "exit-race", 2), bound=0)
    assert cut.exhausted and cut.cut > 0 and not cut.exhaustive
    whole = explore(Config("hazard", "hazptr-try-protect", 2), bound=None)
    assert whole.exhausted and whole.cut == 0 and whole.exhaustive


def test_reduced_search_reaches_the_unbounded_states():
    """Sleep sets cut schedules, never states: the reduced search reaches the
    same distinct states and final states as the unreduced unbounded one
    (every scenario and strategy: the stress test below; every litmus test,
    TSO and SC: tests/test_litmus.py)."""
    cfg = Config("hazard", "hazptr-try-protect", 2)
    full = explore(cfg, bound=None, max_schedules=100000)
    reduced = explore(cfg, bound=None, max_schedules=100000, por=True)
    assert full.exhaustive and reduced.exhaustive
    assert set(reduced.finals) == set(full.finals) and full.finals
    assert reduced.states == full.states
    assert reduced.schedules < full.schedules


def test_reduced_search_finds_the_violations():
    for cfg in (Config("unsafe", "exit-race", 2, tso=True), Config("broken-hazard-noscan", "double-teardown", 2, flush="broadcast")):
        report = explore(cfg, bound=None, max_schedules=20000, por=True)
        assert report.best is not None and not report.exhausted, cfg  # the first violation ends it
        assert replay(cfg, report.best.choices).outcome == "violation"


@pytest.mark.stress
@pytest.mark.parametrize("tso", [False, True], ids=["sc", "tso"])
@pytest.mark.parametrize("scenario", LAZY_TLB_SCENARIOS)
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_reduced_search_reaches_the_unbounded_final_states_in_every_scenario(strategy, scenario, tso):
    cfg = Config(strategy, scenario, 2, tso=tso)
    full = explore(cfg, bound=None, max_schedules=10**7)
    reduced = explore(cfg, bound=None, max_schedules=10**7, por=True)
    assert full.exhaustive and reduced.exhaustive and full.best is None and reduced.best is None
    assert set(reduced.finals) == set(full.finals)


# --- bad replay files, interrupted and failed runs (one line, exit 2) -----------------
def _cli(monkeypatch, capsys, *args):
    """The console entry point in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr("sys.argv", ["percpu", *args])
    with pytest.raises(SystemExit) as done:
        app.main()
    out, err = capsys.readouterr()
    return done.value.code, out, err


KEPT = os.path.join(DATA, "unsafe-exit-race-cpus2.json")


@pytest.mark.parametrize("change,words", [
    ({"choices": [0, 7]}, "choice 1 is 7"), ({"choices": [0, -1]}, "choice 1 is -1"),
    ({"choices": [0, 1.5]}, "choice 1 is 1.5"), ({"choices": ["0"]}, "choice 0 is '0'"),
    ({"choices": None}, "no 'choices'"), ({"choices": []}, "'choices' is empty"),
    ({"cpus": "2"}, "'cpus' must be"), ({"cpus": 9}, "from 2 to 4, not 9"), ({"cpus": True}, "'cpus' must be"),
    ({"kernel": "5.10"}, "'kernel' must be one of 6.12, 6.18"), ({"flush": "never"}, "'flush' must be one of ipi, broadcast"),
    ({"kernel": "6.12", "flush": "broadcast"}, "needs --kernel 6.18"), ({"tso": "yes"}, "'tso' must be true or false"),
    ({"drop_barrier": "no such thing"}, "'drop_barrier' must be"), ({"drop_barrier": 3}, "'drop_barrier' must be"),
    ({"strategy": "nope"}, "unknown strategy"), ({"violations": "x"}, "'violations' must be"),
    ({"format": "percpu.explore/1"}, "explore again to write a percpu.explore/2 one"),
])
def test_replay_refuses_a_bad_file(monkeypatch, capsys, tmp_path, change, words):
    doc = {**json.load(open(KEPT)), **change}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({k: v for k, v in doc.items() if v is not None}))
    code, out, err = _cli(monkeypatch, capsys, "explore", "--replay", str(path))
    assert code == 2 and err.count("\n") == 1 and words in err, err


def test_replay_takes_everything_but_the_strategy_from_its_file(monkeypatch, capsys):
    code, out, err = _cli(monkeypatch, capsys, "explore", "--replay", KEPT, "--cpus", "3", "--tso")
    assert code == 2 and err.count("\n") == 1 and "--cpus, --tso" in err, err
    code, out, err = _cli(monkeypatch, capsys, "explore", "--replay", KEPT, "--strategy", "refcount")
    assert code == 0 and "the file's strategy: unsafe" in out and "diverged from the file" in out, out
    assert "no violation" in out


def test_a_search_stopped_by_the_limit_gives_no_verdict(monkeypatch, capsys):
    code, out, err = _cli(monkeypatch, capsys, "explore", "--strategy", "refcount", "--scenario", "exit-race",
                          "--max-schedules", "30")
    assert code == 0 and "NOT exhaustive: stopped at --max-schedules 30" in out, out
    assert "NO VERDICT: no violation in the 30 schedules explored" in out and "SAFE" not in out, out
    assert "every bound up to 0 was explored to its end" in out, out


def test_replay_that_diverges_says_so(monkeypatch, capsys, tmp_path):
    doc = json.load(open(KEPT))
    path = tmp_path / "d.json"
    path.write_text(json.dumps({**doc, "choices": doc["choices"] + [1] * 20}))  # more choices than the run makes
    code, out, err = _cli(monkeypatch, capsys, "explore", "--replay", str(path))
    assert code == 2 and err.count("\n") == 1 and "diverged" in err, err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_corrupted_replay_file_replays_or_is_one_line(monkeypatch, capsys, tmp_path, data):
    """Every outcome of `explore --replay` on a damaged file is a clean replay
    (0 or 1, with its listing) or one line on stderr and exit 2."""
    doc = json.load(open(data.draw(st.sampled_from(SCHEDULES))))
    values = st.one_of(st.none(), st.booleans(), st.integers(-3, 12), st.floats(allow_nan=False), st.text(max_size=6),
                       st.lists(st.integers(-2, 9), max_size=4))
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(doc)))
        if data.draw(st.booleans()):
            doc.pop(key)
        else:
            doc[key] = data.draw(values)
    if "choices" in doc and isinstance(doc["choices"], list) and data.draw(st.booleans()):
        doc["choices"] = doc["choices"][:data.draw(st.integers(0, len(doc["choices"])))]
    text = json.dumps(doc)
    text = text[:data.draw(st.integers(len(text) // 2, len(text)))]
    path = tmp_path / "corrupt.json"
    path.write_text(text)
    code, out, err = _cli(monkeypatch, capsys, "explore", "--replay", str(path))
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("percpu: error: "), err
    else:
        assert code in (0, 1) and not err and out.startswith("replay "), (code, out, err)


def test_out_on_a_full_disk_is_one_line_and_leaves_nothing(monkeypatch, capsys, tmp_path):
    code, out, err = _cli(monkeypatch, capsys, "explore", "--strategy", "unsafe", "--scenario", "exit-race",
                          "--out", "/dev/full")
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err, err
    target = tmp_path / "s.json"

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    code, out, err = _cli(monkeypatch, capsys, "explore", "--strategy", "unsafe", "--scenario", "exit-race",
                          "--out", str(target))
    assert code == 2 and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_ctrl_c_prints_what_was_explored_and_exits_130():
    proc = subprocess.Popen([*percpu_command(), "explore", "--strategy", "refcount", "--scenario", "double-teardown",
                             "--cpus", "3", "--unbounded"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "interrupted: explored" in out and "NOT exhaustive" in out and "schedules:" in out, out
    assert err.count("\n") == 1
