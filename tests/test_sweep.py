"""percpu sweep and percpu compare: the table, the warnings and the
comparison on recorded result files (tests/data/, real runs on the 2-core
VM), a tiny real sweep, the 16-core script at 2 CPUs, and bad input.

Performance is never asserted: the speedups are recomputed here from the
recorded throughputs, not compared with expected values."""
import contextlib
import copy
import csv
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings, strategies as st

from conftest import on_a_full_disk, percpu_cli, percpu_command
from percpu.cli.scaling import (
    ResultFileError,
    compare_cells,
    format_speedup,
    load_result,
    speedup_table,
    summarize_runs,
    warnings_for,
)
from percpu.cli.app import main
from percpu.strategies import SAFE_STRATEGIES
from percpu.workers.pool import MAX_CPUS

DATA = Path(__file__).parent / "data"
SWEEP_A, SWEEP_B = DATA / "sweep-a", DATA / "sweep-b"  # the same sweep recorded twice; B adds unsafe
RUN_HAZARD = DATA / "run-hazard-cpus2.json"  # percpu run --json, context-switch-threads, 2 CPUs
RUN_ROUNDTRIP = DATA / "run-refcount-roundtrip.json"  # lazy-roundtrip: matches no sweep cell
REPO = Path(__file__).parent.parent


def _recorded_runs(sweep_dir):
    summary = json.loads((sweep_dir / "summary.json").read_text())
    return summary, [json.loads((sweep_dir / name).read_text()) for name in summary["runs"]]


def _ops(runs, strategy, cpus):
    """Per repeat, in the order run: this cell's throughputs, read directly."""
    return [d["rate"]["total_ops_per_s"] for d in runs
            if d["parameters"]["strategy"] == strategy and d["parameters"]["cpus"] == cpus]


# -- the summary and the table, on recorded runs -----------------------------

def test_summary_is_what_the_recorded_runs_say():
    summary, runs = _recorded_runs(SWEEP_A)
    cells = summarize_runs(runs)
    assert cells == summary["cells"]  # the stored summary matches its run files
    assert len(cells) == 3 * 2
    for cell in cells:
        ops = _ops(runs, cell["strategy"], cell["cpus"])
        assert cell["ops_per_s"] == ops and cell["repeats"] == 3
        assert cell["ops_per_s_median"] == statistics.median(ops)
        assert cell["spread_pct"] == pytest.approx(100 * (max(ops) - min(ops)) / statistics.median(ops))
        if cell["strategy"] == "refcount":
            assert cell["speedup_pct"] is None
        else:
            base = _ops(runs, "refcount", cell["cpus"])
            paired = [100 * (s / b - 1) for s, b in zip(ops, base)]
            assert cell["speedup_pct"] == pytest.approx(paired)
            assert cell["speedup_pct_median"] == pytest.approx(statistics.median(paired))


def test_table_has_the_published_shape():
    summary, runs = _recorded_runs(SWEEP_A)
    header, rows = speedup_table(summary["cells"], "context-switch-threads", 1)
    assert header == ["CPUs", "refcount ops/s", "hazard", "tlbstate"]
    assert [row[0] for row in rows] == ["1", "2"]
    for row in rows:
        cpus = int(row[0])
        base = _ops(runs, "refcount", cpus)
        assert row[1].startswith(f"{statistics.median(base):,.0f} ±")
        for strategy, text in zip(header[2:], row[2:]):
            paired = [100 * (s / b - 1) for s, b in zip(_ops(runs, strategy, cpus), base)]
            match = re.fullmatch(r"([+-]\d+\.\d)% ±(\d+\.\d)( !)?", text)
            assert match, text
            assert float(match[1]) == pytest.approx(statistics.median(paired), abs=0.051)
            assert float(match[2]) == pytest.approx((max(paired) - min(paired)) / 2, abs=0.051)


def test_failed_cells_show_fail_not_a_speedup():
    summary, runs = _recorded_runs(SWEEP_B)  # unsafe FAILs: the checker catches its use-after-free
    unsafe = [c for c in summary["cells"] if c["strategy"] == "unsafe"]
    failures = {cpus: sum(d["verdict"] != "SUCCESS" for d in runs if d["parameters"]["strategy"] == "unsafe"
                          and d["parameters"]["cpus"] == cpus) for cpus in (1, 2)}
    header, rows = speedup_table(summary["cells"], "context-switch-threads", 1)
    column = header.index("unsafe")
    for cell, row in zip(sorted(unsafe, key=lambda c: c["cpus"]), rows):
        assert cell["failed"] == failures[cell["cpus"]] > 0
        assert row[column] == f"FAIL ({cell['failed']}/3)"
    assert any("unsafe" in w and "FAILED" in w for w in warnings_for(summary["cells"], 2))


def _with_ops(run, ops, **machine):
    doc = copy.deepcopy(run)
    doc["rate"]["total_ops_per_s"] = ops
    doc["machine"].update(machine)
    return doc


def test_spread_over_ten_percent_of_the_median_is_unstable():
    _, runs = _recorded_runs(SWEEP_A)
    ref = next(d for d in runs if d["parameters"]["strategy"] == "refcount")
    steady = summarize_runs([_with_ops(ref, x) for x in (1000.0, 1100.0, 1050.0)])  # 100/1050: 9.5%
    shaky = summarize_runs([_with_ops(ref, x) for x in (1000.0, 1120.0, 1050.0)])  # 120/1050: 11.4%
    assert not steady[0]["unstable"] and shaky[0]["unstable"]
    assert not any("unstable" in w for w in warnings_for(steady, 2))
    warned = warnings_for(shaky, 2)
    assert warned[0] == "WARNING: the result may be unstable"
    assert "refcount cpus=1 tasks-per-cpu=1" in warned[1] and "11.4% of the median" in warned[1]


def test_oversubscription_and_a_single_repeat_are_warned_about():
    _, runs = _recorded_runs(SWEEP_A)
    ref = next(d for d in runs if d["parameters"]["strategy"] == "refcount")
    cells = summarize_runs([_with_ops(ref, 500.0, oversubscribed=True)])
    warned = " ".join(warnings_for(cells, 2))
    assert "oversubscribed" in warned and "one repeat" in warned
    hazard = summarize_runs([json.loads(RUN_HAZARD.read_text())])[0]
    assert format_speedup(hazard) == "-"  # no refcount run to compare with


# -- compare, on recorded files ------------------------------------------------

def test_compare_two_sweeps_cell_by_cell():
    a, b = load_result(str(SWEEP_A)), load_result(str(SWEEP_B / "summary.json"))
    rows, only_a, only_b = compare_cells(a["cells"], b["cells"])
    assert (len(rows), only_a, only_b) == (6, 0, 2)  # unsafe is only in B
    _, runs_a = _recorded_runs(SWEEP_A)
    _, runs_b = _recorded_runs(SWEEP_B)
    for row in rows:
        ops_a, ops_b = _ops(runs_a, row["strategy"], row["cpus"]), _ops(runs_b, row["strategy"], row["cpus"])
        assert row["ratio"] == pytest.approx(statistics.median(ops_b) / statistics.median(ops_a))
        assert row["beyond_spread"] == (min(ops_b) > max(ops_a) or max(ops_b) < min(ops_a))


def test_beyond_spread_needs_disjoint_ranges_and_two_repeats():
    _, runs = _recorded_runs(SWEEP_A)
    ref = next(d for d in runs if d["parameters"]["strategy"] == "refcount")
    cells = lambda *xs: summarize_runs([_with_ops(ref, x) for x in xs])  # noqa: E731
    assert compare_cells(cells(100, 110, 120), cells(121, 130, 125))[0][0]["beyond_spread"] is True
    assert compare_cells(cells(100, 110, 120), cells(90, 95, 99))[0][0]["beyond_spread"] is True
    assert compare_cells(cells(100, 110, 120), cells(119, 130, 125))[0][0]["beyond_spread"] is False
    row = compare_cells(cells(100), cells(90, 95, 99))[0][0]
    assert row["beyond_spread"] is None and row["ratio"] == pytest.approx(95 / 100)


def test_compare_cli_run_against_sweep():
    r = percpu_cli("compare", str(SWEEP_A), str(RUN_HAZARD))
    assert r.returncode == 0, r.stderr
    a = load_result(str(SWEEP_A))["cells"]
    hazard2 = next(c for c in a if c["strategy"] == "hazard" and c["cpus"] == 2)
    b_ops = json.loads(RUN_HAZARD.read_text())["rate"]["total_ops_per_s"]
    ratio = b_ops / hazard2["ops_per_s_median"]
    assert f"{ratio:.3f}x" in r.stdout
    assert "unknown (one repeat)" in r.stdout
    assert "5 cell(s) only in A, 0 only in B" in r.stdout


def test_compare_cli_two_sweeps():
    r = percpu_cli("compare", str(SWEEP_A / "summary.json"), str(SWEEP_B))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("context-switch-threads") == 6
    assert "0 cell(s) only in A, 2 only in B" in r.stdout


# -- a tiny real sweep ---------------------------------------------------------

def test_tiny_sweep_writes_runs_summary_and_plots(tmp_path):
    out = tmp_path / "sweep"
    r = percpu_cli("sweep", "--strategies", "tlbstate", "--cpus", "1-2", "--workload", "lazy-roundtrip",
                   "--repeat", "2", "--duration", "0.2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "percpu.sweep/1"
    assert summary["parameters"]["strategies"] == ["refcount", "tlbstate"]  # the baseline always runs
    assert summary["machine"]["usable_core_count"] == len(os.sched_getaffinity(0))
    assert summary["machine"]["cpu_model"] is not None and "loadavg_start" in summary["machine"]

    runs = [json.loads((out / name).read_text()) for name in summary["runs"]]
    assert len(runs) == len(list((out / "runs").iterdir())) == 2 * 2 * 2
    assert all(d["schema"] == "percpu.run/1" and d["verdict"] == "SUCCESS" and d["machine"] for d in runs)
    assert summarize_runs(runs) == summary["cells"]

    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(row["strategy"], row["cpus"]) for row in rows] == [
        ("refcount", "1"), ("tlbstate", "1"), ("refcount", "2"), ("tlbstate", "2")]
    for row, cell in zip(rows, summary["cells"]):
        assert float(row["ops_per_s_median"]) == pytest.approx(cell["ops_per_s_median"])

    header, table_rows = speedup_table(summary["cells"], "lazy-roundtrip", 1)
    for row in table_rows:  # the terminal shows the same cells as the summary
        assert re.search(r"│\s+" + row[0] + r" │.*" + re.escape(row[2]), r.stdout), (row, r.stdout)
    assert "Speedup over refcount: lazy-roundtrip, 1 task per CPU" in r.stdout
    assert "| CPUs | refcount ops/s | tlbstate |" in (out / "table.md").read_text()

    for name in ("throughput", "speedup"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = (out / f"{name}.svg").read_text()
        assert "<svg" in svg and "emulated CPUs" in svg and "lazy-roundtrip" in svg
    assert "linear scaling" in (out / "throughput.svg").read_text()
    assert "speedup over refcount" in (out / "speedup.svg").read_text()


def test_sweep16_script_at_two_cpus(tmp_path):
    out = tmp_path / "sweep16"
    env = dict(os.environ, SWEEP_CPUS="1,2", SWEEP_REPEAT="1", SWEEP_DURATION="0.1", SWEEP_OUT=str(out),
               PATH=os.path.dirname(percpu_command()[0]) + os.pathsep + os.environ["PATH"])
    r = subprocess.run(["sh", str(REPO / "bench" / "sweep16.sh")], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"]["tasks_per_cpu"] == [1, 2]
    assert summary["parameters"]["strategies"] == list(SAFE_STRATEGIES)
    assert summary["parameters"]["cpus"] == [1, 2]
    assert len(summary["runs"]) == len(SAFE_STRATEGIES) * 2 * 2
    assert "1 task per CPU" in r.stdout and "2 tasks per CPU" in r.stdout


def test_ctrl_c_keeps_finished_runs_and_leaves_nothing(tmp_path):
    out = tmp_path / "sweep"
    proc = subprocess.Popen(
        [*percpu_command(), "sweep", "--strategies", "refcount", "--cpus", "1", "--repeat", "3",
         "--duration", "1", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    finished = lambda: sorted((out / "runs").glob("*.json")) if (out / "runs").exists() else []  # noqa: E731
    deadline = time.monotonic() + 30
    while not finished():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # during the second run
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert len(finished()) in (1, 2) and not (out / "summary.json").exists()


# -- bad input -------------------------------------------------------------------

@pytest.mark.parametrize(
    "args, words",
    [
        (["--cpus", "0"], "--cpus"),
        (["--cpus", "a-b"], "range like"),
        (["--cpus", "3-1"], "empty"),
        (["--cpus", str(MAX_CPUS + 1)], f"from 1 to {MAX_CPUS}"),
        (["--cpus", "1,,2"], "--cpus"),
        (["--cpus", "1", "--strategies", "rcu"], "refcount"),  # lists the valid ones
        (["--cpus", "1", "--strategies", ""], "unknown strategy"),
        (["--cpus", "1", "--workload", "nope"], "context-switch-threads"),
        (["--cpus", "1", "--tasks-per-cpu", "0"], "--tasks-per-cpu"),
        (["--cpus", "1", "--tasks-per-cpu", "17"], "from 1 to 16"),
        (["--cpus", "1", "--duration", "0"], "positive"),
        (["--cpus", "1", "--duration", "-1"], "positive"),
        (["--cpus", "1", "--duration", "nan"], "positive"),
        (["--cpus", "1", "--repeat", "0"], "--repeat"),
        (["--cpus", "1", "--switch-cost-ns", "x"], "--switch-cost-ns"),
        (["--strategies", "all"], "Missing option '--cpus'"),
        (["--cpus", "1", "--out", "/proc/percpu-sweep"], "cannot write"),
        (["--cpus", "1", "--duration", "1e30"], "at most 86400"),
        (["--cpus", "1", "--workload", "lazy-roundtrip", "--tasks-per-cpu", "1,2"], "one task per CPU"),
    ],
)
def test_sweep_bad_input_is_one_line_and_exit_2(args, words):
    r = percpu_cli("sweep", *args)
    _assert_usage_error(r, words)


def test_sweep_on_a_full_disk_is_one_line_and_leaves_no_half_written_run(tmp_path):
    r, left = on_a_full_disk(tmp_path, "sweep", "--strategies", "refcount", "--cpus", "1", "--repeat", "2",
                             "--duration", "0.1", "--out", "{full}/sweep")
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("percpu: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "runs before it" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    assert left == [], left  # the probe is gone, no truncated run file, no temporary one


def test_sweep_refuses_an_out_that_is_a_file_or_not_empty(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    _assert_usage_error(percpu_cli("sweep", "--cpus", "1", "--out", str(a_file)), "not a directory")
    _assert_usage_error(percpu_cli("sweep", "--cpus", "1", "--out", str(a_file / "below")), "cannot write")
    _assert_usage_error(percpu_cli("sweep", "--cpus", "1", "--out", str(tmp_path)), "not empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_compare_bad_input_is_one_line_and_exit_2(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "percpu.run/1", ')
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"benchmark": "roundtrip"}')
    _assert_usage_error(percpu_cli("compare", str(tmp_path / "missing.json"), str(RUN_HAZARD)), "no such file")
    _assert_usage_error(percpu_cli("compare", str(broken), str(RUN_HAZARD)), "not valid JSON")
    _assert_usage_error(percpu_cli("compare", str(RUN_HAZARD), str(foreign)), "not a percpu result")
    _assert_usage_error(percpu_cli("compare", str(tmp_path), str(RUN_HAZARD)), "no such file")  # no summary.json
    _assert_usage_error(percpu_cli("compare", str(RUN_ROUNDTRIP), str(SWEEP_A)), "no cell")
    _assert_usage_error(percpu_cli("compare", str(RUN_HAZARD)), "Missing argument")


def test_load_result_names_a_truncated_sweep(tmp_path):
    summary = json.loads((SWEEP_A / "summary.json").read_text())
    del summary["cells"][0]["ops_per_s"]
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ResultFileError, match="missing 'ops_per_s'"):
        load_result(str(tmp_path))


def _assert_usage_error(r, words):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("percpu: error:") and words in lines[0], lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""


# -- two strategies, compared ----------------------------------------------------

RUN_REFCOUNT = SWEEP_A / "runs" / "context-switch-threads-refcount-cpus2-tpc1-r1.json"  # as RUN_HAZARD, refcount


def test_compare_two_strategies_runs_matches_the_cells_on_all_but_the_strategy():
    r = percpu_cli("compare", str(RUN_REFCOUNT), str(RUN_HAZARD))
    assert r.returncode == 0, r.stderr
    a = json.loads(RUN_REFCOUNT.read_text())["rate"]["total_ops_per_s"]
    b = json.loads(RUN_HAZARD.read_text())["rate"]["total_ops_per_s"]
    row = next(line for line in r.stdout.splitlines() if line.startswith("│ context-switch-threads"))
    assert re.search(r"│\s+2 │ refcount\s+│ hazard\s+│", row), row
    assert f"{b / a:.3f}x" in row
    assert "A strategy" in r.stdout and "B strategy" in r.stdout


def _sweep_with(tmp_path, name, strategies):
    summary = json.loads((SWEEP_A / "summary.json").read_text())
    summary["cells"] = [c for c in summary["cells"] if c["strategy"] in strategies]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(summary))
    return load_result(str(path))


def test_two_strategies_sweeps_pair_the_same_strategy_first_then_the_other(tmp_path):
    a = _sweep_with(tmp_path, "a", {"refcount", "hazard"})
    b = _sweep_with(tmp_path, "b", {"refcount", "tlbstate"})
    rows, only_a, only_b = compare_cells(a["cells"], b["cells"])
    assert (only_a, only_b) == (0, 0)
    assert sorted((r["cpus"], r["strategy"], r["b_strategy"]) for r in rows) == [
        (1, "hazard", "tlbstate"), (1, "refcount", "refcount"), (2, "hazard", "tlbstate"), (2, "refcount", "refcount")]
    for row in rows:
        ca = next(c for c in a["cells"] if (c["cpus"], c["strategy"]) == (row["cpus"], row["strategy"]))
        cb = next(c for c in b["cells"] if (c["cpus"], c["strategy"]) == (row["cpus"], row["b_strategy"]))
        assert row["ratio"] == pytest.approx(statistics.median(cb["ops_per_s"]) / statistics.median(ca["ops_per_s"]))


def test_leftover_cells_that_do_not_pair_one_to_one_are_counted_not_compared(tmp_path):
    a = _sweep_with(tmp_path, "a", {"hazard", "tlbstate"})  # two left at each CPU count
    b = _sweep_with(tmp_path, "b", {"refcount"})
    rows, only_a, only_b = compare_cells(a["cells"], b["cells"])
    assert (rows, only_a, only_b) == ([], 4, 2)


@pytest.mark.parametrize("field, value, words", [
    ("ops_per_s", ["many"], "cell 1 holding 'ops_per_s[0]' = \"many\", not a number"),
    ("ops_per_s", [float("nan")], "NaN"),
    ("ops_per_s", [1e400], "Infinity"),
    ("ops_per_s", [10 ** 400], "not a number"),
    ("ops_per_s", [], "one number per repeat"),
    ("cpus", "two", "'cpus' = \"two\", not a positive integer"),
    ("strategy", 7, "'strategy' = 7, not a string"),
    ("failed", "yes", "'failed'"),
])
def test_compare_of_a_sweep_with_a_field_of_the_wrong_kind_is_one_line(tmp_path, field, value, words):
    summary = json.loads((SWEEP_A / "summary.json").read_text())
    summary["cells"][1][field] = value
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    _assert_usage_error(percpu_cli("compare", str(tmp_path), str(SWEEP_A)), words)


def test_compare_of_a_run_with_a_field_of_the_wrong_kind_is_one_line(tmp_path):
    doc = json.loads(RUN_HAZARD.read_text())
    doc["rate"]["total_ops_per_s"] = "fast"
    (tmp_path / "run.json").write_text(json.dumps(doc))
    _assert_usage_error(percpu_cli("compare", str(SWEEP_A), str(tmp_path / "run.json")), "'total_ops_per_s'")


def _paths(value, prefix=()):
    """Every path to a value inside a JSON document."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_ORIGINALS = {"run": json.loads(RUN_HAZARD.read_text()), "sweep": json.loads((SWEEP_A / "summary.json").read_text())}


@st.composite
def _corrupted(draw):
    """A recorded run or sweep, with one value replaced or removed, or its text cut or changed."""
    doc = copy.deepcopy(_ORIGINALS[draw(st.sampled_from(sorted(_ORIGINALS)))])
    how = draw(st.sampled_from(["replace", "remove", "cut", "change a character"]))
    if how in ("replace", "remove"):
        path = draw(st.sampled_from(list(_paths(doc))[1:]))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if how == "replace":
            parent[path[-1]] = draw(_JSON)
        else:
            del parent[path[-1]]
        return json.dumps(doc)
    text = json.dumps(doc)
    at = draw(st.integers(0, len(text) - 1))
    if how == "cut":
        return text[:at]
    return text[:at] + draw(st.characters()) + text[at + 1:]


@settings(max_examples=150, deadline=None)
@given(text=_corrupted(), corrupt_b=st.booleans())
def test_compare_of_any_corrupted_result_file_is_a_table_or_one_line(text, corrupt_b):
    with tempfile.TemporaryDirectory() as where:
        corrupted = os.path.join(where, "corrupted.json")
        with open(corrupted, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        files = [str(SWEEP_A), corrupted] if corrupt_b else [corrupted, str(SWEEP_A)]
        code, out, err = _percpu_in_process("compare", *files)
    if code == 0:
        assert "B / A, per cell" in out and err == ""
    else:
        assert code == 2, (code, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("percpu: error:"), err


def _percpu_in_process(*args):
    """`percpu ARGS` in this process (a subprocess per example would take
    minutes): exit code, stdout, stderr. Any exception but SystemExit escapes."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.object(sys, "argv", ["percpu", *args]), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()
