"""`percpu`: the front door.

Bad input: one line on stderr, exit 2. A run: a Rich report (or `--json`, one
document on stdout), then a verdict line; exit 0 on SUCCESS, 1 on FAILURE,
130 on Ctrl-C.
"""
from __future__ import annotations

import json
import sys
from enum import Enum

import typer
from rich.console import Console

from percpu.strategies import STRATEGIES
from percpu.workloads import WORKLOADS
from percpu.workers.pool import MAX_CPUS, RunParams, run
from percpu.machine.segment import SharedMemoryUnavailable
from percpu.cli.render import render_run, trace_summary, verdict_line
from percpu.cli.output import OutputError, write_text
from percpu.cli.options import DEFAULT_FORK_RATE, fault_list, flush_option, kernel_model, kernel_option, same_file
from percpu.cli.options import switch_cost_option, workload_reads, writable_file
from percpu.cli.options import duration as check_duration, fork_rate as check_fork_rate, line_size as _line_size
from percpu.cli.bench import bench_command
from percpu.cli.sweep import sweep_command
from percpu.cli.compare import compare_command
from percpu.cli.torture import torture_command
from percpu.cli.clean import clean_command
from percpu.cli.profile import profile_command
from percpu.cli.explore import explore_command
from percpu.cli.litmus import litmus_command

Strategy = Enum("Strategy", {name: name for name in STRATEGIES}, type=str)
Workload = Enum("Workload", {name: name for name in WORKLOADS}, type=str)


class Layout(str, Enum):
    padded = "padded"
    packed = "packed"




app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Emulate Linux per-CPU lazy-TLB mm state and compare the schemes that keep a lazily used mm alive.",
)


@app.command("run")
def run_command(
    strategy: Strategy = typer.Option("refcount", help="How lazily used mms are kept alive."),
    cpus: int = typer.Option(2, min=1, max=MAX_CPUS, help="Emulated CPUs (one pinned process each)."),
    workload: Workload = typer.Option("lazy-roundtrip", help="What the tasks do."),
    duration: float = typer.Option(2.0, callback=check_duration, help="Seconds of measurement (at most a day)."),
    seed: int = typer.Option(1, min=0, help="Seed for the workload's choices."),
    kernel: str = kernel_option(),
    flush: str = flush_option(),
    tasks_per_cpu: int = typer.Option(1, min=1, max=16, help="context-switch workloads: tasks per CPU."),
    fork_rate: float = typer.Option(
        DEFAULT_FORK_RATE, callback=check_fork_rate, help="fork-exit: processes forked per second per CPU."
    ),
    switch_cost_ns: int = switch_cost_option(),
    line_size: int = typer.Option(128, callback=_line_size, help="Bytes per padded cache line (64 to 4096)."),
    layout: Layout = typer.Option("padded", help="padded: records on their own lines; packed: false sharing."),
    faults: str = typer.Option(
        "none", callback=fault_list, help="Faults to inject: all, none, or a list of ipi-delay,stall,hotplug."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result document as JSON on stdout."),
    out: str = typer.Option(None, callback=writable_file, help="Also write the result document to this file."),
    trace: str = typer.Option(
        None, callback=writable_file, help="Write a Chrome/Perfetto trace (one track per CPU) to this JSON file."
    ),
):
    """Run one emulation and print its result and verdict."""
    workload_reads(workload.value, [tasks_per_cpu], fork_rate)
    if out and trace and same_file(out, trace):
        raise typer.BadParameter(f"--out and --trace both name {out}: one would overwrite the other",
                                 param_hint="'--trace'")
    params = RunParams(
        strategy=strategy.value,
        workload=workload.value,
        cpus=cpus,
        duration=duration,
        seed=seed,
        kernel=kernel,
        flush=flush,
        tasks_per_cpu=tasks_per_cpu,
        fork_rate=fork_rate,
        switch_cost_ns=switch_cost_ns,
        line_size=line_size,
        layout=layout.value,
        faults=faults,
        trace=trace is not None,
    )
    kernel_model(kernel, flush)
    err = Console(stderr=True)
    try:
        doc = run(params, on_startup=_report_startup)
    except SharedMemoryUnavailable as exc:
        err.print(f"percpu: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        err.print("percpu: interrupted; workers stopped, shared memory removed", markup=False, highlight=False)
        raise typer.Exit(130)
    try:
        if trace:
            chrome = doc.pop("trace")
            size = write_text(trace, json.dumps(chrome))
            err.print(trace_summary(trace, size, chrome), markup=False, highlight=False, soft_wrap=True)
        if out:
            write_text(out, json.dumps(doc, indent=2))
    except OutputError as exc:
        err.print(f"percpu: error: {exc} (the run's verdict was {doc['verdict']})",
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if json_output:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        err.print(verdict_line(doc), markup=False, highlight=False, soft_wrap=True)
    else:
        console = Console()
        render_run(console, doc)
        console.print(verdict_line(doc), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(0 if doc["verdict"] == "SUCCESS" else 1)


def _report_startup(forked: int, ready: int, total: int, elapsed_s: float, done: bool) -> None:
    """Start-up progress on stderr (only when start-up takes over a second)."""
    if done:
        line = f"percpu: {total} CPUs started in {elapsed_s:.1f} s"
    else:
        line = f"percpu: starting {total} CPUs: {forked} forked, {ready} booted ({elapsed_s:.1f} s)"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@app.callback()
def _root():
    """percpu: per-CPU lazy-TLB emulator."""


app.command("sweep")(sweep_command)
app.command("compare")(compare_command)
app.command("bench")(bench_command)
app.command("torture")(torture_command)
app.command("clean")(clean_command)
app.command("profile")(profile_command)
app.command("explore")(explore_command)
app.command("litmus")(litmus_command)


def main() -> None:
    """Console entry point: every usage error is one line and exit 2."""
    try:
        code = app(standalone_mode=False)
    except Exception as exc:
        # click's UsageError (typer may vendor click, so match its shape)
        if getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message"):
            message = " ".join(exc.format_message().split())
            if not message:  # no command given: the help above says it all
                sys.exit(2)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None and ctx.command_path else ""
            sys.stderr.write(f"percpu: error: {message}{hint}\n")
            sys.exit(2)
        if type(exc).__name__ == "Abort":
            sys.stderr.write("percpu: interrupted\n")
            sys.exit(130)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
