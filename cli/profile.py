"""`percpu profile`: one `percpu run` under `py-spy record --subprocesses`.

py-spy samples the coordinator and every forked CPU worker and writes one
speedscope file (one profile per process). From it we print the functions
that take the most samples in the CPU workers (the coordinator, which mostly
sleeps, is left out) and, for `--format flamegraph`, render an SVG flame
graph of the same samples: py-spy cannot convert a recording it has written,
and a second recording would sample a different run.

The compiled engine's kernel functions are C functions: py-spy sees them
only with --native (on by default for that engine), named by its Cython
demangling, which keeps one prefix (`tlb_switch_mm_irqs_off`,
`Refcount_mmgrab_lazy_tlb`); `kernel_frame` maps them back to the names of
the .py sources, the names the interpreted engine's profile shows.

py-spy missing, or not allowed to read the workers' memory: one line on
stderr with the fix, exit 2.
"""
from __future__ import annotations

import ast
import functools
import importlib.machinery
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from xml.sax.saxutils import escape

import typer

import percpu
from percpu.cli.options import duration as check_duration
from percpu.cli.output import OutputError, write_text
from percpu.cli.render import verdict_line
from percpu.strategies import STRATEGIES
from percpu.workers.pool import MAX_CPUS
from percpu.workloads import WORKLOADS

Strategy = Enum("Strategy", {name: name for name in STRATEGIES}, type=str)
Workload = Enum("Workload", {name: name for name in WORKLOADS}, type=str)


class Engine(str, Enum):
    compiled = "compiled"
    interpreted = "interpreted"


class Format(str, Enum):
    flamegraph = "flamegraph"
    speedscope = "speedscope"


# Functions of the emulated kernel (percpu/linux/) named after the Linux (or
# RFC) functions they stand for, and the strategy hooks: marked in the table
# and coloured apart in the flame graph (a method by its last part:
# Refcount.mmgrab_lazy_tlb).
KERNEL_FUNCTIONS = frozenset({
    # kernel/fork.c and include/linux/sched/mm.h; mm/mmap.c; include/linux/cpumask.h
    "mm_alloc", "mmget", "mmput", "__mmput", "mmgrab", "mmdrop", "__mmdrop", "cleanup_lazy_tlbs",
    "do_shoot_lazy_tlb", "exit_mmap", "cpumask_set_cpu", "cpumask_clear_cpu",
    # kernel/sched/core.c, kernel/exit.c
    "finish_task_switch", "idle_task_exit", "enqueue_task", "wake_up_new_task", "exit_mm", "do_exit",
    # arch/x86/mm/tlb.c
    "switch_mm_irqs_off", "enter_lazy_tlb", "flush_tlb_func", "should_flush_tlb", "flush_tlb_mm_range",
    # kernel/smp.c
    "smp_call_function_single", "on_each_cpu_mask", "flush_smp_call_function_queue", "csd_lock_wait",
    # kernel/cpu.c
    "cpu_down", "cpu_up",
    # the strategies' hooks and helpers (percpu/strategies/)
    "mmgrab_lazy_tlb", "mmdrop_lazy_tlb", "mm_fixup_lazy_refs", "drop_extra_mm_refs", "hp_scan", "hp_allocate",
    "retire_lazy_mm_hp", "do_check_lazy_tlb", "finish_cpu", "switch_mm", "tlb_finish_mmu", "tlb_flush",
    "native_flush_tlb_multi", "broadcast_tlb_flush", "tlb_is_not_lazy", "should_trim_cpumask",

})

# The directory holding the `percpu` package (the project root in an editable
# install): file names are shown relative to it.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(percpu.__file__)))
_WORKER_ENTRY = "cpu_main"  # workers/worker.py: every frame of a CPU worker runs under it
_PROCESS_FRAME = re.compile(r'^process (\d+):')


# What kernel_frame names the compiled engine's frames that are no function
# of the source: Cython's call, argument and error-check helpers (__Pyx_*,
# __pyx_* left mangled) and the PLT stubs through which the .so calls
# libpython (py-spy has no symbol for them and shows an address).
CYTHON_RUNTIME = "Cython runtime"
# py-spy's native frames whose address is in no mapped file: a broken unwind
# (seen below clock_gettime in the vDSO, which has no unwind tables)
LOST_FRAME = "[native frame lost]"


def _extension_stem(path: str) -> str | None:
    """percpu/linux/arch/x86/mm/tlb for .../tlb.cpython-311-x86_64-linux-gnu.so; None if no extension module."""
    for suffix in sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return None


@functools.lru_cache(maxsize=None)
def _source_names(source: str) -> tuple[frozenset, dict]:
    """The module's top-level functions and its classes' methods, read from
    the .py the extension was compiled from (installed beside it)."""
    try:
        with open(source) as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return frozenset(), {}
    funcs = frozenset(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    classes = {n.name: frozenset(m.name for m in n.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)))
               for n in tree.body if isinstance(n, ast.ClassDef)}
    return funcs, classes


def kernel_frame(name: str, path: str) -> tuple[str, str] | None:
    """A native frame of one of percpu's compiled modules as (name, source
    path), named as in the source; None for any other frame.

    py-spy strips Cython's mangled C names to their last two parts:
    `__pyx_f_..._3tlb_switch_mm_irqs_off` (the C function) shows as
    `tlb_switch_mm_irqs_off`, a method's as `Refcount_mmgrab_lazy_tlb`, and a
    Python-callable wrapper (`__pyx_pw_..._3tlb_5switch_mm_irqs_off`) as the
    bare `switch_mm_irqs_off`."""
    stem = _extension_stem(path)
    if stem is None or not short_file(path).startswith("percpu" + os.sep):
        return None
    source = stem + ".py"
    # Cython's prefix is the module's last name (a package's for __init__)
    module = os.path.basename(os.path.dirname(stem) if os.path.basename(stem) == "__init__" else stem)
    if name.startswith("__pyx_pymod_exec_"):
        return "<module>", source  # the module body, run once at import (the coordinator's start-up)
    if name.startswith(("__pyx_", "__Pyx_", "0x")):
        return CYTHON_RUNTIME, source
    funcs, classes = _source_names(source)
    if name.startswith(module + "_") and name[len(module) + 1:] in funcs:
        return name[len(module) + 1:], source
    if name in funcs:
        return name, source
    for cls, methods in classes.items():
        if name.startswith(cls + "_") and name[len(cls) + 1:] in methods:
            return f"{cls}.{name[len(cls) + 1:]}", source
    owners = [cls for cls, methods in classes.items() if name in methods]
    if len(owners) == 1:  # a method's wrapper: the bare method name
        return f"{owners[0]}.{name}", source
    return name, source  # a name the source does not define plainly (a lambda, a name in two classes)


class PySpyUnavailable(Exception):
    """py-spy cannot be found or cannot attach; the message says how to fix it."""


def short_file(path: str) -> str:
    if not path:
        return ""
    if os.path.isabs(path):
        rel = os.path.relpath(path, _ROOT)
        if not rel.startswith(".."):
            return rel
        parts = path.split("site-packages" + os.sep, 1)
        if len(parts) == 2:
            return parts[1]
        if not path.endswith(".py"):
            return os.path.basename(path)  # a native library or a C source of CPython's: its name is enough
    return path


def is_kernel_named(name: str, file: str) -> bool:
    """A kernel-named function of the emulator (not a same-named one elsewhere)."""
    ours = file.startswith(("percpu" + os.sep, "workers" + os.sep))
    return ours and name.rsplit(".", 1)[-1] in KERNEL_FUNCTIONS


@dataclass
class Profile:
    """The samples of one speedscope file, split by process."""
    worker_samples: dict[int, int] = field(default_factory=dict)   # pid -> samples with cpu_main on the stack
    other_samples: int = 0                                         # coordinator (and anything else)
    self_counts: Counter = field(default_factory=Counter)          # (name, file) -> worker samples where it is the leaf
    total_counts: Counter = field(default_factory=Counter)         # (name, file) -> worker samples where it is on the stack
    stacks: Counter = field(default_factory=Counter)               # worker stacks from cpu_main up -> samples

    @property
    def samples(self) -> int:
        return sum(self.worker_samples.values())

    def top(self, n: int) -> list[dict]:
        """The n functions with the most self samples in the CPU workers."""
        total = self.samples or 1
        rows = []
        for (name, file), own in self.self_counts.most_common(n):
            rows.append({
                "function": name,
                "file": file,
                "self_share": own / total,
                "total_share": self.total_counts[(name, file)] / total,
                "kernel": is_kernel_named(name, file),
            })
        return rows


def parse_speedscope(path: str) -> Profile:
    """Read py-spy's speedscope output (`--subprocesses`: one profile per
    process and thread, each sample a root-first list of frame indices)."""
    with open(path) as f:
        doc = json.load(f)
    frames, compiled = [], []  # compiled[i]: frame i is a native frame of percpu's compiled engine
    for fr in doc["shared"]["frames"]:
        name, file = fr.get("name", "?"), fr.get("file") or ""
        m = _PROCESS_FRAME.match(name)
        ours = None if m else kernel_frame(name, file)
        if m:
            frames.append((f"process {m.group(1)}", ""))
        elif ours:
            frames.append((ours[0], short_file(ours[1])))
        elif file == "?":
            frames.append((LOST_FRAME, "?"))
        else:
            frames.append((name, short_file(file)))
        compiled.append(ours is not None)
    prof = Profile()
    for p in doc["profiles"]:
        m = re.match(r"Process (\d+)", p.get("name", ""))
        pid = int(m.group(1)) if m else -1
        for sample in p["samples"]:
            stack = []
            for i in sample:
                # a wrapper and its C function (schedule_loop, core_schedule_loop) are one
                # call of one function: one frame, as in the interpreted engine
                if not (compiled[i] and stack and stack[-1] == frames[i]):
                    stack.append(frames[i])
            entry = next((k for k, (name, _) in enumerate(stack) if name == _WORKER_ENTRY), None)
            if entry is None:
                prof.other_samples += 1
                continue
            prof.worker_samples[pid] = prof.worker_samples.get(pid, 0) + 1
            code = tuple(stack[entry:])
            prof.stacks[code] += 1
            prof.self_counts[code[-1]] += 1
            for fr in set(code):
                prof.total_counts[fr] += 1
    return prof


def flamegraph_svg(stacks: Counter, title: str, subtitle: str) -> str:
    """A static flame graph of root-first stacks: root at the bottom, one box
    per function per call path, kernel-named functions in blue, hover for
    samples and share."""
    root: dict = {"n": 0, "kids": {}}
    depth = 0
    for stack, n in stacks.items():
        node = root
        node["n"] += n
        for fr in stack:
            node = node["kids"].setdefault(fr, {"n": 0, "kids": {}})
            node["n"] += n
        depth = max(depth, len(stack))
    width, pad, row, top, bottom = 1200, 10, 16, 50, 10
    height = top + (depth + 1) * row + bottom
    total = root["n"] or 1
    scale = (width - 2 * pad) / total
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Verdana, sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f8f8f0"/>',
        f'<text x="{width // 2}" y="18" text-anchor="middle" font-size="15">{escape(title)}</text>',
        f'<text x="{width // 2}" y="36" text-anchor="middle" fill="#555">{escape(subtitle)}</text>',
    ]

    def colour(name: str, file: str) -> str:
        h = zlib.crc32(name.encode())
        a, b = (h & 0xFF) / 255, ((h >> 8) & 0xFF) / 255
        if not file:
            return "rgb(190,190,190)"                                     # process
        if is_kernel_named(name, file):
            return f"rgb({80 + int(50 * a)},{150 + int(50 * b)},{235 + int(20 * a)})"  # blue: kernel-named
        return f"rgb({205 + int(50 * a)},{int(200 * b)},{int(55 * a)})"   # warm: everything else

    def draw(node, x: float, level: int, label: str, name: str, file: str):
        w = node["n"] * scale
        if w < 0.3:
            return
        y = height - bottom - (level + 1) * row
        tip = f"{label} ({node['n']} samples, {100 * node['n'] / total:.2f}%)"
        out.append(f"<g><title>{escape(tip)}</title>")
        out.append(f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{row - 1}" rx="2" '
                   f'fill="{colour(name, file) if level else "rgb(220,220,220)"}"/>')
        chars = int((w - 6) / 6.6)
        if chars >= 3:
            text = name if len(name) <= chars else name[: chars - 2] + ".."
            out.append(f'<text x="{x + 3:.2f}" y="{y + row - 4}">{escape(text)}</text>')
        out.append("</g>")
        for (kname, kfile), kid in sorted(node["kids"].items()):
            draw(kid, x, level + 1, f"{kname} ({kfile})" if kfile else kname, kname, kfile)
            x += kid["n"] * scale

    draw(root, pad, 0, "all CPU workers", "all CPU workers", "")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def find_py_spy(explicit: str | None) -> str:
    """The py-spy to run: the one named (option or PERCPU_PY_SPY), else the one
    installed next to this Python, else the one on PATH."""
    if explicit:
        found = explicit if os.sep in explicit else shutil.which(explicit)
        if found and os.path.isfile(found) and os.access(found, os.X_OK):
            return found
        raise PySpyUnavailable(f"py-spy not found at {explicit}: install it with 'pip install py-spy' "
                               "or name it with --py-spy PATH")
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("py-spy")
    if found:
        return found
    raise PySpyUnavailable("py-spy not found: install it with 'pip install py-spy' (or 'pip install percpu[test]'), "
                           "or name it with --py-spy PATH")


_DENIED = re.compile(r"permission denied|operation not permitted|ptrace|EPERM", re.IGNORECASE)


class RunFailed(Exception):
    """py-spy ran, but the profiled run produced no result."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM; the argument is the partial speedscope file, if any."""


def _last_lines(said: str) -> str:
    return " ".join(line.strip() for line in said.strip().splitlines()[-3:]) or "no output"


def _fix_for(said: str) -> str:
    last = _last_lines(said)
    if _DENIED.search(said):
        return ("py-spy is not permitted to read the worker processes: run as root (sudo), in a container start it "
                "with --cap-add SYS_PTRACE, or allow ptrace with 'sysctl kernel.yama.ptrace_scope=0' "
                f"(py-spy said: {last})")
    return f"py-spy failed: {last}"


def record(py_spy: str, run_args: list[str], speedscope_path: str, rate: int, native: bool,
           engine: str) -> tuple[dict, str]:
    """Run `percpu run RUN_ARGS` on ENGINE under py-spy; returns the run's result
    document and py-spy's output. Raises PySpyUnavailable when py-spy cannot profile."""
    with tempfile.TemporaryDirectory(prefix="percpu-profile-") as tmp:
        doc_path = os.path.join(tmp, "run.json")
        cmd = [py_spy, "record", "--subprocesses", "--format", "speedscope", "--rate", str(rate),
               "--output", speedscope_path]
        if native:
            cmd.append("--native")
        # -P: import percpu as installed, not from a source tree in the working directory
        cmd += ["--", sys.executable, "-P", "-m", "percpu.cli.app", "run", *run_args, "--json", "--out", doc_path]
        # Ctrl-C reaches py-spy and the run too (one process group): they stop
        # and py-spy writes what it has. Here it only marks the profile as cut
        # short; SIGTERM is passed on to py-spy as a Ctrl-C.
        stopped: list[int] = []
        proc = None

        def on_signal(signum, frame):
            stopped.append(signum)
            if signum == signal.SIGTERM and proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env={**os.environ, "PERCPU_ENGINE": engine})
            out, err = proc.communicate()
        except OSError as exc:
            raise PySpyUnavailable(f"cannot run {py_spy}: {exc.strerror}; install it with 'pip install py-spy'")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        said = err + out
        if stopped or "because Control-C pressed" in said:
            raise Interrupted(speedscope_path if os.path.exists(speedscope_path) else None)
        if proc.returncode != 0 or not os.path.exists(speedscope_path):
            raise PySpyUnavailable(_fix_for(said))
        if not os.path.exists(doc_path):
            raise RunFailed(f"the profiled run wrote no result: {_last_lines(err or out)}")
        with open(doc_path) as f:
            return json.load(f), said


def engine_note(engine: str, native: bool) -> str:
    """What the table's names are, for this engine and sampling."""
    if engine == "compiled" and not native:
        return ("compiled engine without --native: its kernel functions are C functions, which py-spy samples only "
                "with --native; the stacks stop at _run_cpu")
    if engine == "compiled":
        return (f"compiled engine, py-spy --native: kernel functions by their source names; '{CYTHON_RUNTIME}' is "
                "Cython's call and error-check helpers and the PLT stubs into libpython; py-spy drops libpython's own "
                "C frames (object deallocation, dict and attribute look-ups), so their time is their caller's")
    return f"interpreted engine{', py-spy --native' if native else ''}: the .py sources, run by CPython"


def print_summary(prof: Profile, top: int, engine: str, native: bool) -> None:
    workers = ", ".join(f"pid {pid}: {n}" for pid, n in sorted(prof.worker_samples.items()))
    typer.echo(f"{prof.samples} samples from {len(prof.worker_samples)} CPU worker processes ({workers}); "
               f"{prof.other_samples} other samples (the coordinator) left out")
    typer.echo(engine_note(engine, native))
    if not prof.samples:
        typer.echo("no samples from the CPU workers: try a longer --duration or a higher --rate")
        return
    rows = prof.top(top)
    width = max(len(r["function"]) + 2 for r in rows)
    typer.echo(f"Top {len(rows)} functions by self samples in the CPU workers "
               f"(* named after a kernel function or strategy hook):")
    typer.echo(f"{'self%':>6} {'total%':>7}  {'function':<{width}}  file")
    for r in rows:
        name = r["function"] + (" *" if r["kernel"] else "")
        typer.echo(f"{100 * r['self_share']:6.1f} {100 * r['total_share']:7.1f}  {name:<{width}}  {r['file']}")


def profile_command(
    strategy: Strategy = typer.Option("refcount", help="How lazily used mms are kept alive."),
    cpus: int = typer.Option(2, min=1, max=MAX_CPUS, help="Emulated CPUs (one pinned process each)."),
    workload: Workload = typer.Option("lazy-roundtrip", help="What the tasks do."),
    duration: float = typer.Option(2.0, callback=check_duration, help="Seconds of measurement."),
    seed: int = typer.Option(1, min=0, help="Seed for the workload's choices."),
    engine: Engine = typer.Option(
        None, show_default=False,
        help="The engine to profile. [default: PERCPU_ENGINE's, else compiled]",
    ),
    native: bool = typer.Option(
        None, "--native/--no-native", show_default=False,
        help="Sample native frames too (py-spy --native): the compiled engine's kernel functions are C functions, "
             "seen only so; the interpreted engine's atomics. [default: on for the compiled engine]",
    ),
    fmt: Format = typer.Option(
        "flamegraph", "--format",
        help="flamegraph: an SVG flame graph and the speedscope JSON; speedscope: the JSON only.",
    ),
    rate: int = typer.Option(250, min=1, max=10000, help="Samples per second per process."),
    top: int = typer.Option(15, min=1, help="Functions to list."),
    out_dir: str = typer.Option(
        None, "--out-dir", show_default=False,
        help="Directory for the profile files. [default: a new profile-TIME, so that no earlier profile is overwritten]",
    ),
    py_spy: str = typer.Option(
        None, "--py-spy", envvar="PERCPU_PY_SPY",
        help="The py-spy executable (default: next to this Python, then on PATH).",
    ),
):
    """Profile one run with py-spy: write the profile and list where the CPU workers spend their samples."""
    out_dir = out_dir or f"profile-{time.strftime('%Y%m%d-%H%M%S')}"
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise typer.BadParameter(f"{out_dir} is not a directory", param_hint="--out-dir")
    engine_name = engine.value if engine else percpu.requested_engine()
    if engine_name not in percpu.ENGINES:
        raise typer.BadParameter(f"PERCPU_ENGINE={engine_name!r} is not an engine", param_hint="--engine")
    if native is None:
        native = engine_name == "compiled"
    try:
        exe = find_py_spy(py_spy)
    except PySpyUnavailable as exc:
        typer.echo(f"percpu: error: {exc}", err=True)
        raise typer.Exit(2)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise typer.BadParameter(f"cannot create {out_dir}: {exc.strerror}", param_hint="--out-dir") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"cannot write in {out_dir}", param_hint="--out-dir")

    stem = os.path.join(out_dir, f"{strategy.value}-{workload.value}-{cpus}cpu")
    json_path, svg_path = stem + ".json", stem + ".svg"
    run_args = ["--strategy", strategy.value, "--cpus", str(cpus), "--workload", workload.value,
                "--duration", repr(duration), "--seed", str(seed)]
    try:
        doc, said = record(exe, run_args, json_path, rate, native, engine_name)
    except PySpyUnavailable as exc:
        typer.echo(f"percpu: error: {exc}", err=True)
        raise typer.Exit(2)
    except RunFailed as exc:
        typer.echo(f"percpu: error: {exc}", err=True)
        raise typer.Exit(1)
    except Interrupted as exc:
        partial = f"; py-spy's samples so far are in {exc.args[0]}" if exc.args[0] else ""
        typer.echo(f"percpu: interrupted{partial}", err=True)
        raise typer.Exit(130)

    prof = parse_speedscope(json_path)
    if not prof.samples and _DENIED.search(said):  # attached to the coordinator but not to its workers
        typer.echo(f"percpu: error: {_fix_for(said)}", err=True)
        raise typer.Exit(2)
    written = [f"{json_path} (speedscope: open at https://www.speedscope.app)"]
    if fmt is Format.flamegraph:
        title = f"percpu profile: {strategy.value}, {workload.value}, {cpus} CPUs, {duration:g} s"
        subtitle = (f"{doc.get('engine', engine_name)} engine, py-spy --subprocesses at {rate} Hz"
                    f"{', --native' if native else ''}: the {prof.samples} samples "
                    f"of the {len(prof.worker_samples)} CPU workers, merged, from cpu_main up; "
                    "blue = kernel-named; hover for samples")
        try:
            write_text(svg_path, flamegraph_svg(prof.stacks, title, subtitle))
        except OutputError as exc:
            typer.echo(f"percpu: error: {exc}", err=True)
            raise typer.Exit(2)
        written.insert(0, f"{svg_path} (flame graph)")
    for line in written:
        typer.echo(f"wrote {line}")

    print_summary(prof, top, doc.get("engine", engine_name), native)
    typer.echo(verdict_line(doc))
    raise typer.Exit(0 if doc["verdict"] == "SUCCESS" else 1)
