import os
import shlex
import shutil
import subprocess
import sys

# The tests run the interpreted engine (the explorer needs it, and it is the
# readable one); tests/test_engine.py runs the compiled engine beside it.
os.environ.setdefault("PERCPU_ENGINE", "interpreted")

import pytest

import percpu  # noqa: E402
from percpu.machine.segment import INIT_MM, live_segments, owner_alive, segment_owner  # noqa: E402
from percpu.strategies import STRATEGIES
from percpu.workers.pool import RunParams, run


def pytest_report_header(config):
    return f"percpu engine: {percpu.engine()}"


@pytest.fixture(autouse=True)
def no_leftover_segments():
    """Every test, whatever it does, leaves nothing in /dev/shm. (A segment
    whose owner is another live process belongs to someone else's run on
    this machine, caught in the microseconds before it is unlinked.)"""
    before = set(live_segments())
    yield
    left = [
        name for name in set(live_segments()) - before
        if segment_owner(name) in (None, os.getpid()) or not owner_alive(segment_owner(name))
    ]
    assert not left, f"segments left in /dev/shm: {sorted(left)}"


def percpu_command():
    """The installed console script, as a user runs it."""
    script = os.path.join(os.path.dirname(sys.executable), "percpu")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "percpu.cli"]


def percpu_cli(*args, timeout=120, **kwargs):
    return subprocess.run(
        [*percpu_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def usable_cores():
    return len(os.sched_getaffinity(0))


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


def expected_teardowns(doc):
    """Every process the run created is torn down by its end."""
    workload, cpus = doc["parameters"]["workload"], doc["parameters"]["cpus"]
    if workload == "fork-exit":
        return doc["totals"]["forks"]
    if workload == "context-switch-processes":
        return max(1, -(-cpus * doc["parameters"]["tasks_per_cpu"] // 2))
    return 1


def safe_configurations(strategy):
    """(kernel, flush) pairs a strategy claims to be safe under (broadcast
    flushes need 6.18)."""
    return [(k, f) for k in ("6.12", "6.18") for f in STRATEGIES[strategy].safe_under
            if f == "ipi" or k == "6.18"]


def assert_safe_run(doc):
    assert doc["verdict"] == "SUCCESS", doc["failure_reasons"]
    assert doc["violation_count"] == 0 and doc["violations"] == []
    assert doc["totals"]["ops"] > 0
    assert doc["teardown"]["count"] == expected_teardowns(doc) > 0
    assert_clean_end_state(doc)


def on_a_full_disk(tmp_path, *args):
    """Run `percpu ARGS` (each "{full}" in them replaced) where {full} is a
    small tmpfs filled to the last byte, in a private mount namespace (needs
    root and unshare); returns the result and what percpu left on it ("path
    size" lines)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare")
    full = tmp_path / "full"
    full.mkdir()
    command = shlex.join([*percpu_command(), *(a.replace("{full}", str(full)) for a in args)])
    marker = "--- left on the full disk ---"
    where = shlex.quote(str(full))
    script = (f"mount -t tmpfs -o size=64k tmpfs {where} || exit 99; cat /dev/zero > {where}/.filler 2>/dev/null; "
              f"{command}; rc=$?; echo '{marker}'; "
              f"find {where} -mindepth 1 -type f ! -name .filler -printf '%P %s\\n'; exit $rc")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    if r.returncode == 99:
        pytest.skip("cannot mount a tmpfs here")
    r.stdout, _, left = r.stdout.partition(marker + "\n")
    return r, sorted(left.splitlines())
