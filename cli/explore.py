"""`percpu explore`: every interleaving of a small scenario, up to a bound or
with none (percpu/explore/), the shortest violating schedule found as a
per-CPU step listing, and `--replay FILE` to reproduce one."""
from __future__ import annotations

import json
import os
import sys
import tempfile

import typer

from percpu.cli.options import flush_option, kernel_model, kernel_option, writable_file
from percpu.explore.machine import ReplayDiverged
from percpu.explore.scenarios import SCENARIOS, strategy_names
from percpu.explore.schedule import ScheduleError, address_names, listing, load_schedule, schedule_document
from percpu.explore.search import Config, Report, explore, explore_random, make_state, replay as replay_schedule

# with --replay the file says everything but the strategy (which may be changed)
REPLAY_FIXES = ("scenario", "cpus", "bound", "unbounded", "reduction", "max_schedules", "seed", "tso", "kernel", "flush",
                "drop_barrier", "out")


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


def _fail(message: str, code: int = 2):
    sys.stderr.write(f"percpu: error: {message}\n")
    raise typer.Exit(code)


def _print_violation(result, cfg, names) -> None:
    v = result.violations[0]
    what = v.get("message") or f"{v.get('site')} (CPU {v.get('cpu')}, mm slot {v.get('mm_slot')})"
    _say(f"VIOLATION {v['kind']}: {what}")
    _say(f"schedule: {len(result.steps)} steps, {result.preemptions} preemptions, "
         f"{len(result.choices)} decisions ('>>': the schedule switches CPU)")
    for line in listing(result, cfg.cpus, names):
        _say(line)


def explore_command(
    ctx: typer.Context,
    strategy: str = typer.Option(None, callback=_strategy, help="Strategy to explore (see percpu run); with "
                                 "--replay, replay the file's schedule under this strategy instead of its own."),
    cpus: int = typer.Option(2, min=2, max=4, help="Emulated CPUs (threads, one running at a time)."),
    scenario: str = typer.Option(None, callback=_scenario,
                                 help="exit-race, fork-exit, double-teardown, munmap-race, hotplug (a CPU goes down: "
                                      "finish_cpu), or hazptr-try-protect (hazard strategies: a --tso demonstration)."),
    bound: int = typer.Option(2, min=0, max=10, help="Preemption bound for the exhaustive search."),
    unbounded: bool = typer.Option(False, "--unbounded", help="No preemption bound: every schedule, one per class "
                                   "of equivalent interleavings (sleep sets)."),
    reduction: bool = typer.Option(True, "--reduction/--no-reduction",
                                   help="With --unbounded: the sleep-set reduction (off: every interleaving)."),
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
    bound, or all with --unbounded) for a violation; print the shortest
    violating schedule found."""
    if replay is not None:
        given = [name for name in REPLAY_FIXES
                 if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"]
        if given:
            _fail(f"--replay takes {', '.join('--' + g.replace('_', '-') for g in given)} from its file "
                  f"(only --strategy may change)")
        _replay(replay, strategy)
    if strategy is None or scenario is None:
        raise typer.BadParameter("--strategy and --scenario are required (or --replay FILE)")
    _applies(scenario, strategy)
    kernel_model(kernel, flush)
    cfg = Config(strategy, scenario, cpus, tso=tso, kernel=kernel, flush=flush, drop_barrier=drop_barrier)
    report = _search(cfg, None if unbounded else bound, reduction and unbounded, max_schedules, seed)
    if drop_barrier and not report.barriers_dropped:
        raise typer.BadParameter(f"no smp_mb() called by {drop_barrier!r} ran in scenario {scenario!r}",
                                 param_hint="'--drop-barrier'")
    _say(f"explored {_describe(cfg)}: {_how(report, max_schedules, seed)}")
    _say(_counts(report))
    if report.best is None:
        if not report.exhausted and seed is None:  # stopped by the limit: no verdict on what is left
            done = (f"; every bound up to {report.bound - 1} was explored to its end"
                    if report.mode == "bounded" and report.bound else "")
            _say(f"NO VERDICT: no violation in the {report.schedules} schedules explored, but the search stopped "
                 f"at --max-schedules{done}: raise it to go on")
        else:
            _say("SAFE: no violation" + ("" if report.exhaustive else " in the schedules explored"))
        raise typer.Exit(0)
    names = _names(cfg)
    _print_violation(report.best, cfg, names)
    path = out or (f"explore-{strategy}-{scenario}-cpus{cpus}{'-tso' if tso else ''}"
                   f"{'' if flush == 'ipi' else '-' + flush}{'-no-mb-' + drop_barrier if drop_barrier else ''}.json")
    _write_json(path, schedule_document(report.best, cfg, report))
    _say(f"schedule written to {path}; reproduce it with: percpu explore --replay {path}")
    raise typer.Exit(1)


def _search(cfg, bound, reduced, max_schedules, seed) -> Report:
    """The search; on Ctrl-C, what it had explored, and exit 130."""
    mode = "random" if seed is not None else ("bounded" if bound is not None else
                                              ("reduced" if reduced else "unbounded"))
    report = Report(cfg, mode, bound)
    try:
        if seed is None:
            explore(cfg, bound=bound, max_schedules=max_schedules, por=reduced, report=report)
        else:
            explore_random(cfg, max_schedules, seed=seed, report=report)
    except KeyboardInterrupt:
        _say(f"interrupted: explored {_describe(cfg)} ({mode}"
             + (f", bound {report.bound}" if report.bound is not None else "") + "): NOT exhaustive")
        _say(_counts(report))
        sys.stderr.write("percpu: interrupted\n")
        raise typer.Exit(130)
    return report


def _how(report: Report, max_schedules: int, seed) -> str:
    if seed is not None:
        return f"{max_schedules} random schedules, seed {seed} (not exhaustive)"
    if not report.exhausted and report.best is not None and report.mode != "bounded":
        return "no bound, stopped at the first violation (not exhaustive)"
    if not report.exhausted:
        return f"NOT exhaustive: stopped at --max-schedules {max_schedules}"
    if report.mode == "bounded":
        p = f"{report.bound} preemption{'s' * (report.bound != 1)}"
        if report.cut:
            return f"every schedule with at most {p}; NOT exhaustive: {report.cut} choices cut by the bound"
        return f"exhaustive: every schedule (at most {p}, and no choice cut by the bound)"
    if report.mode == "reduced":
        return "exhaustive: every schedule, no bound (sleep sets: equivalent interleavings explored once)"
    return "exhaustive: every schedule, no bound"


def _counts(report: Report) -> str:
    blocked = f", {report.blocked} cut with every actor asleep" if report.mode == "reduced" else ""
    return (f"schedules: {report.schedules} ({report.complete} run to the end, {report.pruned} cut at a known "
            f"state{blocked}); distinct states: {report.states}; time: {report.seconds:.1f} s; "
            f"violating schedules: {report.violating_schedules}")


def _replay(path: str, strategy: str | None) -> None:
    try:
        cfg, doc = load_schedule(path)
    except ScheduleError as exc:
        _fail(f"cannot replay {path}: {exc}")
    own = cfg.strategy
    if strategy is not None:
        cfg.strategy = strategy
    try:
        _applies(cfg.scenario, cfg.strategy)
    except typer.BadParameter as exc:
        _fail(f"cannot replay {path}: {exc}")
    choices = doc["choices"]
    _say(f"replay {path}: {_describe(cfg)}" + (f" (the file's strategy: {own})" if cfg.strategy != own else ""))
    try:
        result = replay_schedule(cfg, choices)
    except ReplayDiverged as exc:
        _fail(f"the schedule diverged under {_describe(cfg)}: {exc}; it does not fit this program")
    made = len(result.choices)
    if made < len(choices):
        _fail(f"the schedule diverged under {_describe(cfg)}: the run ended after {made} of the file's "
              f"{len(choices)} choices; it does not fit this program")
    went_on = (f"; it diverged from the file: its {len(choices)} choices ran out and {made - len(choices)} "
               f"more decisions took the default (keep the running CPU)") if made > len(choices) else ""
    if result.outcome != "violation":
        _say(f"no violation: the schedule ran {len(result.steps)} steps cleanly{went_on or ', every choice as in the file'}")
        raise typer.Exit(0)
    _print_violation(result, cfg, _names(cfg))
    same = [v["kind"] for v in result.violations[:1]] == [v["kind"] for v in doc.get("violations", [])[:1]]
    _say(("reproduced" if same and not went_on else f"DIFFERENT from the file's {doc.get('violations', [])[:1]}")
         + went_on)
    raise typer.Exit(1)


def _write_json(path: str, doc: dict) -> None:
    """Write it whole or not at all: a regular file through a temporary one
    beside it; anything else (a device) directly. A failure is bad input."""
    text = json.dumps(doc, indent=1) + "\n"
    try:
        if os.path.exists(path) and not os.path.isfile(path):
            with open(path, "w") as f:
                f.write(text)
            return
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".explore-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # as open() would have made it
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror or exc}")


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
