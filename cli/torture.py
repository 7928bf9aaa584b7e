"""`percpu torture`: long seeded runs with faults; a stats line per round
(every few seconds) and a final verdict echoing every parameter."""
from __future__ import annotations

import json
import os

import typer

from percpu.cli.options import duration as check_duration, fault_list, writable_file
from percpu.cli.output import OutputError, write_text
from percpu.machine.segment import SharedMemoryUnavailable
from percpu.strategies import SAFE_STRATEGIES, STRATEGIES
from percpu.workers.pool import MAX_CPUS
from percpu.workers.torture import TortureParams, torture


def _strategies(value: str) -> tuple[str, ...]:
    if value == "all":
        return SAFE_STRATEGIES
    if value not in STRATEGIES:
        raise typer.BadParameter(f"unknown strategy {value!r}: use all or one of {', '.join(STRATEGIES)}")
    return (value,)


def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _stats_line(summary: dict, doc: dict) -> str:
    t, p = summary["totals"], doc["parameters"]
    return (
        f"[{summary['elapsed_s']:7.1f}s] round {summary['rounds']:>4} {p['strategy']:>9} {p['workload']:<24} "
        f"{p['kernel']:<4} {p['flush']:<9} {doc['verdict']:<7} | switches {_count(t['switches'])} (lazy {_count(t['lazy_switches'])}) "
        f"teardowns {_count(t['teardowns'])} IPIs {_count(t['ipis_sent'])} violations {t['violations_found']} | "
        f"hotplugs {t['hotplugs']} stalls {t['stalls']} delayed IPIs {t['ipis_delayed']} | "
        f"per-CPU ops/s min {_count(doc['rate']['min_cpu_ops_per_s'])} max {_count(doc['rate']['max_cpu_ops_per_s'])}"
    )


def torture_command(
    strategy: str = typer.Option("all", callback=_strategies, help="A strategy, or all the safe ones."),
    duration: float = typer.Option(60.0, callback=check_duration, help="Seconds in all."),
    cpus: int = typer.Option(0, min=0, max=MAX_CPUS, help="Emulated CPUs (0: one per usable core)."),
    seed: int = typer.Option(1, min=0, help="Seed for the rounds' choices and the fault schedules."),
    faults: str = typer.Option("all", callback=fault_list, help="all, none, or a list of ipi-delay,stall,hotplug."),
    round_s: float = typer.Option(3.0, "--round", callback=check_duration, help="Seconds per round."),
    kill_after: float = typer.Option(
        0.0, min=0.0, help="Kill one worker outright after this many seconds (the run must then FAIL promptly)."
    ),
    out: str = typer.Option(None, callback=writable_file, help="Write the summary as JSON here."),
):
    """Rounds of random workloads with faults until the time is up or a round fails."""
    if not kill_after < duration:  # nan included
        raise typer.BadParameter(f"{kill_after:g} s is not before the end of the torture (--duration {duration:g}): "
                                 f"no worker would be killed", param_hint="'--kill-after'")
    cpus = cpus or len(os.sched_getaffinity(0))
    params = TortureParams(strategies=strategy, duration=duration, cpus=cpus, seed=seed, faults=faults,
                           round_s=round_s, kill_after_s=kill_after)
    try:
        summary = torture(params, on_round=lambda s, d: typer.echo(_stats_line(s, d)))
    except SharedMemoryUnavailable as exc:
        typer.echo(f"percpu: error: {exc}", err=True)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        typer.echo("percpu: interrupted; workers stopped, shared memory removed", err=True)
        raise typer.Exit(130)
    shown = "all" if strategy == SAFE_STRATEGIES and len(strategy) > 1 else ",".join(strategy)
    line = (f"{summary['verdict']}: torture strategy={shown} duration={duration:g} cpus={cpus} seed={seed} "
            f"faults={','.join(faults) or 'none'} round={round_s:g} kill_after={kill_after:g} "
            f"rounds={summary['rounds']}")
    if summary["failure_reasons"]:
        line += f" -- round {summary['failed_round']}: " + "; ".join(summary["failure_reasons"])
    if out:
        try:
            write_text(out, json.dumps({**summary, "parameters": vars(params)}, indent=2, default=list))
        except OutputError as exc:
            typer.echo(f"percpu: error: {exc} (the torture's verdict was {summary['verdict']})", err=True)
            raise typer.Exit(2)
    typer.echo(line)
    raise typer.Exit(0 if summary["verdict"] == "SUCCESS" else 1)
