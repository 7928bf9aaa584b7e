"""Torture runs (`pytest -m stress`): every safe strategy x every workload x
every kernel and flush model it claims, long enough that together they cover more than
1,000,000 lazy switches and 10,000 mm teardowns on 2 cores, each ending in
SUCCESS with nothing leaked. tests/test_run.py runs the same matrix short."""
import pytest

from percpu.strategies import SAFE_STRATEGIES
from percpu.workloads import WORKLOADS

from conftest import _run, assert_safe_run, safe_configurations

# per strategy; five strategies make the totals above
LAZY_SWITCHES_PER_STRATEGY = 200_000
TEARDOWNS_PER_STRATEGY = 2_000


@pytest.mark.stress
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_stress_matrix(strategy):
    lazy_switches = teardowns = 0
    for workload in sorted(WORKLOADS):
        for kernel, flush in safe_configurations(strategy):
            if workload == "fork-exit":
                doc = _run(strategy, workload, cpus=2, kernel=kernel, flush=flush, duration=2.0, fork_rate=800.0)
            else:
                doc = _run(strategy, workload, cpus=2, kernel=kernel, flush=flush, duration=1.5)
            assert_safe_run(doc)
            lazy_switches += doc["totals"]["lazy_switches"]
            teardowns += doc["teardown"]["count"]
    # oversubscribed: more CPUs than cores, so CPUs are preempted mid-protocol
    doc = _run(strategy, "fork-exit", cpus=6, duration=2.0, fork_rate=200.0)
    assert_safe_run(doc)
    lazy_switches += doc["totals"]["lazy_switches"]
    teardowns += doc["teardown"]["count"]
    assert lazy_switches >= LAZY_SWITCHES_PER_STRATEGY
    assert teardowns >= TEARDOWNS_PER_STRATEGY
    print(f"{strategy}: {lazy_switches} lazy switches, {teardowns} teardowns")


@pytest.mark.stress
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_stress_unsafe_is_always_caught(workload):
    for seed in range(10):
        doc = _run("unsafe", workload, cpus=2, duration=0.2, seed=seed)
        assert doc["verdict"] == "FAILURE"
        assert "page-table-use-after-free" in {v["kind"] for v in doc["violations"]}
