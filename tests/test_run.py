"""Whole runs through the coordinator: verdicts, end state, counters."""
import pytest

from percpu.state import INIT_MM
from percpu.strategies import SAFE_STRATEGIES, STRATEGIES
from percpu.workers.pool import RunParams, run
from percpu.workloads import WORKLOADS

from broken_strategies import BROKEN, RefcountLeaky, RefcountNoLazyGrab, TlbStateNoFlush


def _run(strategy, workload="lazy-roundtrip", cpus=2, duration=0.3, **kw):
    return run(RunParams(strategy=strategy, workload=workload, cpus=cpus, duration=duration, **kw))


def assert_clean_end_state(doc):
    """Checked here from the raw final state, independently of checks.py."""
    for mm in doc["final_state"]["mm"]:
        if mm["slot"] == 0:
            assert (mm["gen"], mm["mm_users"], mm["mm_count"]) == (1, 1, 1), mm  # init_mm untouched
        else:
            assert mm["gen"] % 2 == 0, f"mm never freed: {mm}"
            assert mm["mm_users"] == 0 and mm["mm_count"] == 0, mm
    for cpu in doc["final_state"]["cpus"]:
        assert cpu["loaded_mm"] == INIT_MM, cpu
        assert cpu["hazard"] == cpu["lazy_mm"] == cpu["mm_to_mmdrop"] == 0, cpu


@pytest.fixture
def broken_strategies(monkeypatch):
    for strategy in BROKEN:
        monkeypatch.setitem(STRATEGIES, strategy.name, strategy)


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
@pytest.mark.parametrize("cpus", [1, 2, 3])
def test_safe_strategy_succeeds_and_leaves_a_clean_state(strategy, workload, cpus):
    doc = _run(strategy, workload, cpus)
    assert doc["verdict"] == "SUCCESS", doc["failure_reasons"]
    assert doc["violation_count"] == 0 and doc["violations"] == []
    assert doc["totals"]["ops"] > 0
    assert doc["teardown"]["count"] == 1  # the process's mm, freed at exit
    assert_clean_end_state(doc)


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("cpus", [1, 2])
@pytest.mark.parametrize("attempt", range(3))
def test_unsafe_is_caught_as_use_after_free_every_time(workload, cpus, attempt):
    doc = _run("unsafe", workload, cpus, duration=0.2, seed=attempt)
    assert doc["verdict"] == "FAILURE"
    kinds = {v["kind"] for v in doc["violations"]}
    assert "use-after-free" in kinds
    assert "freed-while-loaded" in kinds


def test_refcount_pays_two_shared_atomics_per_lazy_round_trip_and_tlbstate_none():
    refcount = _run("refcount", cpus=2)
    tlbstate = _run("tlbstate", cpus=2)
    # per op: mmgrab_lazy_tlb + mmdrop_lazy_tlb (a few atomics at exit aside)
    assert refcount["per_op"]["shared_atomics"] == pytest.approx(2.0, abs=0.01)
    assert tlbstate["totals"]["shared_atomics"] < 50
    assert tlbstate["teardown"]["ipis_per_teardown"] >= 1  # the freed-tables flush
    assert refcount["totals"]["ipis_sent"] == 0


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


def test_checker_reports_a_missing_lazy_reference(broken_strategies):
    doc = _run(RefcountNoLazyGrab.name)
    kinds = {v["kind"] for v in doc["violations"]}
    assert doc["verdict"] == "FAILURE"
    assert "refcount-underflow" in kinds or "use-after-free" in kinds


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_checker_reports_tlbstate_without_its_flush(broken_strategies, workload):
    doc = _run(TlbStateNoFlush.name, workload)
    kinds = {v["kind"] for v in doc["violations"]}
    assert doc["verdict"] == "FAILURE"
    assert "use-after-free" in kinds and "freed-while-loaded" in kinds


def test_counters_add_up():
    doc = _run("refcount", "context-switch-threads", cpus=2)
    t = doc["totals"]
    assert t["ops"] == sum(c["ops"] for c in doc["per_cpu"])
    assert t["lazy_switches"] <= t["switches"]
    assert doc["rate"]["samples"] >= 1
    assert doc["rate"]["min_cpu_ops_per_s"] <= doc["rate"]["max_cpu_ops_per_s"]
    assert doc["ns_per_op"]["p50"] is not None
