"""Harness: reading a schedule. Kernel-ish names for the segment's
addresses, the numbered per-CPU listing of a schedule's steps, and the
schedule file (format percpu.explore/1) that `--replay` reruns."""
from __future__ import annotations

import json

from percpu.explore.machine import Result, Step
from percpu.explore.search import Config, Report
from percpu.machine.segment import INIT_MM, LOADED_MM_SWITCHING, NULL, SharedState

FORMAT = "percpu.explore/1"


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


def load_schedule(path: str) -> tuple[Config, list]:
    with open(path) as f:
        doc = json.load(f)
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} schedule")
    cfg = Config(doc["strategy"], doc["scenario"], doc["cpus"], tso=doc.get("tso", False),
                 kernel=doc.get("kernel", "6.18"), flush=doc.get("flush", "ipi"), max_steps=doc.get("max_steps", 5000),
                 drop_barrier=doc.get("drop_barrier", ""))
    return cfg, doc
