"""`percpu profile`: a short real py-spy profile of refcount and of tlbstate,
parsed, on each engine; the compiled engine's native frame names mapped
back to the sources' names; py-spy missing or not permitted: one line, exit 2."""
import importlib.machinery
import json
import os
import signal
import stat
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

import percpu
from conftest import percpu_cli, percpu_command
from percpu.cli.profile import (CYTHON_RUNTIME, LOST_FRAME, find_py_spy, flamegraph_svg, is_kernel_named,
                                kernel_frame,
                                parse_speedscope, PySpyUnavailable)

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


# --- the compiled engine: py-spy --native's frame names, mapped back ---

PACKAGE = os.path.dirname(os.path.abspath(percpu.__file__))
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # .cpython-311-x86_64-linux-gnu.so


def _so(module):
    """The absolute path py-spy gives a native frame of an installed compiled module."""
    return os.path.join(PACKAGE, *module.split(".")) + SUFFIX


def _py(module):
    return os.path.join(PACKAGE, *module.split(".")) + ".py"


TLB, FORK_M, CORE = "linux.arch.x86.mm.tlb", "linux.kernel.fork", "linux.kernel.sched.core"


@pytest.mark.parametrize("name, module, expected", [
    # a C function (__pyx_f_): py-spy leaves the module's name in front
    ("tlb_switch_mm_irqs_off", TLB, "switch_mm_irqs_off"),
    ("fork_mmgrab", FORK_M, "mmgrab"),
    ("core_run_quanta", CORE, "run_quanta"),
    # the Python-callable wrapper (__pyx_pw_): the bare name
    ("schedule_loop", CORE, "schedule_loop"),
    # a function whose own name starts with the module's: the wrapper's name is not cut
    ("tlb_is_not_lazy", TLB, "tlb_is_not_lazy"),
    ("tlb_tlb_is_not_lazy", TLB, "tlb_is_not_lazy"),
    # methods: <Class>_<method>, or the wrapper's bare method name when one class has it
    ("Refcount_mmgrab_lazy_tlb", "strategies.refcount", "Refcount.mmgrab_lazy_tlb"),
    ("Strategy_finish_task_switch", "linux.include_.linux.sched.mm", "Strategy.finish_task_switch"),
    ("LazyRoundtrip_wakeup", "workloads", "LazyRoundtrip.wakeup"),
    ("heartbeat", "machine.context", "CPU.heartbeat"),
    # the module body (the import, in the coordinator); a package's is its __init__
    ("__pyx_pymod_exec_mm", "linux.include_.linux.sched.mm", "<module>"),
    ("__pyx_pymod_exec_sched", "linux.include_.linux.sched.__init__", "<module>"),
    # Cython's helpers, and a PLT stub (no symbol: py-spy shows the address)
    ("__Pyx_PyObject_FastCallDict.constprop.0", CORE, CYTHON_RUNTIME),
    ("__pyx_tp_new_6percpu_7machine_7context_CPU", "machine.context", CYTHON_RUNTIME),
    ("0x7f902887d5d0", "strategies.refcount", CYTHON_RUNTIME),
])
def test_native_frames_of_the_compiled_engine_get_their_source_names(name, module, expected):
    assert kernel_frame(name, _so(module)) == (expected, _py(module))


def test_other_native_frames_are_not_ours():
    assert kernel_frame("getppid", "/usr/lib/x86_64-linux-gnu/libc.so.6") is None
    assert kernel_frame("time_perf_counter_ns", "/usr/lib/libpython3.11.so.1.0") is None
    numpy_so = os.path.join(os.path.dirname(PACKAGE), "numpy", "_core", "_multiarray_umath" + SUFFIX)
    assert kernel_frame("PyArray_Foo", numpy_so) is None      # an extension, not percpu's
    assert kernel_frame("run_quanta", _py(CORE)) is None       # an interpreted frame: its name is the source's


def test_parse_merges_a_wrapper_into_its_c_function_and_marks_kernel_names(tmp_path):
    """One sample of the compiled engine as py-spy --native writes it."""
    names = [('process 11:"python -m percpu.cli.app run"', ""),
             ("cpu_main", os.path.join(os.path.dirname(PACKAGE), "percpu", "workers", "worker.py")),
             ("schedule_loop", _so(CORE)), ("core_schedule_loop", _so(CORE)), ("core_run_quanta", _so(CORE)),
             ("Refcount_mmgrab_lazy_tlb", _so("strategies.refcount")), ("fork_mmgrab", _so(FORK_M)),
             ("__Pyx_PyObject_FastCallDict.constprop.0", _so(CORE)),
             ("time_perf_counter_ns", "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0"),
             ("0x7f136b929770", "?"), ("clock_gettime", "/usr/lib/x86_64-linux-gnu/libc.so.6")]
    frames = [{"name": n, "file": f, "line": 0} for n, f in names]
    doc = {"shared": {"frames": frames}, "profiles": [{"name": 'Process 11 Thread 11 "MainThread"', "samples": [
        [0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 7, 8], [0, 1, 9, 10]],
        "weights": [0.01] * 4}]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    prof = parse_speedscope(str(path))
    core_py = os.path.join("percpu", "linux", "kernel", "sched", "core.py")
    grab = ("mmgrab", os.path.join("percpu", "linux", "kernel", "fork.py"))
    hook = ("Refcount.mmgrab_lazy_tlb", os.path.join("percpu", "strategies", "refcount.py"))
    # schedule_loop's wrapper and C function are one frame; libpython's and libc's keep their library's name
    assert list(prof.stacks)[0][1:] == (("schedule_loop", core_py), ("run_quanta", core_py), hook, grab)
    assert (("run_quanta", core_py), (CYTHON_RUNTIME, core_py),
            ("time_perf_counter_ns", "libpython3.11.so.1.0")) == list(prof.stacks)[1][2:]
    assert list(prof.stacks)[2][1:] == ((LOST_FRAME, "?"), ("clock_gettime", "libc.so.6"))
    rows = {row["function"]: row for row in prof.top(10)}
    assert rows["mmgrab"]["self_share"] == 0.5 and rows["mmgrab"]["kernel"]
    assert prof.total_counts[hook] == 2 and prof.total_counts[("run_quanta", core_py)] == 3
    assert is_kernel_named(*hook) and not is_kernel_named(CYTHON_RUNTIME, core_py)
    assert not rows["time_perf_counter_ns"]["kernel"]


def test_compiled_profile_shows_kernel_functions_by_their_kernel_names(tmp_path):
    """The default engine (the installed, compiled one), --native by default."""
    r = _profile(tmp_path, "refcount", "--engine", "compiled")
    assert "compiled engine, py-spy --native" in r.stdout
    prof = parse_speedscope(str(tmp_path / "refcount-lazy-roundtrip-2cpu.json"))
    assert len(prof.worker_samples) == 2
    tlb = os.path.join("percpu", "linux", "arch", "x86", "mm", "tlb.py")
    core = os.path.join("percpu", "linux", "kernel", "sched", "core.py")
    hook = ("Refcount.mmgrab_lazy_tlb", os.path.join("percpu", "strategies", "refcount.py"))
    top = _top_functions(prof, 12)
    assert REFCOUNT_LAZY <= top and ("switch_mm_irqs_off", tlb) in top and ("run_quanta", core) in top, prof.top(12)
    # the hook calls mmgrab: it is on the stack above it
    assert prof.total_counts[hook] >= prof.total_counts[("mmgrab", FORK)] > 0
    # no mangled names or .so files left in the table, and the kernel names are marked
    assert not [row for row in prof.top(30) if row["file"].startswith("percpu") and row["file"].endswith(SUFFIX)]
    for mangled in ("tlb_switch_mm_irqs_off", "fork_mmgrab", "core_run_quanta", "Refcount_mmgrab_lazy_tlb"):
        assert mangled not in r.stdout
    assert "switch_mm_irqs_off *" in r.stdout and "mmgrab *" in r.stdout
    titles = " ".join(t.text for t in ET.parse(tmp_path / "refcount-lazy-roundtrip-2cpu.svg").getroot()
                      .iter("{http://www.w3.org/2000/svg}title"))
    assert f"mmgrab ({FORK})" in titles and f"run_quanta ({core})" in titles


def test_compiled_profile_without_native_says_why_it_shows_no_kernel_function(tmp_path):
    r = _profile(tmp_path, "refcount", "--engine", "compiled", "--no-native", "--format", "speedscope")
    assert "compiled engine without --native" in r.stdout
    prof = parse_speedscope(str(tmp_path / "refcount-lazy-roundtrip-2cpu.json"))
    assert not any(row["kernel"] for row in prof.top(20)), prof.top(20)
