"""Whole runs through the coordinator: verdicts, end state, counters."""
import os

import pytest

from percpu.machine import _futex
from percpu import engine
from percpu.linux.kernel.sched import core as sched_core
from percpu.machine.context import AWAKE, HALT_MAX_NS, HALTED
from percpu.machine.stats import HIST_BUCKETS, HIST_BUCKETS_PER_OCTAVE, record
from percpu.workers import pool
from percpu.workers.results import percentiles

from percpu.linux.include_.linux.sched.mm import Strategy
from percpu.strategies import SAFE_STRATEGIES, STRATEGIES
from percpu.workloads import WORKLOADS

from conftest import _run, assert_clean_end_state, assert_safe_run, safe_configurations

from broken_strategies import BROKEN, BROKEN_VARIANT, MEMORY_ERRORS, RefcountLeaky

SAFE_CONFIGURATIONS = [(s, k, f) for s in SAFE_STRATEGIES for k, f in safe_configurations(s)]


@pytest.fixture
def broken_strategies(monkeypatch):
    for strategy in BROKEN:
        monkeypatch.setitem(STRATEGIES, strategy.name, strategy)


# The short version of the stress matrix (tests/test_stress.py): every safe
# strategy x every workload x every kernel and flush model it claims.
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("strategy,kernel,flush", SAFE_CONFIGURATIONS)
def test_safe_strategy_succeeds_and_leaves_a_clean_state(strategy, kernel, flush, workload):
    assert_safe_run(_run(strategy, workload, cpus=2, kernel=kernel, flush=flush))


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
@pytest.mark.parametrize("cpus", [1, 3])
def test_safe_strategy_on_one_cpu_and_on_an_odd_count(strategy, workload, cpus):
    assert_safe_run(_run(strategy, workload, cpus=cpus))


@pytest.mark.parametrize("workload", ["lazy-roundtrip", "fork-exit"])
@pytest.mark.parametrize("strategy", [s for s in SAFE_STRATEGIES if "broadcast" not in STRATEGIES[s].safe_under])
def test_a_strategy_that_needs_the_flush_ipi_fails_under_broadcast_flushes(strategy, workload):
    """tlbstate and lazy-mm rely on exit_mmap's IPI moving lazy CPUs off:
    with INVLPGB nothing moves them, and the mm is freed while loaded."""
    doc = _run(strategy, workload, cpus=2, flush="broadcast")
    assert doc["verdict"] == "FAILURE"
    assert {"freed-while-loaded", "page-table-use-after-free"} <= {v["kind"] for v in doc["violations"]}


@pytest.mark.parametrize("flush", ["ipi", "broadcast"])
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("attempt", range(3))
def test_unsafe_is_caught_every_time(workload, attempt, flush):
    """With a second CPU lazily on the mm (alone, a CPU's own exit flush
    moves it off, as x86 flushes the local TLB of every flush's caller)."""
    doc = _run("unsafe", workload, 2, duration=0.2, seed=attempt, flush=flush)
    assert doc["verdict"] == "FAILURE"
    kinds = {v["kind"] for v in doc["violations"]}
    assert "page-table-use-after-free" in kinds  # its lazy CPUs walk freed tables
    assert "freed-while-loaded" in kinds


@pytest.mark.parametrize("cls", [*STRATEGIES.values(), *BROKEN], ids=lambda c: c.name)
def test_a_strategy_says_whether_it_adds_to_finish_task_switch(cls):
    """The scheduler calls the strategy's finish_task_switch only where the
    class says it has one: a hook without the flag would never run."""
    overrides = cls.finish_task_switch is not Strategy.finish_task_switch
    assert cls.hooks_finish_task_switch == overrides


@pytest.mark.parametrize("strategy", ["shootdown", "hazard", "lazy-mm", "tlbstate"])
def test_only_refcount_pays_shared_atomics_on_the_lazy_round_trip(strategy):
    refcount = _run("refcount", cpus=2)
    other = _run(strategy, cpus=2)
    # per op: mmgrab_lazy_tlb + mmdrop_lazy_tlb (a few atomics at exit aside)
    assert refcount["per_op"]["shared_atomics"] == pytest.approx(2.0, abs=0.01)
    assert other["totals"]["shared_atomics"] < 50
    # refcount's only IPIs are those of the teardown's freed-tables flush
    assert refcount["totals"]["ipis_sent"] == refcount["totals"]["teardown_ipis"] > 0


@pytest.mark.parametrize("kernel", ["6.12", "6.18"])
def test_every_strategy_pays_the_exit_flush_ipis_on_x86(kernel):
    """exit_mmap -> tlb_finish_mmu -> flush_tlb_mm_range(freed_tables):
    IPIs to every other CPU in mm_cpumask, lazy ones included, whatever the
    scheme; shootdown and hazard add their own at __mmdrop."""
    docs = {s: _run(s, "lazy-roundtrip", cpus=2, kernel=kernel) for s in SAFE_STRATEGIES}
    for s, doc in docs.items():
        assert doc["teardown"]["count"] == 1
        assert doc["teardown"]["ipis_per_teardown"] >= 1, s  # the other CPU is lazy on the mm at the end
    assert docs["hazard"]["teardown"]["ipis_per_teardown"] >= docs["refcount"]["teardown"]["ipis_per_teardown"]


def test_teardown_costs_are_where_each_strategy_puts_them():
    docs = {s: _run(s, "fork-exit", cpus=2, flush="broadcast") for s in ("refcount", "shootdown", "hazard")}
    for doc in docs.values():
        assert doc["teardown"]["count"] > 10
    # broadcast flushes send no IPI: what is left is the scheme's own
    assert docs["refcount"]["teardown"]["ipis_per_teardown"] == 0
    assert docs["shootdown"]["teardown"]["ipis_per_teardown"] > 0
    assert docs["hazard"]["teardown"]["ipis_per_teardown"] > 0
    assert docs["hazard"]["teardown"]["hazard_slots_scanned_per_teardown"] == 2  # every CPU's slot
    lazy = _run("lazy-mm", "fork-exit", cpus=2)
    assert lazy["teardown"]["fixups_per_teardown"] > 0  # the other CPU was lazy
    for s in ("refcount", "shootdown"):
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


@pytest.mark.parametrize("workload", ["lazy-roundtrip", "fork-exit"])
@pytest.mark.parametrize("strategy", sorted(BROKEN_VARIANT))
def test_checker_catches_each_strategy_missing_one_safety_step(broken_strategies, strategy, workload):
    """Under the flush model where the step is what keeps the mm alive. At
    the end of lazy-roundtrip the last CPU to exit tears the mm down while
    the other is lazy on it, every time; fork-exit does that hundreds of
    times a second."""
    broken = BROKEN_VARIANT[strategy]
    doc = _run(broken.name, workload, cpus=2, flush=broken.caught_under)
    assert doc["verdict"] == "FAILURE"
    assert {v["kind"] for v in doc["violations"]} & MEMORY_ERRORS


@pytest.mark.parametrize("strategy", ["shootdown", "hazard"])
def test_a_teardown_step_that_repeats_the_flush_ipi_is_not_missed_on_x86(broken_strategies, strategy):
    """The same broken variants under IPI flushes: the freed-tables flush
    already moved every lazy CPU, so nothing goes wrong (Torvalds' "we do
    that *anyway* as part of TLB flushing")."""
    assert_safe_run(_run(BROKEN_VARIANT[strategy].name, "lazy-roundtrip", cpus=2, flush="ipi"))


def test_kernel_warnings_are_reported_apart_from_violations():
    """shootdown on x86 6.12: the exit flush's switch to init_mm clears the
    exiting CPU's mm_cpumask bit, so cleanup_lazy_tlbs does not shoot its own
    task, and __mmdrop's WARN_ON_ONCE(mm == current->active_mm) fires; on
    6.18 the bit stays (lazy mm_cpumask) and nothing warns."""
    old = _run("shootdown", "lazy-roundtrip", cpus=2, kernel="6.12")
    assert old["verdict"] == "SUCCESS" and old["violations"] == []
    assert {w["site"] for w in old["warnings"]} == {"__mmdrop: WARN_ON_ONCE(mm == current->active_mm)"}
    assert _run("shootdown", "lazy-roundtrip", cpus=2, kernel="6.18")["warnings"] == []


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


@pytest.mark.skipif(engine() == "compiled", reason="patches the scheduler's halt, a C call when compiled "
                                                   "(the interpreted run proves the check)")
def test_a_lost_wake_up_shows_as_halts_that_time_out(two_cores, monkeypatch):
    """The check above (few halts end by their timeout) catches a halt that
    loses wake-ups."""
    monkeypatch.setattr(sched_core, "halt", _halt_without_a_second_look)  # inherited by the forked workers
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
