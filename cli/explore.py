"""`percpu explore`: every interleaving of a small scenario, up to a bound
(percpu/explore/), the shortest violating schedule found as a per-CPU step
listing, and `--replay FILE` to reproduce one."""
from __future__ import annotations

import json
import os
import sys

import typer

from percpu.cli.options import flush_option, kernel_model, kernel_option, writable_file
from percpu.explore.scenarios import SCENARIOS, strategy_names
from percpu.explore.schedule import address_names, listing, load_schedule, schedule_document
from percpu.explore.search import Config, explore, explore_random, make_state, replay as replay_schedule


def _strategy(value: str | None) -> str | None:
    if value is not None and value not in strategy_names():
        raise typer.BadParameter(f"unknown strategy {value!r}: use one of {', '.join(strategy_names())}")
    return value


def _scenario(value: str | None) -> str | None:
    if value is not None and value not in SCENARIOS:
        raise typer.BadParameter(f"unknown scenario {value!r}: use one of {', '.join(SCENARIOS)}")
    return value


def _applies(scenario: str, strategy: str) -> None:
    if not SCENARIOS[scenario].applies_to(strategy):
        raise typer.BadParameter(f"scenario {scenario!r} is written for the hazard strategies, not {strategy!r}")


def _readable(value: str | None) -> str | None:
    if value is not None and not os.path.isfile(value):
        raise typer.BadParameter(f"no such file: {value}")
    return value


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _print_violation(result, cfg, names) -> None:
    v = result.violations[0]
    what = v.get("message") or f"{v.get('site')} (CPU {v.get('cpu')}, mm slot {v.get('mm_slot')})"
    _say(f"VIOLATION {v['kind']}: {what}")
    _say(f"schedule: {len(result.steps)} steps, {result.preemptions} preemptions, "
         f"{len(result.choices)} decisions ('>>': the schedule switches CPU)")
    for line in listing(result, cfg.cpus, names):
        _say(line)


def explore_command(
    strategy: str = typer.Option(None, callback=_strategy, help="Strategy to explore (see percpu run)."),
    cpus: int = typer.Option(2, min=2, max=4, help="Emulated CPUs (threads, one running at a time)."),
    scenario: str = typer.Option(None, callback=_scenario,
                                 help="exit-race, fork-exit, double-teardown, munmap-race, or hazptr-try-protect "
                                      "(hazard strategies: a --tso demonstration)."),
    bound: int = typer.Option(2, min=0, max=10, help="Preemption bound for the exhaustive search."),
    max_schedules: int = typer.Option(20000, min=1, help="Stop after this many schedules."),
    seed: int = typer.Option(None, min=0, help="Random schedules (seeded) instead of the exhaustive search."),
    tso: bool = typer.Option(False, "--tso", help="x86-TSO store buffers: stores become visible later."),
    kernel: str = kernel_option(),
    flush: str = flush_option(),
    drop_barrier: str = typer.Option("", "--drop-barrier", metavar="FUNCTION",
                                     help="Remove the smp_mb() calls made by this kernel function "
                                          "(e.g. switch_mm_irqs_off, mmgrab_lazy_tlb): is that barrier needed?"),
    out: str = typer.Option(None, callback=writable_file,
                            help="Where to write a violating schedule (default explore-<strategy>-<scenario>-cpus<N>.json)."),
    replay: str = typer.Option(None, callback=_readable, help="Replay a schedule file written by explore."),
):
    """Explore every interleaving of a small scenario (up to a preemption
    bound) for a violation; print the shortest violating schedule found."""
    if replay is not None:
        try:
            cfg, doc = load_schedule(replay)
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {replay}: {exc}") from None
        _strategy(cfg.strategy)
        _scenario(cfg.scenario)
        _applies(cfg.scenario, cfg.strategy)
        result = replay_schedule(cfg, doc["choices"])
        names = _names(cfg)
        _say(f"replay {replay}: {_describe(cfg)}")
        if result.outcome != "violation":
            _say(f"no violation: the schedule ran {len(result.steps)} steps cleanly")
            raise typer.Exit(0)
        _print_violation(result, cfg, names)
        same = [v["kind"] for v in result.violations[:1]] == [v["kind"] for v in doc["violations"][:1]]
        _say("reproduced" if same else f"DIFFERENT from the file's {doc['violations'][:1]}")
        raise typer.Exit(1)

    if strategy is None or scenario is None:
        raise typer.BadParameter("--strategy and --scenario are required (or --replay FILE)")
    _applies(scenario, strategy)
    kernel_model(kernel, flush)
    cfg = Config(strategy, scenario, cpus, tso=tso, kernel=kernel, flush=flush, drop_barrier=drop_barrier)
    if seed is None:
        report = explore(cfg, bound=bound, max_schedules=max_schedules)
        how = (f"exhaustive up to {report.bound} preemption{'s' * (report.bound != 1)}"
               + ("" if report.exhausted else f" (NOT exhausted: stopped at --max-schedules {max_schedules})"))
    else:
        report = explore_random(cfg, max_schedules, seed=seed)
        how = f"{max_schedules} random schedules, seed {seed}"
    if drop_barrier and not report.barriers_dropped:
        raise typer.BadParameter(f"no smp_mb() called by {drop_barrier!r} ran in scenario {scenario!r}",
                                 param_hint="'--drop-barrier'")
    _say(f"explored {_describe(cfg)}: {how}")
    _say(f"schedules: {report.schedules} ({report.complete} run to the end, {report.pruned} cut at a known state); "
         f"distinct states: {report.states}; time: {report.seconds:.1f} s; "
         f"violating schedules: {report.violating_schedules}")
    if report.best is None:
        _say("SAFE: no violation" + ("" if report.exhausted or seed is not None else " in the schedules explored"))
        raise typer.Exit(0)
    names = _names(cfg)
    _print_violation(report.best, cfg, names)
    path = out or (f"explore-{strategy}-{scenario}-cpus{cpus}{'-tso' if tso else ''}"
                   f"{'-no-mb-' + drop_barrier if drop_barrier else ''}.json")
    with open(path, "w") as f:
        json.dump(schedule_document(report.best, cfg, report), f, indent=1)
        f.write("\n")
    _say(f"schedule written to {path}; reproduce it with: percpu explore --replay {path}")
    raise typer.Exit(1)


def _describe(cfg) -> str:
    dropped = f" drop-barrier={cfg.drop_barrier}" if cfg.drop_barrier else ""
    return (f"strategy={cfg.strategy} scenario={cfg.scenario} cpus={cfg.cpus} kernel={cfg.kernel} flush={cfg.flush} "
            f"tso={cfg.tso}{dropped}")


def _names(cfg):
    state = make_state(cfg)
    try:
        return address_names(state)
    finally:
        state.close()
