"""percpu explore: the deterministic interleaving explorer finds every broken
variant, keeps every safe strategy clean, and replays a schedule exactly."""
import glob
import json
import os

import pytest

from broken_strategies import BROKEN, BROKEN_VARIANT
from conftest import percpu_cli
from percpu import strategies
from percpu.explore import SCENARIOS, Config, explore, explore_random, load_schedule, replay
from percpu.strategies import SAFE_STRATEGIES

DATA = os.path.join(os.path.dirname(__file__), "data", "explore")
SCHEDULES = sorted(glob.glob(os.path.join(DATA, "*.json")))


@pytest.fixture(autouse=True)
def broken_registered(monkeypatch):
    registry = dict(strategies.STRATEGIES)
    registry.update({b.name: b for b in BROKEN})
    monkeypatch.setattr(strategies, "STRATEGIES", registry)
    import percpu.explore as ex

    monkeypatch.setattr(ex, "STRATEGIES", registry)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_safe_strategy_has_no_violation_up_to_one_preemption(strategy, scenario):
    report = explore(Config(strategy, scenario, 2), bound=1, max_schedules=5000)
    assert report.exhausted, "the bound was not explored completely"
    assert report.best is None, report.best.violations
    assert report.complete > 1 and report.states > report.complete  # it did explore


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("strategy", ["unsafe", *(b.name for b in BROKEN)])
def test_explorer_finds_every_broken_strategy(strategy, scenario):
    report = explore(Config(strategy, scenario, 2), bound=1, max_schedules=2000)
    assert report.best is not None, f"{strategy} not caught in {scenario}"
    kinds = {v["kind"] for v in report.best.violations}
    expected = {"bad-end-state", "leaked-mm"} if strategy == "broken-refcount-leaky" else {
        "freed-while-loaded", "use-after-free"}
    assert kinds & expected, kinds
    # the reported schedule replays to the same violation
    again = replay(Config(strategy, scenario, 2), report.best.choices)
    assert again.outcome == "violation"
    assert [s.op for s in again.steps] == [s.op for s in report.best.steps]


def test_every_broken_variant_and_unsafe_has_a_kept_schedule():
    kept = {json.load(open(p))["strategy"] for p in SCHEDULES}
    assert {"unsafe", *(b.name for b in BROKEN)} <= kept
    assert set(BROKEN_VARIANT) == set(SAFE_STRATEGIES)


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
    report = explore(Config("broken-hazard-noscan", "exit-race", 2), bound=1)
    assert report.pruned > 0 or report.schedules == 1
    assert report.best is not None and report.best.preemptions == 0


def test_tso_store_buffer_delays_stores_and_atomics_drain_it():
    result = replay(Config("hazard-nomb", "exit-race", 2, tso=True), [])
    ops = [s.op for s in result.steps]
    assert "flush" in ops or any("drains" in op for op in ops)
    # a store sits in the buffer: its own later load sees it before memory does
    assert any("drains" in op for op in ops)


@pytest.mark.parametrize("strategy", ["hazard", "hazard-nomb"])
def test_hazard_under_tso_up_to_one_preemption(strategy):
    """In this emulator's protocol every lazy CPU drops its last reference
    with a locked atomic (mmput's add_return), which drains the store buffer:
    the hazard slot is visible to hp_scan with or without the smp_mb (see
    the README)."""
    report = explore(Config(strategy, "exit-race", 2, tso=True), bound=1, max_schedules=5000)
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


def test_cli_safe_and_bad_input():
    safe = percpu_cli("explore", "--strategy", "refcount", "--scenario", "exit-race", "--bound", "1")
    assert safe.returncode == 0 and "SAFE" in safe.stdout and "distinct states" in safe.stdout
    for args in (["--strategy", "nope", "--scenario", "exit-race"], ["--strategy", "refcount", "--scenario", "x"],
                 ["--strategy", "refcount", "--scenario", "exit-race", "--cpus", "5"], ["--replay", "/nonexistent"]):
        bad = percpu_cli("explore", *args)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, (args, bad.stderr)


@pytest.mark.stress
@pytest.mark.parametrize("cpus,bound", [(2, 2), (3, 1)])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_safe_strategy_deeper(strategy, scenario, cpus, bound):
    report = explore(Config(strategy, scenario, cpus), bound=bound, max_schedules=100000)
    assert report.best is None, report.best.violations
