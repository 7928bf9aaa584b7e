import os
import subprocess
import sys

import pytest

from percpu.state import live_segments


@pytest.fixture(autouse=True)
def no_leftover_segments():
    """Every test, whatever it does, leaves nothing in /dev/shm."""
    before = set(live_segments())
    yield
    left = set(live_segments()) - before
    assert not left, f"segments left in /dev/shm: {sorted(left)}"


def percpu_command():
    """The installed console script, as a user runs it."""
    script = os.path.join(os.path.dirname(sys.executable), "percpu")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "percpu.cli.app"]


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
