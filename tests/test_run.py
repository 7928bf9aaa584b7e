"""Whole runs through the coordinator: verdicts, end state, counters."""
import os

import pytest

from percpu.machine import _futex
from percpu.machine.context import AWAKE, CPU, HALT_MAX_NS, HALTED
from percpu.machine.stats import HIST_BUCKETS, HIST_BUCKETS_PER_OCTAVE, record
from percpu.workers import pool
from percpu.workers.results import percentiles

from percpu.strategies import SAFE_STRATEGIES, STRATEGIES
from percpu.workloads import WORKLOADS

from conftest import _run, assert_clean_end_state, assert_safe_run

from broken_strategies import BROKEN, BROKEN_VARIANT, RefcountLeaky


@pytest.fixture
def broken_strategies(monkeypatch):
    for strategy in BROKEN:
        monkeypatch.setitem(STRATEGIES, strategy.name, strategy)


# The short version of the stress matrix (tests/test_stress.py): every safe
# strategy x every workload x both mm_cpumask modes.
@pytest.mark.parametrize("cpumask", ["eager", "lazy"])
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_safe_strategy_succeeds_and_leaves_a_clean_state(strategy, workload, cpumask):
    assert_safe_run(_run(strategy, workload, cpus=2, cpumask=cpumask))


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
@pytest.mark.parametrize("cpus", [1, 3])
def test_safe_strategy_on_one_cpu_and_on_an_odd_count(strategy, workload, cpus):
    assert_safe_run(_run(strategy, workload, cpus=cpus))


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("cpus", [1, 2])
@pytest.mark.parametrize("attempt", range(3))
def test_unsafe_is_caught_as_use_after_free_every_time(workload, cpus, attempt):
    doc = _run("unsafe", workload, cpus, duration=0.2, seed=attempt)
    assert doc["verdict"] == "FAILURE"
    kinds = {v["kind"] for v in doc["violations"]}
    assert "use-after-free" in kinds
    assert "freed-while-loaded" in kinds


@pytest.mark.parametrize("strategy", ["shootdown", "hazard", "lazy-mm", "tlbstate"])
def test_only_refcount_pays_shared_atomics_on_the_lazy_round_trip(strategy):
    refcount = _run("refcount", cpus=2)
    other = _run(strategy, cpus=2)
    # per op: mmgrab_lazy_tlb + mmdrop_lazy_tlb (a few atomics at exit aside)
    assert refcount["per_op"]["shared_atomics"] == pytest.approx(2.0, abs=0.01)
    assert other["totals"]["shared_atomics"] < 50
    assert refcount["totals"]["ipis_sent"] == 0


@pytest.mark.parametrize("cpumask", ["eager", "lazy"])
def test_teardown_costs_are_where_each_strategy_puts_them(cpumask):
    docs = {s: _run(s, "fork-exit", cpus=2, cpumask=cpumask) for s in SAFE_STRATEGIES}
    for doc in docs.values():
        assert doc["teardown"]["count"] > 10
    assert docs["refcount"]["teardown"]["ipis_per_teardown"] == 0
    assert docs["lazy-mm"]["teardown"]["ipis_per_teardown"] == 0
    assert docs["lazy-mm"]["teardown"]["fixups_per_teardown"] > 0  # the other CPU was lazy
    for s in ("shootdown", "hazard", "tlbstate"):
        assert docs[s]["teardown"]["ipis_per_teardown"] > 0
    assert docs["hazard"]["teardown"]["hazard_slots_scanned_per_teardown"] == 2  # every CPU's slot
    for s in ("refcount", "shootdown", "lazy-mm", "tlbstate"):
        assert docs[s]["teardown"]["hazard_slots_scanned_per_teardown"] == 0


def test_oversubscribed_run_works_and_says_so():
    doc = _run("refcount", cpus=8, duration=0.3)
    assert doc["verdict"] == "SUCCESS", doc["failure_reasons"]
    assert doc["machine"]["oversubscribed"] == (8 > len(doc["machine"]["usable_cores"]))
    assert doc["machine"]["oversubscription"] == pytest.approx(8 / len(doc["machine"]["usable_cores"]), abs=0.01)
    assert len(doc["machine"]["pinning"]) == 8
    assert_clean_end_state(doc)


def test_checker_reports_a_leaked_mm(broken_strategies):
    doc = _run(RefcountLeaky.name)
    assert doc["verdict"] == "FAILURE"
    kinds = {v["kind"] for v in doc["violations"]}
    assert "leaked-mm" in kinds
    assert any("init_mm" in v.get("message", "") for v in doc["violations"])  # init_mm leaked too


@pytest.mark.parametrize("cpumask", ["eager", "lazy"])
@pytest.mark.parametrize("workload", ["lazy-roundtrip", "fork-exit"])
@pytest.mark.parametrize("strategy", sorted(BROKEN_VARIANT))
def test_checker_catches_each_strategy_missing_one_safety_step(broken_strategies, strategy, workload, cpumask):
    """At the end of lazy-roundtrip the last CPU to exit tears the mm down
    while the other is lazy on it, every time; fork-exit does that hundreds of
    times a second."""
    doc = _run(BROKEN_VARIANT[strategy].name, workload, cpus=2, cpumask=cpumask)
    kinds = {v["kind"] for v in doc["violations"]}
    assert doc["verdict"] == "FAILURE"
    assert "use-after-free" in kinds
    assert "freed-while-loaded" in kinds


def test_counters_add_up():
    doc = _run("refcount", "context-switch-threads", cpus=2)
    t = doc["totals"]
    assert t["ops"] == sum(c["ops"] for c in doc["per_cpu"])
    assert t["lazy_switches"] <= t["switches"]
    assert doc["rate"]["samples"] >= 1
    assert doc["rate"]["min_cpu_ops_per_s"] <= doc["rate"]["max_cpu_ops_per_s"]
    assert doc["ns_per_op"]["p50"] is not None


def test_switch_cost_is_spent_on_every_switch_and_kept_out_of_the_switch_samples():
    cost_ns, duration = 200_000, 0.5
    doc = _run("tlbstate", "lazy-roundtrip", cpus=1, duration=duration, switch_cost_ns=cost_ns)
    assert_safe_run(doc)
    assert doc["parameters"]["switch_cost_ns"] == cost_ns
    switches = doc["totals"]["switches"]
    # Without the cost this is a million switches; with it, at most one per cost.
    assert 0 < switches <= duration * 1e9 / cost_ns * 1.05
    # The sampled switch is the lazy-mm work only: the cost comes after it.
    assert doc["ns_per_switch"]["p50"] < cost_ns / 10


@pytest.fixture
def two_cores():
    """This process (and the workers it forks) on at most two cores, so that
    6 CPUs are oversubscribed three times over on any machine."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(before)[:2])
    yield len(os.sched_getaffinity(0))
    os.sched_setaffinity(0, before)


@pytest.mark.parametrize("workload", ["context-switch-threads", "context-switch-processes", "fork-exit"])
def test_oversubscribed_cpus_halt_instead_of_spinning_and_say_how_much(two_cores, workload):
    doc = _run("refcount", workload, cpus=3 * two_cores, duration=0.5)
    assert_safe_run(doc)
    blocking = doc["blocking"]
    assert blocking["halts"] > 0 and 0 < blocking["halted_share"] < 1
    assert blocking["halts"] == sum(c["halts"] for c in doc["per_cpu"])
    if workload != "fork-exit":  # a pipe write wakes the reader's CPU
        assert blocking["kicks"] > 0
        assert blocking["halt_timeouts"] <= 5, blocking  # no wake-up is lost (see the broken halt below)


def test_cpus_with_a_core_each_spin_as_the_kernel_does():
    doc = _run("refcount", "context-switch-threads", cpus=min(2, len(os.sched_getaffinity(0))), duration=0.3)
    assert_safe_run(doc)
    assert not doc["machine"]["oversubscribed"]
    assert doc["blocking"] == {"halts": 0, "halted_share": 0.0, "halt_timeouts": 0, "kicks": 0, "yields": 0}


def _halt_without_a_second_look(cpu) -> bool:
    """A broken halt: announces and sleeps at once, so that a wake-up that
    comes between the CPU's last look for work and its announcement is lost."""
    cpu.store(cpu.a_halted, HALTED)
    cpu.smp_mb()
    woken = _futex.futex_wait(cpu.a_halted, HALTED, HALT_MAX_NS)
    cpu.store(cpu.a_halted, AWAKE)
    cpu.stats.halts += 1
    if not woken:
        cpu.stats.halt_timeouts += 1
        cpu.heartbeat()
    return False


def test_a_lost_wake_up_shows_as_halts_that_time_out(two_cores, monkeypatch):
    """The check above (few halts end by their timeout) catches a halt that
    loses wake-ups."""
    monkeypatch.setattr(CPU, "halt", _halt_without_a_second_look)  # inherited by the forked workers
    doc = _run("refcount", "context-switch-threads", cpus=3 * two_cores, duration=1.0)
    assert doc["blocking"]["halt_timeouts"] > 5, doc["blocking"]


def test_an_aborted_run_reports_the_ops_it_saw_and_no_invented_zeros():
    doc = _run("refcount", cpus=2, duration=5, kill_after_s=0.5)
    assert doc["verdict"] == "FAILURE" and "was killed by SIGKILL" in doc["failure_reasons"][0]
    assert doc["counters_reported"] is False
    assert doc["rate"]["total_ops_per_s"] > 0
    assert doc["totals"]["ops"] == sum(c["ops"] for c in doc["per_cpu"]) > 0  # as published while running
    assert doc["totals"]["switches"] is None and all(c["switches"] is None for c in doc["per_cpu"])
    assert doc["per_op"]["shared_atomics"] is None and doc["blocking"]["halts"] is None


def test_percentiles_say_their_resolution_and_are_that_close():
    hist = [0] * HIST_BUCKETS
    values = (1000, 1025, 1051, 5000)  # 2.5% apart: more than a bucket's width
    for value in values:
        record(hist, value)
    p = percentiles(hist, points=(25, 50, 75, 100))
    assert p["bucket_width_pct"] == pytest.approx(100 * (2 ** (1 / HIST_BUCKETS_PER_OCTAVE) - 1), abs=0.05)
    for point, value in zip((25, 50, 75, 100), values):
        assert abs(p[f"p{point}"] / value - 1) <= p["bucket_width_pct"] / 100
    assert p["p25"] < p["p50"] < p["p75"]


def test_start_up_reports_progress_once_it_is_slow(monkeypatch):
    monkeypatch.setattr(pool, "STARTUP_QUIET_S", 0.0)  # every start-up is "slow"
    reports = []
    doc = pool.run(pool.RunParams(cpus=3, duration=0.2), on_startup=lambda *args: reports.append(args))
    assert doc["verdict"] == "SUCCESS" and doc["startup_s"] > 0
    assert reports and reports[-1] == (3, 3, 3, pytest.approx(doc["startup_s"], abs=0.01), True)
    assert all(not done and forked <= total == 3 and ready <= 3 for forked, ready, total, _, done in reports[:-1])


def test_a_quick_start_up_says_nothing():
    reports = []
    pool.run(pool.RunParams(cpus=1, duration=0.1), on_startup=lambda *args: reports.append(args))
    assert reports == []


def test_cpus_get_a_core_each_while_there_are_cores_then_neighbours_share_one():
    assert pool.pin_cpus(2, [0, 1, 2, 3]) == [0, 1]
    assert pool.pin_cpus(4, [0, 1, 2, 3]) == [0, 1, 2, 3]
    assert pool.pin_cpus(4, [5, 9]) == [5, 5, 9, 9]  # context-switch partners 0/1 and 2/3 share a core
    assert pool.pin_cpus(5, [0, 1]) == [0, 0, 0, 1, 1]
    pinning = pool.pin_cpus(64, [0, 1])
    assert pinning.count(0) == pinning.count(1) == 32
    assert all(pinning[2 * p] == pinning[2 * p + 1] for p in range(32))
