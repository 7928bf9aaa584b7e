"""`percpu sweep`: run strategies x CPU counts x tasks per CPU, K times each,
interleaved, and answer "how does each scheme scale, and where does
refcount's contention start to hurt?" with the speedup table, a summary
(CSV, JSON), plots, and every run's own JSON.

Output directory:
    runs/<workload>-<strategy>-cpus<N>-tpc<T>-r<K>.json   every run (percpu.run/1)
    summary.json (percpu.sweep/1), summary.csv, table.md
    throughput.png/.svg, speedup.png/.svg
"""
from __future__ import annotations

import csv
import datetime
import io
import json
import os
import shlex
import sys
import time

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from percpu.cli.options import duration as check_duration, flush_option, kernel_model, kernel_option, parse_counts
from percpu.cli.options import switch_cost_option, workload_reads
from percpu.cli.output import OutputError, write_text
from percpu.cli.scaling import (
    BASELINE,
    SWEEP_SCHEMA,
    UNSTABLE_SPREAD,
    describe_machine,
    markdown_table,
    output_console,
    speedup_table,
    summarize_runs,
    table_groups,
    warnings_for,
)
from percpu.machine.segment import SharedMemoryUnavailable
from percpu.strategies import SAFE_STRATEGIES, STRATEGIES
from percpu.workers.pool import MAX_CPUS, RunParams, run
from percpu.workloads import WORKLOADS

MAX_TASKS_PER_CPU = 16  # as `percpu run --tasks-per-cpu`

CSV_FIELDS = (
    "workload", "tasks_per_cpu", "cpus", "strategy", "repeats", "failed",
    "ops_per_s_median", "ops_per_s_min", "ops_per_s_max", "spread_pct",
    "speedup_pct_median", "speedup_pct_min", "speedup_pct_max", "oversubscribed", "unstable",
)


def _cpu_counts(text: str) -> list[int]:
    return parse_counts(text, "CPU count", MAX_CPUS)


def _tasks_per_cpu(text: str) -> list[int]:
    return parse_counts(text, "tasks-per-CPU count", MAX_TASKS_PER_CPU)


def _strategies(text: str) -> list[str]:
    """'all' (the safe ones) or a comma list; refcount, the baseline of every
    speedup, is always run and comes first."""
    if text.strip() == "all":
        chosen = list(SAFE_STRATEGIES)
    else:
        chosen = [s.strip() for s in text.split(",") if s.strip()]
        unknown = [s for s in chosen if s not in STRATEGIES]
        if unknown or not chosen:
            raise typer.BadParameter(
                f"unknown strategy {', '.join(map(repr, unknown)) or repr(text)}; "
                f"choose 'all' or from: {', '.join(STRATEGIES)}"
            )
    return [BASELINE] + [s for s in STRATEGIES if s in chosen and s != BASELINE]


def _workload(text: str) -> str:
    if text not in WORKLOADS:
        raise typer.BadParameter(f"unknown workload {text!r}; choose from: {', '.join(WORKLOADS)}")
    return text


def _prepare_out(out: str | None, workload: str) -> str:
    """A new or empty directory we can write, with runs/ in it: checked
    before the first run, not after the last."""
    out = out or f"sweep-{workload}-{time.strftime('%Y%m%d-%H%M%S')}"
    if os.path.exists(out) and not os.path.isdir(out):
        raise typer.BadParameter(f"{out} exists and is not a directory", param_hint="'--out'")
    if os.path.isdir(out) and os.listdir(out):
        raise typer.BadParameter(f"{out} is not empty (a sweep writes a fresh directory)", param_hint="'--out'")
    try:
        os.makedirs(os.path.join(out, "runs"))
        probe = os.path.join(out, ".writable")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {out}: {exc.strerror}", param_hint="'--out'") from None
    return out


def sweep_command(
    strategies: str = typer.Option("all", help="'all' (every safe strategy) or a comma list; refcount always runs."),
    cpus: str = typer.Option(..., help="CPU counts: a list (1,2,4,8,16) or a range (1-16), or both."),
    workload: str = typer.Option("context-switch-threads", help=f"One of: {', '.join(WORKLOADS)}."),
    tasks_per_cpu: str = typer.Option("1", help="Tasks per CPU, a list: 2 models two pairs per core."),
    repeat: int = typer.Option(3, min=1, help="Runs of each cell, interleaved; medians and spreads over them."),
    duration: float = typer.Option(2.0, callback=check_duration, help="Seconds of measurement per run."),
    switch_cost_ns: int = switch_cost_option(),
    kernel: str = kernel_option(),
    flush: str = flush_option(),
    out: str = typer.Option(None, help="Directory for runs and summary (new or empty). [default: sweep-W-TIME]"),
):
    """Scaling curves: the speedup of each strategy over refcount per CPU count, with plots."""
    strategy_list = _call(_strategies, strategies, "--strategies")
    cpu_list = _call(_cpu_counts, cpus, "--cpus")
    tasks_list = _call(_tasks_per_cpu, tasks_per_cpu, "--tasks-per-cpu")
    workload = _call(_workload, workload, "--workload")
    kernel_model(kernel, flush)
    model = {"switch_cost_ns": switch_cost_ns, "kernel": kernel, "flush": flush}  # every run's kernel model
    workload_reads(workload, tasks_list)
    out_dir = _prepare_out(out, workload)
    err = Console(stderr=True)

    # Repeat outermost: repeat i of every cell runs close in time to the
    # others', so the paired speedups see the same machine state. The
    # strategies' order rotates each repeat, so that none always runs first.
    matrix = [
        (r, t, c, s)
        for r in range(repeat) for t in tasks_list for c in cpu_list
        for s in strategy_list[r % len(strategy_list):] + strategy_list[:r % len(strategy_list)]
    ]
    started = _now()
    load_start = os.getloadavg()
    try:
        docs, files = _run_matrix(matrix, workload, duration, model, repeat, out_dir, err)
    except SharedMemoryUnavailable as exc:
        err.print(f"percpu: error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2)
    except _Interrupted as exc:
        err.print(f"percpu: interrupted; the {exc.finished} finished runs are in {out_dir}/runs, no summary written",
                  markup=False, highlight=False)
        raise typer.Exit(130)
    except _WriteFailed as exc:
        err.print(f"percpu: error: {exc.cause}; the {exc.finished} runs before it are in {out_dir}/runs, "
                  f"no summary written", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)

    cells = summarize_runs(docs)
    machine = {k: v for k, v in docs[0]["machine"].items() if k not in ("pinning", "oversubscription", "oversubscribed")}
    machine.update(usable_core_count=len(machine["usable_cores"]), loadavg_start=load_start,
                   loadavg_end=os.getloadavg())
    warnings = warnings_for(cells, machine["usable_core_count"])
    summary = {
        "schema": SWEEP_SCHEMA,
        "command": shlex.join(["percpu", *sys.argv[1:]]),
        "started": started,
        "finished": _now(),
        "parameters": {"strategies": strategy_list, "cpus": cpu_list, "workload": workload,
                       "tasks_per_cpu": tasks_list, "repeat": repeat, "duration": duration,
                       **model},
        "machine": machine,
        "op": docs[0]["op"],
        "definitions": {
            "ops_per_s": "rate.total_ops_per_s of each repeat; median, min, max over repeats",
            "spread_pct": "(max - min) / median of ops_per_s, in percent",
            "speedup_pct": f"per repeat i: 100 * (ops(S, i) / ops({BASELINE}, i) - 1); median, min, max",
            "unstable": f"spread_pct over {100 * UNSTABLE_SPREAD:g}%",
        },
        "cells": cells,
        "warnings": warnings,
        "runs": files,
    }
    try:
        _write_summary(out_dir, summary)
        from percpu.cli.plots import write_plots  # matplotlib only when there is something to draw

        plots = write_plots(cells, machine, summary["op"], out_dir)
    except OutputError as exc:
        err.print(f"percpu: error: {exc}; the {len(files)} runs are in {out_dir}/runs",
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)

    out_console = output_console()
    for workload_name, tasks in table_groups(cells):
        _print_table(out_console, cells, workload_name, tasks, repeat, machine, switch_cost_ns)
    for line in warnings:
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    out_console.print(f"wrote {out_dir}: {len(files)} runs in runs/, summary.json, summary.csv, table.md, "
                      + ", ".join(os.path.basename(p) for p in plots), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1 if any(c["failed"] for c in cells) else 0)


class _Interrupted(Exception):
    def __init__(self, finished: int):
        self.finished = finished


class _WriteFailed(Exception):
    def __init__(self, finished: int, cause: OutputError):
        self.finished, self.cause = finished, cause


def _run_matrix(matrix, workload: str, duration: float, model: dict, repeat: int, out_dir: str,
                err: Console):
    """Run every (repeat, tasks per CPU, CPUs, strategy) in order with a
    progress bar, writing each run's JSON as soon as it ends; returns the
    documents and their file names."""
    docs, files = [], []
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[live]}"),
        console=err,
        # No refresh thread and no proxies on stdout/stderr: run() forks the
        # CPU workers, which must not inherit a lock held by another thread.
        auto_refresh=False, redirect_stdout=False, redirect_stderr=False,
    )
    bar = progress.add_task("sweep", total=len(matrix), live="")

    def show_live_rate(samples):
        progress.update(bar, live=f"{sum(samples[-1]):,.0f} ops/s")
        progress.refresh()

    try:
        with progress:
            for rep, tasks, cpus, strategy in matrix:
                progress.update(bar, live="",
                                description=f"{strategy} cpus={cpus} tasks/cpu={tasks} repeat {rep + 1}/{repeat}")
                progress.refresh()
                params = RunParams(strategy=strategy, workload=workload, cpus=cpus, duration=duration,
                                   tasks_per_cpu=tasks, **model)
                doc = run(params, progress=show_live_rate)
                name = os.path.join("runs", f"{workload}-{strategy}-cpus{cpus}-tpc{tasks}-r{rep + 1}.json")
                try:
                    write_text(os.path.join(out_dir, name), json.dumps(doc, indent=1))
                except OutputError as exc:
                    raise _WriteFailed(len(docs), exc) from None
                docs.append(doc)
                files.append(name)
                progress.advance(bar)
                progress.refresh()
    except KeyboardInterrupt:
        raise _Interrupted(len(docs)) from None
    return docs, files


def _call(parse, value, option: str):
    """Run a parser, naming the option in its error (like a Typer callback,
    but after every option is known)."""
    try:
        return parse(value)
    except typer.BadParameter as exc:
        raise typer.BadParameter(exc.message, param_hint=f"'{option}'") from None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write_summary(out_dir: str, summary: dict) -> None:
    cells = summary["cells"]
    write_text(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=1))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(cells)
    write_text(os.path.join(out_dir, "summary.csv"), table.getvalue())
    parts = [f"Machine: {describe_machine(summary['machine'])}\n\n`{summary['command']}`\n"]
    for workload, tasks in table_groups(cells):
        header, rows = speedup_table(cells, workload, tasks)
        parts.append(f"\n{workload}, {tasks} task(s) per CPU: speedup over {BASELINE}\n\n"
                     + markdown_table(header, rows))
    write_text(os.path.join(out_dir, "table.md"), "".join(parts))


def _print_table(console: Console, cells, workload: str, tasks: int, repeat: int, machine: dict,
                 switch_cost_ns: int) -> None:
    header, rows = speedup_table(cells, workload, tasks)
    cost = f", switch cost {switch_cost_ns} ns" if switch_cost_ns else ""
    console.print(f"Speedup over {BASELINE}: {workload}, {tasks} task{'s' if tasks > 1 else ''} per CPU{cost} "
                  f"(median of {repeat} repeat{'s' if repeat > 1 else ''} ± half the range)",
                  style="bold", markup=False, highlight=False, soft_wrap=True)
    table = Table()
    for name in header:
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"{describe_machine(machine)}; ! = spread over {100 * UNSTABLE_SPREAD:g}% of the median",
                  markup=False, highlight=False, soft_wrap=True)
