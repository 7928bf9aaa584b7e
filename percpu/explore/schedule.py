"""Harness: reading a schedule. Kernel-ish names for the segment's
addresses, the numbered per-CPU listing of a schedule's steps, and the
schedule file (format percpu.explore/1) that `--replay` reruns."""
from __future__ import annotations

import json

from percpu.explore.machine import Result, Step
from percpu.explore.scenarios import SCENARIOS, strategy_names
from percpu.explore.search import Config, Report
from percpu.linux.include_.linux.version import FLUSHES, KERNELS, kernel_for
from percpu.machine.segment import INIT_MM, LOADED_MM_SWITCHING, NULL, SharedState

FORMAT = "percpu.explore/2"


def address_names(state: SharedState) -> dict[int, str]:
    """Raw address -> kernel-ish name (mm[1].mm_count, cpu1.hazard, ...)."""
    names = {}
    n = state.ncpus
    for i in range(state.mm.count):
        for f in state.mm.offsets:
            names[state.addr(state.mm, i, f)] = f"mm{i}.{f}" if i else f"init_mm.{f}"
    for c in range(n):
        for f in state.cpu.offsets:
            names[state.addr(state.cpu, c, f)] = f"cpu{c}.{f}"
    for tgt in range(n):
        for snd in range(n):
            for f in state.ipi.offsets:
                names[state.addr(state.ipi, tgt * n + snd, f)] = f"csd[{snd}->{tgt}].{f}"
    for t in range(state.task.count):
        names[state.addr(state.task, t, "mm")] = f"task{t}.mm"
    for f in state.control.offsets:
        names[state.addr(state.control, 0, f)] = f"control.{f}"
    for c in range(n):  # x86's flush_tlb_info, one per initiating CPU (tlb.py's F_* offsets)
        base = state.addr(state.flush_info, c, "mm")
        for offset, f in zip(range(0, 40, 8), ("mm", "new_tlb_gen", "freed_tables", "initiating_cpu", "trim_cpumask")):
            names[base + offset] = f"flush_tlb_info{c}.{f}"
    return names


def value_name(value, field: str = "") -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if field.endswith(("loaded_mm", "hazard", "lazy_mm", "mm_to_mmdrop", ".mm")) and value in (NULL, LOADED_MM_SWITCHING):
        return "NULL" if value == NULL else "LOADED_MM_SWITCHING"
    if value == INIT_MM:
        return "init_mm"
    if value >= 1 << 32:
        return f"mm{value & 0xFFFFFFFF}(gen {value >> 32})"
    return str(value)


def describe(step: Step, names: dict, ncpus: int) -> str:
    addr = names.get(step.addr, hex(step.addr)) if step.addr else ""
    op = step.op
    if op == "flush":
        return f"(store buffer) {addr} = {value_name(step.args[0], addr)} reaches memory"
    if op.startswith("smp_mb"):
        text = op
    elif op == "load":
        text = f"load {addr} -> {value_name(step.result, addr)}"
    elif op == "store":
        text = f"store {addr} = {value_name(step.args[0], addr)}"
    else:
        args = ", ".join(value_name(a) for a in step.args)
        text = f"{op.split(' ')[0]}({addr}{', ' if args else ''}{args}) -> {value_name(step.result)}"
        if "drains" in op:
            text += " " + op[op.index("("):]
    return f"{text}   [{step.where}]"


def listing(result: Result, ncpus: int, names: dict) -> list[str]:
    """The schedule as numbered steps, one column per CPU (store-buffer
    flushes in their CPU's column); '>>' marks a switch between CPUs that
    the schedule chose (a preemption or a wakeup)."""
    lines = []
    prev = None
    for i, step in enumerate(result.steps, 1):
        c = step.actor if step.actor < ncpus else step.actor - ncpus
        text = describe(step, names, ncpus)
        mark = ">>" if prev is not None and c != prev else "  "
        prev = c
        lines.append(f"{i:5d} {mark} {'  ' * c}CPU{c}{'  ' * (ncpus - 1 - c)}  {text}")
    return lines


def schedule_document(result: Result, cfg: Config, report: Report | None = None) -> dict:
    return {
        "format": FORMAT,
        "strategy": cfg.strategy,
        "scenario": cfg.scenario,
        "cpus": cfg.cpus,
        "tso": cfg.tso,
        "kernel": cfg.kernel,
        "flush": cfg.flush,
        "max_steps": cfg.max_steps,
        "drop_barrier": cfg.drop_barrier,
        "choices": result.choices,
        "preemptions": result.preemptions,
        "steps": len(result.steps),
        "violations": [{k: v for k, v in viol.items() if k in ("kind", "cpu", "mm_slot", "site", "message")}
                       for viol in result.violations],
        "explored": None if report is None else {"schedules": report.schedules, "states": report.states,
                                                 "bound": report.bound},
    }


class ScheduleError(ValueError):
    """A schedule file this explorer cannot replay (the message says why)."""


def _field(doc, key, kinds, what, default=None, required=True):
    if key not in doc:
        if required:
            raise ScheduleError(f"no {key!r} ({what})")
        return default
    value, kinds = doc[key], kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise ScheduleError(f"{key!r} must be {what}, not {value!r}")
    return value


def load_schedule(path: str) -> tuple[Config, dict]:
    """The Config and document of a schedule file, every field checked
    (ScheduleError: what is wrong with it)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleError(f"cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ScheduleError(f"not JSON: {exc}") from None
    if isinstance(doc, dict) and doc.get("format") == "percpu.explore/1":
        raise ScheduleError("a percpu.explore/1 schedule: its choices are those of the explorer before 2026-12, "
                            "which offered more of them; explore again to write a percpu.explore/2 one")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ScheduleError(f"not a {FORMAT} schedule")
    strategy = _field(doc, "strategy", str, "a strategy name")
    if strategy not in strategy_names():
        raise ScheduleError(f"unknown strategy {strategy!r}: use one of {', '.join(strategy_names())}")
    scenario = _field(doc, "scenario", str, "a scenario name")
    if scenario not in SCENARIOS:
        raise ScheduleError(f"unknown scenario {scenario!r}: use one of {', '.join(SCENARIOS)}")
    cpus = _field(doc, "cpus", int, "an integer from 2 to 4")
    if not 2 <= cpus <= 4:
        raise ScheduleError(f"'cpus' must be from 2 to 4, not {cpus}")
    tso = _field(doc, "tso", bool, "true or false", False, required=False)
    kernel = _field(doc, "kernel", str, f"one of {', '.join(KERNELS)}", "6.18", required=False)
    if kernel not in KERNELS:
        raise ScheduleError(f"'kernel' must be one of {', '.join(KERNELS)}, not {kernel!r}")
    flush = _field(doc, "flush", str, f"one of {', '.join(FLUSHES)}", "ipi", required=False)
    if flush not in FLUSHES:
        raise ScheduleError(f"'flush' must be one of {', '.join(FLUSHES)}, not {flush!r}")
    try:
        kernel_for(kernel, flush)
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None
    max_steps = _field(doc, "max_steps", int, "a positive integer", 5000, required=False)
    if not 1 <= max_steps <= 1_000_000:
        raise ScheduleError(f"'max_steps' must be from 1 to 1000000, not {max_steps}")
    drop_barrier = _field(doc, "drop_barrier", str, "a kernel function's name", "", required=False)
    if drop_barrier and not drop_barrier.isidentifier():
        raise ScheduleError(f"'drop_barrier' must be a kernel function's name, not {drop_barrier!r}")
    choices = _field(doc, "choices", list, "a list of choices")
    if not choices:
        raise ScheduleError("'choices' is empty: a schedule names at least one choice")
    actors = 2 * cpus if tso else cpus  # a CPU, or (under TSO) a CPU's store buffer
    for i, choice in enumerate(choices):
        if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < actors:
            raise ScheduleError(f"choice {i} is {choice!r}: each choice is an actor from 0 to {actors - 1}")
    violations = _field(doc, "violations", list, "a list of violations", [], required=False)
    if any(not isinstance(v, dict) or not isinstance(v.get("kind"), str) for v in violations):
        raise ScheduleError("'violations' must be a list of objects with a 'kind'")
    cfg = Config(strategy, scenario, cpus, tso=tso, kernel=kernel, flush=flush, max_steps=max_steps,
                 drop_barrier=drop_barrier)
    return cfg, doc
