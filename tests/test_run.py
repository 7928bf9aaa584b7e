"""Whole runs through the coordinator: verdicts, end state, counters."""
import pytest

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
