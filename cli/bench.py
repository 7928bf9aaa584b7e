"""`percpu bench`: the emulator's lazy round trip against a native C
reference doing only its shared-memory operations, side by side (percpu.bench.roundtrip), with the
overhead, contention visibility, packed-layout cost and whether each
fidelity target is met.

Exit status: 0 when measured (whether or not the bars are met), 1 when a
measurement failed, 2 on bad input or when the native reference cannot be
built, 130 on Ctrl-C.
"""
from __future__ import annotations

import json
import os
import shlex
import sys

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from percpu.bench.roundtrip import KINDS, LAYOUTS, SIGNIFICANCE, STRATEGIES, BenchError, NativeUnavailable, measure
from percpu.cli.options import duration as check_duration, line_size as check_line_size, writable_file
from percpu.cli.options import parse_counts
from percpu.cli.output import OutputError, write_text
from percpu.machine.segment import SharedMemoryUnavailable


def default_cpu_counts(cores: int) -> list[int]:
    """1, 2, 4, ... below the usable cores, and the usable cores."""
    counts, n = [], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return counts + [cores]


def _cpu_counts(text: str | None) -> list[int]:
    cores = len(os.sched_getaffinity(0))
    if text is None:
        return default_cpu_counts(cores)
    # more CPUs than cores would time-share a core: its ns are not a round trip's
    return parse_counts(text, "CPU count", cores)


def _strategies(text: str) -> list[str]:
    if text.strip() == "all":
        return list(STRATEGIES)
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown or not chosen:
        raise typer.BadParameter(f"unknown strategy {', '.join(map(repr, unknown)) or repr(text)}; "
                                 f"choose 'all' or from: {', '.join(STRATEGIES)}")
    return [s for s in STRATEGIES if s in chosen]


def _layouts(text: str) -> list[str]:
    if text == "both":
        return list(LAYOUTS)
    if text not in LAYOUTS:
        raise typer.BadParameter(f"{text!r} is not one of: padded, packed, both")
    return [text]


def bench_command(
    cpus: str = typer.Option(
        None, callback=_cpu_counts, show_default=False,
        help="CPU counts, e.g. 1,2 or 1-4, at most the usable cores. [default: 1, 2, 4, ... and the usable cores]"),
    strategies: str = typer.Option("all", callback=_strategies, help="'all' (every safe strategy) or a comma list."),
    layout: str = typer.Option(
        "padded", callback=_layouts,
        help="padded: per-CPU records on their own lines; packed: end to end (false sharing); both: side by side."),
    line_size: int = typer.Option(128, callback=check_line_size, help="Bytes per padded cache line."),
    duration: float = typer.Option(1.0, callback=check_duration, help="Seconds per measurement."),
    repeat: int = typer.Option(5, min=1, help="Measurements of each cell, interleaved; medians over them."),
    out: str = typer.Option(None, callback=writable_file, help="Write the result document (JSON) here."),
):
    """ns per lazy round trip: the emulator and native C, side by side."""
    err = Console(stderr=True)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("bench", total=None)

            def progress(done, total, label):
                bar.update(task, completed=done, total=total, description=label)

            doc = measure(strategies, cpus, layout, duration, repeat, line_size, progress)
    except NativeUnavailable as exc:
        err.print(f"percpu: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    except SharedMemoryUnavailable as exc:
        err.print(f"percpu: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    except BenchError as exc:
        err.print(f"percpu: bench failed: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        err.print("percpu: interrupted", markup=False, highlight=False)
        raise typer.Exit(130)
    doc["command"] = shlex.join(["percpu", *sys.argv[1:]])
    console = Console()
    render_bench(console, doc)
    if out:
        try:
            write_text(out, json.dumps(doc, indent=1) + "\n")
        except OutputError as exc:
            err.print(f"percpu: error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        console.print(f"wrote {out}", markup=False, highlight=False, soft_wrap=True)


def render_bench(console: Console, doc: dict) -> None:
    p, m = doc["parameters"], doc["machine"]
    console.print(f"{m['cpu_model'] or 'unknown CPU'}, {len(m['usable_cores'])} usable cores, Linux {m['kernel']}, "
                  f"Python {m['python']}, {m['compiler'] or 'unknown compiler'}, {doc['engine']} engine; load average "
                  f"{m['load_average_before'][0]:.1f} -> {m['load_average_after'][0]:.1f}; median of {p['repeat']} "
                  f"interleaved measurements of {p['duration_s']:g} s, line size {p['line_size']}",
                  markup=False, highlight=False, soft_wrap=True)
    for layout in p["layouts"]:
        table = Table(title=f"ns per lazy round trip ({layout})", title_justify="left")
        for col in ("CPUs", "strategy", *KINDS, "emulator / native"):
            table.add_column(col, justify="left" if col == "strategy" else "right")
        for r in doc["rows"]:
            if r["layout"] == layout:
                table.add_row(str(r["cpus"]), r["strategy"], *(_ns(r[f"{k}_ns"]) for k in KINDS), f"{r['overhead']:.2f}x")
        console.print(table)
    if doc["visibility"]:
        table = Table(title="Contention visibility: refcount's slowdown / tlbstate's slowdown, from "
                            f"{doc['visibility'][0]['from_cpus']} CPU", title_justify="left")
        for col in ("layout", "CPUs", *KINDS):
            table.add_column(col, justify="right")
        for v in doc["visibility"]:
            table.add_row(v["layout"], str(v["cpus"]), *(
                f"{v[k]['visibility']:.2f} ({v[k]['refcount_slowdown']:.2f} / {v[k]['tlbstate_slowdown']:.2f})"
                for k in KINDS))
        console.print(table)
    if doc["packed_cost"]:
        table = Table(title="False sharing: packed / padded round trip "
                            f"(* measurable: packed slower, one-sided Mann-Whitney p < {SIGNIFICANCE:g})",
                      title_justify="left")
        for col in ("CPUs", "strategy", *KINDS):
            table.add_column(col, justify="left" if col == "strategy" else "right")
        for c in doc["packed_cost"]:
            table.add_row(str(c["cpus"]), c["strategy"], *(
                f"{c[k]['packed_over_padded']:.2f}x{'*' if c[k]['measurable'] else ' '}" for k in KINDS))
        console.print(table)
    for bar in doc["bars"].values():
        verdict = {True: "MET", False: "NOT MET", None: "not measured by this run"}[bar["met"]]
        console.print(f"target: {bar['bar']}: {verdict}{_bar_figures(bar)}", markup=False, highlight=False, soft_wrap=True)


def _ns(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _bar_figures(bar: dict) -> str:
    if bar["met"] is None:
        return ""
    if "overhead" in bar:
        return " (" + ", ".join(f"{s} {x:.2f}x" for s, x in bar["overhead"].items()) + ")"
    if "ratio" in bar:
        return f" (emulator {bar['emulator']:.2f}, native {bar['native']:.2f}; emulator / native {bar['ratio']:.2f})"
    return " (" + "; ".join(
        f"{cpus} CPUs: " + ", ".join(f"{k} {v[k]['packed_over_padded']:.2f}x" for k in KINDS)
        for cpus, v in bar["by_cpus"].items()) + ")"
