"""The two engines (percpu/__init__.py): the compiled one is what is installed
and what `percpu run` uses; the interpreted one runs the same sources. The
rest of the suite runs interpreted (tests/conftest.py): here the compiled
engine runs the tests where the engines could differ, and both engines run
the same runs side by side."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import percpu_cli

REPO = pathlib.Path(__file__).resolve().parent.parent
SOURCES = REPO / "percpu"
# the modules setup.py compiles: those with a .pxd beside their .py
COMPILED = sorted(".".join(p.relative_to(REPO).with_suffix("").parts) for p in SOURCES.rglob("*.pxd")
                  if p.with_suffix(".py").exists())
# the tests whose outcome depends on the engine: whole runs (verdicts, end
# states, counters across processes, the broken variants caught), the
# operation sequence of a round trip, the atomics
BEHAVIOUR_TESTS = ["tests/test_run.py", "tests/test_bench_fidelity.py", "tests/test_atomic.py"]


def _env(engine: str) -> dict:
    return {**os.environ, "PERCPU_ENGINE": engine}


def _origins(engine: str) -> dict:
    probe = ("import importlib.util, json, sys; "
             "print(json.dumps({m: importlib.util.find_spec(m).origin for m in sys.argv[1:]}))")
    done = subprocess.run([sys.executable, "-c", probe, *COMPILED], capture_output=True, text=True,
                          env=_env(engine), cwd="/", timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_engine_modules_are_the_ones_with_types():
    assert "percpu.machine.context" in COMPILED and "percpu.linux.kernel.sched.core" in COMPILED
    assert "percpu.machine.segment" not in COMPILED  # no .pxd: Python in both engines


def test_the_compiled_engine_is_installed_and_the_interpreted_one_loads_the_sources():
    compiled, interpreted = _origins("compiled"), _origins("interpreted")
    assert all(origin.endswith(".so") for origin in compiled.values()), compiled
    assert all(origin.endswith(".py") for origin in interpreted.values()), interpreted
    assert {m: pathlib.Path(o).parent for m, o in compiled.items()} == {
        m: pathlib.Path(o).parent for m, o in interpreted.items()}  # the same package, beside each other


@pytest.mark.parametrize("engine", ["compiled", "interpreted"])
def test_a_run_records_the_engine_it_ran(engine):
    done = percpu_cli("run", "--cpus", "1", "--duration", "0.2", "--json", env=_env(engine))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["engine"] == engine


def test_a_bad_engine_is_one_line_and_exit_2():
    done = percpu_cli("run", "--cpus", "1", env=_env("turbo"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "PERCPU_ENGINE='turbo'" in done.stderr


def test_the_explorer_runs_interpreted_whatever_was_asked():
    done = percpu_cli("explore", "--strategy", "unsafe", "--scenario", "exit-race", "--bound", "0",
                      "--out", os.devnull, env=_env("compiled"))
    assert done.returncode == 1, done.stderr  # a violation found: the kernel code ran under the explorer
    assert "VIOLATION freed-while-loaded" in done.stdout


@pytest.mark.parametrize("workload", ["lazy-roundtrip", "fork-exit"])
@pytest.mark.parametrize("strategy", ["refcount", "shootdown", "hazard", "lazy-mm", "tlbstate", "unsafe"])
def test_both_engines_give_the_same_verdict_and_the_same_atomics_per_op(strategy, workload):
    docs = {}
    for engine in ("compiled", "interpreted"):
        done = percpu_cli("run", "--strategy", strategy, "--workload", workload, "--cpus", "2",
                          "--duration", "0.3", "--json", env=_env(engine))
        assert done.returncode in (0, 1), done.stderr
        docs[engine] = json.loads(done.stdout)
    verdicts = {e: d["verdict"] for e, d in docs.items()}
    assert verdicts == {e: "FAILURE" if strategy == "unsafe" else "SUCCESS" for e in docs}, verdicts
    totals = {e: d["totals"] for e, d in docs.items()}
    assert all(t["ops"] > 0 for t in totals.values())
    if workload == "lazy-roundtrip":  # every op the same round trip: the same atomics per op, exactly
        # (an integer per round trip; the few of boot and exit vanish in the ops)
        per_op = {e: round(t["shared_atomics"] / t["ops"], 2) for e, t in totals.items()}
        assert per_op["compiled"] == per_op["interpreted"], per_op
    else:
        assert all(t["teardowns"] > 0 for t in totals.values()), totals


@pytest.mark.parametrize("workload", ["context-switch-processes", "fork-exit"])
def test_the_compiled_engine_keeps_the_cpumask_bits_of_cpus_above_31(workload):
    """64-bit masks in C: a bare `1 << cpu` shifted a 32-bit int, so CPUs 32
    and up were missing from mm_cpumask and x86's exit flush passed them by
    (page-table-use-after-free at 33 CPUs and more)."""
    done = percpu_cli("run", "--workload", workload, "--cpus", "40", "--duration", "0.5", "--json",
                      env=_env("compiled"))
    doc = json.loads(done.stdout)
    assert doc["engine"] == "compiled"
    assert doc["verdict"] == "SUCCESS", doc["failure_reasons"]


def test_the_compiled_engine_passes_the_behaviour_tests():
    """The tests where the engines could differ, run compiled in a pytest of
    their own (a process runs one engine)."""
    assert all((REPO / path).exists() for path in BEHAVIOUR_TESTS)
    # -P: the repository's root is not on the path (its percpu/ has no extensions)
    done = subprocess.run([sys.executable, "-P", "-m", "pytest", "-x", *BEHAVIOUR_TESTS], capture_output=True,
                          text=True, cwd=REPO, env=_env("compiled"), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "percpu engine: compiled" in done.stdout  # its header (conftest.py): it did run compiled
    assert " passed" in done.stdout and "failed" not in done.stdout
