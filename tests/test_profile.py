"""`percpu profile`: a short real py-spy profile of refcount and of tlbstate,
parsed; py-spy missing or not permitted: one line, exit 2."""
import json
import os
import signal
import stat
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import percpu_cli, percpu_command
from percpu.cli.profile import find_py_spy, flamegraph_svg, parse_speedscope, PySpyUnavailable

FORK = os.path.join("percpu", "linux", "kernel", "fork.py")
REFCOUNT_LAZY = {("mmgrab", FORK), ("mmdrop", FORK)}


def _py_spy_or_skip():
    try:
        return find_py_spy(None)
    except PySpyUnavailable:
        pytest.skip("py-spy is not installed (pip install py-spy, or pip install '.[test]')")


def _profile(tmp_path, strategy, *extra):
    _py_spy_or_skip()
    r = percpu_cli("profile", "--strategy", strategy, "--cpus", "2", "--workload", "lazy-roundtrip",
                   "--duration", "1", "--rate", "200", "--out-dir", str(tmp_path), *extra)
    if r.returncode == 2 and "not permitted" in r.stderr:
        pytest.skip(f"py-spy cannot attach on this machine: {r.stderr.strip()}")
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _top_functions(prof, n=10):
    return {(row["function"], row["file"]) for row in prof.top(n)}


def test_refcount_profile_shows_the_lazy_refcount_functions(tmp_path):
    r = _profile(tmp_path, "refcount")
    json_path = tmp_path / "refcount-lazy-roundtrip-2cpu.json"
    svg_path = tmp_path / "refcount-lazy-roundtrip-2cpu.svg"
    prof = parse_speedscope(str(json_path))
    # both CPU workers were sampled; the coordinator's samples are kept apart
    assert len(prof.worker_samples) == 2 and all(n > 0 for n in prof.worker_samples.values()), prof.worker_samples
    assert prof.samples == sum(prof.self_counts.values())
    # mmgrab_lazy_tlb/mmdrop_lazy_tlb are staticmethod(mmgrab)/staticmethod(mmdrop): py-spy names the code objects
    assert REFCOUNT_LAZY <= _top_functions(prof), prof.top(10)
    rows = {(row["function"], row["file"]): row for row in prof.top(10)}
    for key in REFCOUNT_LAZY:
        assert rows[key]["kernel"] and 0 < rows[key]["self_share"] <= rows[key]["total_share"] <= 1
    # the printed table marks them as kernel-named, and the run's verdict comes last
    assert "mmgrab *" in r.stdout and "mmdrop *" in r.stdout
    assert "samples from 2 CPU worker processes" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("SUCCESS: strategy=refcount workload=lazy-roundtrip cpus=2")
    # the flame graph is well-formed SVG naming the same functions
    svg = ET.parse(svg_path).getroot()
    assert svg.tag.endswith("svg")
    titles = " ".join(t.text for t in svg.iter("{http://www.w3.org/2000/svg}title"))
    assert "mmgrab (percpu" in titles and "cpu_main" in titles


def test_tlbstate_profile_has_no_lazy_refcount(tmp_path):
    _profile(tmp_path, "tlbstate", "--format", "speedscope")
    assert not (tmp_path / "tlbstate-lazy-roundtrip-2cpu.svg").exists()
    prof = parse_speedscope(str(tmp_path / "tlbstate-lazy-roundtrip-2cpu.json"))
    assert len(prof.worker_samples) == 2
    top = _top_functions(prof)
    assert not REFCOUNT_LAZY & top, prof.top(10)
    assert ("switch_mm_irqs_off", os.path.join("percpu", "linux", "arch", "x86", "mm", "tlb.py")) in top


def test_parse_keeps_the_coordinator_apart_and_counts_self_and_total(tmp_path):
    frames = [{"name": 'process 10:"python -m percpu.cli.app run"', "file": "", "line": 0},
              {"name": "main", "file": "/x/app.py", "line": 1},
              {"name": "cpu_main", "file": "/x/worker.py", "line": 2},
              {"name": "run_quanta", "file": "/x/sched.py", "line": 3},
              {"name": "mmgrab", "file": "/x/mm.py", "line": 4},
              {"name": "sleep", "file": "/x/pool.py", "line": 5}]
    doc = {"shared": {"frames": frames}, "profiles": [
        {"name": 'Process 10 Thread 10 ""', "samples": [[0, 1, 5]] * 3, "weights": [0.01] * 3},
        {"name": 'Process 11 Thread 11 "MainThread"',
         "samples": [[0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3]], "weights": [0.01] * 4},
    ]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    prof = parse_speedscope(str(path))
    assert prof.worker_samples == {11: 4} and prof.other_samples == 3
    rows = {row["function"]: row for row in prof.top(5)}
    assert rows["mmgrab"]["self_share"] == rows["mmgrab"]["total_share"] == 0.5
    assert rows["run_quanta"]["self_share"] == 0.5 and rows["run_quanta"]["total_share"] == 1.0
    assert "main" not in rows  # below cpu_main: the fork's inherited frames are cut
    ET.fromstring(flamegraph_svg(prof.stacks, "t", "s"))


@pytest.mark.parametrize("how", ["option", "env"])
def test_missing_py_spy_is_one_line_with_the_fix(tmp_path, how):
    missing = str(tmp_path / "no" / "py-spy")
    args = ["profile", "--duration", "0.2", "--out-dir", str(tmp_path)]
    env = dict(os.environ)
    if how == "option":
        args += ["--py-spy", missing]
    else:
        env["PERCPU_PY_SPY"] = missing
    r = percpu_cli(*args, env=env)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "py-spy not found" in r.stderr and "pip install py-spy" in r.stderr
    assert not list(tmp_path.glob("*.json"))


def test_py_spy_not_permitted_is_one_line_with_the_fix(tmp_path):
    fake = tmp_path / "py-spy"
    fake.write_text(
        "#!/bin/sh\n"
        "echo \"Permission Denied: Try running again with elevated permissions by going 'sudo env \\\"PATH=$PATH\\\" !!'\" >&2\n"
        "exit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    r = percpu_cli("profile", "--duration", "0.2", "--out-dir", str(tmp_path), "--py-spy", str(fake))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for fix in ("sudo", "--cap-add SYS_PTRACE", "kernel.yama.ptrace_scope=0"):
        assert fix in r.stderr


def test_out_dir_that_is_a_file_is_bad_input(tmp_path):
    target = tmp_path / "afile"
    target.write_text("")
    r = percpu_cli("profile", "--out-dir", str(target))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "not a directory" in r.stderr


def test_sigterm_stops_the_profile_with_exit_130(tmp_path):
    _py_spy_or_skip()
    p = subprocess.Popen([*percpu_command(), "profile", "--duration", "30", "--out-dir", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children = f"/proc/{p.pid}/task/{p.pid}/children"
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline:  # wait for py-spy to be started
        with open(children) as f:
            if f.read().strip():
                break
        time.sleep(0.05)
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    if p.returncode == 2 and "not permitted" in err:
        pytest.skip(f"py-spy cannot attach on this machine: {err.strip()}")
    assert p.returncode == 130, out + err
    assert len(err.strip().splitlines()) == 1 and err.startswith("percpu: interrupted"), err


def test_default_out_dir_is_new_so_no_earlier_profile_is_overwritten(tmp_path):
    """From the clone's root the old default (profiles/) overwrote the committed reference profiles."""
    _py_spy_or_skip()
    kept = tmp_path / "profiles" / "refcount-lazy-roundtrip-2cpu.json"
    kept.parent.mkdir()
    kept.write_text("the committed reference")
    r = percpu_cli("profile", "--duration", "0.3", "--rate", "100", cwd=tmp_path)
    if r.returncode == 2 and "not permitted" in r.stderr:
        pytest.skip(f"py-spy cannot attach on this machine: {r.stderr.strip()}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert kept.read_text() == "the committed reference"
    made = [p for p in tmp_path.iterdir() if p.name.startswith("profile-")]
    assert len(made) == 1 and (made[0] / "refcount-lazy-roundtrip-2cpu.json").exists()
    assert f"wrote {made[0].name}/refcount-lazy-roundtrip-2cpu.svg" in r.stdout


def test_a_duration_over_a_day_is_bad_input():
    r = percpu_cli("profile", "--duration", "1e30")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "at most 86400" in r.stderr
