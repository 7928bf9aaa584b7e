"""The command line as a user meets it: verdicts, exit codes, bad input,
Ctrl-C and a killed worker, and nothing left in /dev/shm."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import on_a_full_disk, percpu_cli, percpu_command
from percpu.machine.segment import live_segments


def test_run_prints_report_and_success_verdict():
    r = percpu_cli("run", "--strategy", "refcount", "--cpus", "2", "--duration", "0.3")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("SUCCESS: strategy=refcount workload=lazy-roundtrip cpus=2 duration=0.3 seed=1")
    assert "Throughput" in r.stdout and "shared atomics" in r.stdout


def test_unsafe_fails_with_exit_1_and_names_the_use_after_free():
    r = percpu_cli("run", "--strategy", "unsafe", "--cpus", "2", "--duration", "0.2")
    assert r.returncode == 1
    assert "use-after-free" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("FAILURE: strategy=unsafe")


def test_json_is_one_versioned_document():
    r = percpu_cli("run", "--strategy", "tlbstate", "--cpus", "3", "--duration", "0.3", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "percpu.run/1"
    assert doc["verdict"] == "SUCCESS"
    assert doc["parameters"]["strategy"] == "tlbstate" and doc["parameters"]["cpus"] == 3
    assert len(doc["machine"]["pinning"]) == 3 and "oversubscription" in doc["machine"]
    assert len(doc["per_cpu"]) == 3
    assert r.stderr.strip().startswith("SUCCESS:")


def test_oversubscribed_run_says_so():
    cores = len(os.sched_getaffinity(0))
    r = percpu_cli("run", "--cpus", str(2 * cores + 1), "--duration", "0.3")
    assert r.returncode == 0, r.stderr
    assert "OVERSUBSCRIBED" in r.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["--cpus", "0"], "--cpus"),
        (["--cpus", "-3"], "--cpus"),
        (["--cpus", "many"], "--cpus"),
        (["--cpus", "100000"], "--cpus"),
        (["--strategy", "rcu"], "refcount"),  # lists the valid ones
        (["--workload", "nope"], "lazy-roundtrip"),
        (["--duration", "0"], "positive"),
        (["--duration", "-1"], "positive"),
        (["--duration", "nan"], "positive"),
        (["--duration", "inf"], "positive"),
        (["--seed", "x"], "--seed"),
        (["--seed", "-1"], "--seed"),
        (["--line-size", "100"], "power of two"),
        (["--line-size", "32"], "power of two"),
        (["--line-size", str(2 ** 62)], "from 64 to 4096"),  # once overflowed the segment's sizing
        (["--duration", "1e30"], "at most 86400"),  # once ran forever
        (["--fork-rate", "1e10", "--workload", "fork-exit"], "at most"),  # once crashed the workers
        (["--fork-rate", "0", "--workload", "fork-exit"], "positive"),
        (["--tasks-per-cpu", "2"], "one task per CPU"),  # lazy-roundtrip would ignore it
        (["--tasks-per-cpu", "2", "--workload", "fork-exit"], "one task per CPU"),
        (["--fork-rate", "300", "--workload", "context-switch-threads"], "forks nothing"),
        (["--out", "same.json", "--trace", "same.json"], "one would overwrite the other"),
        (["--out", "same.json", "--trace", "./same.json"], "one would overwrite the other"),
        (["--layout", "diagonal"], "padded"),
        (["--switch-cost-ns", "-1"], "--switch-cost-ns"),
        (["--switch-cost-ns", "1000001"], "--switch-cost-ns"),
        (["--no-such-option"], "no-such-option"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words, tmp_path):
    r = percpu_cli("run", *args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("percpu: error:")
    assert words in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not list(tmp_path.iterdir())  # nothing written, not even an empty --out


def test_the_options_a_workload_reads_are_accepted():
    r = percpu_cli("run", "--workload", "context-switch-processes", "--tasks-per-cpu", "2", "--duration", "0.2")
    assert r.returncode == 0, r.stderr
    r = percpu_cli("run", "--workload", "fork-exit", "--fork-rate", "1000", "--duration", "0.2")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("option", ["--out", "--trace"])
def test_an_output_on_a_full_device_is_one_line_and_exit_2(option):
    r = percpu_cli("run", "--duration", "0.2", option, "/dev/full")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write /dev/full: No space left on device" in lines[0], r.stderr
    assert "verdict was SUCCESS" in lines[0]  # the run's outcome is not lost
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("option", ["--out", "--trace"])
def test_an_output_on_a_full_disk_leaves_nothing_half_written(tmp_path, option):
    r, left = on_a_full_disk(tmp_path, "run", "--duration", "0.2", option, "{full}/r.json")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "r.json" in lines[0], r.stderr
    assert left == [], left  # no empty or truncated file, no temporary one


def test_an_output_written_over_an_old_file_is_whole(tmp_path):
    out = tmp_path / "r.json"
    out.write_text("old")
    r = percpu_cli("run", "--duration", "0.2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["schema"] == "percpu.run/1"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _start_long_run(*extra):
    proc = subprocess.Popen(
        [*percpu_command(), "run", "--cpus", "4", "--duration", "60", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(_children(proc.pid)) < 4:
        assert time.monotonic() < deadline, "workers did not start"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)  # let the run get going
    return proc


def test_ctrl_c_stops_everything_and_leaves_nothing():
    proc = _start_long_run()
    workers = _children(proc.pid)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 5
    assert "interrupted" in err and "Traceback" not in err
    assert not live_segments()
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie_or_gone(pid)


def test_sigterm_is_handled_like_ctrl_c():
    proc = _start_long_run()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert not live_segments()


def test_killed_worker_fails_the_run_promptly_naming_the_cpu():
    proc = _start_long_run()
    workers = _children(proc.pid)
    victim = workers[2]
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=15)
    assert time.monotonic() - killed_at < 2.0
    assert proc.returncode == 1
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("FAILURE:")
    assert f"(pid {victim}) was killed by SIGKILL" in verdict
    # the CPUs never reported: no row of zeros beside the throughput they had
    assert "aborted before its CPUs reported" in out
    assert re.search(r"│ ops\s+│\s+[1-9][\d,]* │", out), out
    assert not live_segments()


def _is_zombie_or_gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_256_cpus_start_and_finish_and_a_long_start_up_shows_progress():
    r = percpu_cli("run", "--cpus", "256", "--duration", "0.2", "--json", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "SUCCESS" and len(doc["per_cpu"]) == 256
    progress = [line for line in r.stderr.splitlines() if line.startswith("percpu: starting 256 CPUs")]
    if doc["startup_s"] > 1.2:  # longer than a second (and a report's slack): it said so as it went
        assert progress and re.fullmatch(r"percpu: starting 256 CPUs: \d+ forked, \d+ booted \(\d+\.\d s\)",
                                         progress[0])
        assert f"percpu: 256 CPUs started in {doc['startup_s']:.1f} s" in r.stderr
    else:
        assert len(progress) <= 1, r.stderr
