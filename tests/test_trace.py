"""`percpu run --trace`: a Chrome/Perfetto trace-event file whose slices nest."""
import json

import numpy as np
import pytest

from percpu.cli.output import size_text
from percpu.machine import tracing as trace

from conftest import percpu_cli


def assert_valid_chrome_trace(doc, ncpus):
    """What Perfetto's JSON importer needs: known phases, numeric ts, and on
    every track B/E pairs that nest and time that never runs backwards."""
    events = doc["traceEvents"]
    assert isinstance(events, list) and events
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert sorted(names) == list(range(ncpus))
    depth, last_ts = {}, {}
    for e in events:
        assert e["ph"] in "MBEiC", e
        if e["ph"] == "M":
            continue
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        if e["ph"] == "C":
            assert all(isinstance(v, (int, float)) for v in e["args"].values())
            continue
        tid = e["tid"]
        assert e["ts"] >= last_ts.get(tid, 0), f"time runs backwards on CPU {tid}"
        last_ts[tid] = e["ts"]
        if e["ph"] == "B":
            assert e["name"]
            depth[tid] = depth.get(tid, 0) + 1
        elif e["ph"] == "E":
            assert depth.get(tid, 0) > 0, f"unmatched end on CPU {tid}"
            depth[tid] -= 1
    assert all(d == 0 for d in depth.values()), depth


@pytest.mark.parametrize("strategy, workload, faults", [("refcount", "fork-exit", "all"), ("tlbstate", "fork-exit", "all"),
                                                        # hazard is not hotplug-safe (README: finish_cpu)
                                                        ("hazard", "context-switch-processes", "ipi-delay,stall")])
def test_trace_of_a_4_cpu_run_is_valid_and_shows_the_strategy(tmp_path, strategy, workload, faults):
    path = tmp_path / "trace.json"
    r = percpu_cli("run", "--strategy", strategy, "--workload", workload, "--cpus", "4",
                   "--duration", "0.5", "--faults", faults, "--trace", str(path))
    assert r.returncode == 0, r.stderr
    doc = json.loads(path.read_text())
    assert_valid_chrome_trace(doc, 4)
    events = doc["traceEvents"]
    slices = [e["name"] for e in events if e["ph"] == "B"]
    assert any(name.startswith("user task") for name in slices)
    assert any(name.startswith("idle, lazy on mm slot") for name in slices)
    counters = [e for e in events if e["ph"] == "C"]
    assert all(e["name"].startswith("mm_count") for e in counters)
    if strategy == "refcount":  # the contended mm_count moves on every lazy switch
        assert len(counters) > 100 and max(e["args"]["mm_count"] for e in counters) >= 2
    else:  # it moves only when the last user's reference goes
        assert all(e["args"]["mm_count"] == 0 for e in counters)
    if workload == "fork-exit":
        assert any(e["ph"] == "i" and e["name"].endswith("freed") for e in events)
        assert any(e["ph"] == "i" and e["name"].startswith("IPI ") for e in events)
    if strategy == "tlbstate":
        assert any(name == "IPI handler: flush_tlb_func" for name in slices)


def test_an_unsafe_run_marks_its_violations_on_the_timeline(tmp_path):
    path = tmp_path / "trace.json"
    r = percpu_cli("run", "--strategy", "unsafe", "--cpus", "2", "--duration", "0.2", "--trace", str(path))
    assert r.returncode == 1
    doc = json.loads(path.read_text())
    assert_valid_chrome_trace(doc, 2)
    assert any(e["ph"] == "i" and "use-after-free" in e["name"] for e in doc["traceEvents"])


def test_a_wrapped_ring_still_gives_nesting_slices():
    """The oldest events are overwritten: an end whose begin is gone is
    dropped, a slice still open at the end is closed."""
    events = np.array([
        (1000, trace.TASK_END, 0, 0),  # its begin was overwritten
        (2000, trace.TASK_BEGIN, trace.RUN_USER, 3),
        (3000, trace.KERNEL_BEGIN, trace.KERNEL_IPI, 0),
        (4000, trace.KERNEL_END, 0, 0),
        (5000, trace.TASK_END, 0, 0),
        (6000, trace.TASK_BEGIN, trace.RUN_IDLE_LAZY, 3),  # never ended
    ], dtype=np.int64)
    doc = trace.to_chrome_trace([events], start_ns=0, pinning=[0], title="t", ipi_names=["f"],
                                violation_kinds={}, lost=[5])
    assert_valid_chrome_trace(doc, 1)
    phases = [e["ph"] for e in doc["traceEvents"] if e["ph"] in "BE"]
    assert phases == ["B", "B", "E", "E", "B", "E"]


def test_trace_output_path_is_checked_before_the_run():
    r = percpu_cli("run", "--trace", "/proc/version")
    assert r.returncode == 2 and "cannot write" in r.stderr


from hypothesis import given, settings, strategies as st


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["task", "kernel", "end", "instant"]), max_size=60), st.integers(0, 60))
def test_any_window_of_a_well_formed_event_stream_converts_to_nesting_slices(script, cut):
    """Whatever part of a CPU's stream the ring kept (the oldest `cut` events
    lost), the converted slices nest on the track."""
    events, depth, t = [], 0, 0
    for step in script:
        t += 10
        if step == "task" and depth == 0:
            events.append((t, trace.TASK_BEGIN, trace.RUN_USER, 1)); depth += 1
        elif step == "kernel":
            events.append((t, trace.KERNEL_BEGIN, trace.KERNEL_TEARDOWN, 1)); depth += 1
        elif step == "end" and depth:
            events.append((t, trace.TASK_END if depth == 1 else trace.KERNEL_END, 0, 0)); depth -= 1
        else:
            events.append((t, trace.TEARDOWN, 1, 0))
    kept = np.array(events[cut:] or [(t, trace.TEARDOWN, 1, 0)], dtype=np.int64)
    doc = trace.to_chrome_trace([kept], start_ns=0, pinning=[0], title="t", ipi_names=["f"],
                                violation_kinds={}, lost=[cut])
    assert_valid_chrome_trace(doc, 1)


def test_trace_says_on_stderr_where_it_went_its_size_and_what_the_rings_lost(tmp_path):
    path = tmp_path / "trace.json"
    r = percpu_cli("run", "--cpus", "2", "--duration", "0.5", "--trace", str(path), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(path.read_text())
    lost = doc["otherData"]["events_lost_to_ring_wrap"]
    line = next(line for line in r.stderr.splitlines() if line.startswith("percpu: trace:"))
    assert f"wrote {path} ({size_text(path.stat().st_size)}, {len(doc['traceEvents']):,} events)" in line
    assert sum(lost) > 0  # half a second of lazy round trips is more than a ring holds
    assert f"{sum(lost):,} older events lost to ring wrap on 2 of 2 CPUs" in line
    assert f"each CPU keeps its last {doc['otherData']['ring_events']:,}" in line
