"""Harness: per-CPU event tracing (ftrace's per-CPU ring buffers, for the
emulator), and its conversion to a Chrome/Perfetto trace-event file.

A traced CPU appends (time_ns, kind, a, b) tuples to a private list and, at
every housekeeping point, copies them into its own bounded ring in shared
memory (the `trace` table: TRACE_EVENTS_PER_CPU records per CPU, oldest
overwritten). Only that CPU writes its ring, so tracing adds no shared
writes; the coordinator reads the rings after the run.

On the timeline each CPU is one track: slices for what runs (a user task,
idle while lazy on an mm, idle), nested slices for kernel work (an IPI
handler, an mm teardown, a stall, an offline spell), instants for IPIs sent,
teardowns and violations, and a counter track per mm for `mm_count` where a
strategy touches it.
"""
from __future__ import annotations

import time

import numpy as np

from percpu.machine.segment import SLOT_MASK

TRACE_EVENTS_PER_CPU = 1 << 15
TRACE_FIELDS = ("t", "kind", "a", "b")

# kinds of event
TASK_BEGIN = 1  # a: RUN_USER / RUN_IDLE_LAZY / RUN_IDLE, b: the mm slot it runs on
TASK_END = 2
KERNEL_BEGIN = 3  # a: KERNEL_* below, b: detail (IPI function id, mm slot)
KERNEL_END = 4
IPI_SENT = 5  # a: target CPU, b: IPI function id
TEARDOWN = 6  # a: mm slot
VIOLATION = 7  # a: violation kind, b: mm slot
MM_COUNT = 8  # a: mm slot, b: mm_count after the change

RUN_USER, RUN_IDLE_LAZY, RUN_IDLE = 1, 2, 3
KERNEL_IPI, KERNEL_TEARDOWN, KERNEL_STALL, KERNEL_OFFLINE = 1, 2, 3, 4


def now() -> int:
    return time.perf_counter_ns()  # CLOCK_MONOTONIC: one clock for every CPU


def task_begin(cpu, task) -> tuple:
    """The event for `task` starting to run on `cpu` (after the switch)."""
    if task.mm:
        return (now(), TASK_BEGIN, RUN_USER, task.mm & SLOT_MASK)
    if cpu.is_lazy:
        return (now(), TASK_BEGIN, RUN_IDLE_LAZY, cpu.loaded_mm & SLOT_MASK)
    return (now(), TASK_BEGIN, RUN_IDLE, 0)


def flush(cpu) -> None:
    """Copy this CPU's pending events into its ring in shared memory."""
    pending = cpu.trace_events
    if not pending:
        return
    ring = cpu.state.rows(cpu.state.trace)[cpu.id * TRACE_EVENTS_PER_CPU:(cpu.id + 1) * TRACE_EVENTS_PER_CPU, :4]
    events = np.array(pending[-TRACE_EVENTS_PER_CPU:], dtype=np.int64)
    start = (cpu.stats.trace_written + len(pending) - len(events)) % TRACE_EVENTS_PER_CPU
    first = min(len(events), TRACE_EVENTS_PER_CPU - start)
    ring[start:start + first] = events[:first]
    ring[:len(events) - first] = events[first:]
    cpu.stats.trace_written += len(pending)
    pending.clear()


def read_rings(state, written: list[int]) -> list[np.ndarray]:
    """Each CPU's events, oldest first (the last TRACE_EVENTS_PER_CPU)."""
    rows = state.rows(state.trace)
    out = []
    for c, total in enumerate(written):
        ring = rows[c * TRACE_EVENTS_PER_CPU:(c + 1) * TRACE_EVENTS_PER_CPU, :4]
        if total <= TRACE_EVENTS_PER_CPU:
            out.append(ring[:total].copy())
        else:
            start = total % TRACE_EVENTS_PER_CPU
            out.append(np.concatenate([ring[start:], ring[:start]]))
    return out


def to_chrome_trace(events_by_cpu, *, start_ns: int, pinning, title: str, ipi_names, violation_kinds,
                    lost: list[int]) -> dict:
    """Chrome trace-event JSON (what ui.perfetto.dev and chrome://tracing
    open). Slices are B/E pairs that nest on each CPU's track; events the
    ring lost leave unmatched ends, which are dropped, and slices still open
    at the end are closed there."""
    pid = 1
    out = [
        {"ph": "M", "name": "process_name", "pid": pid, "args": {"name": title}},
    ]
    last_ts = 0.0
    for cpu_id, events in enumerate(events_by_cpu):
        out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": cpu_id,
                    "args": {"name": f"CPU {cpu_id} (core {pinning[cpu_id]})"}})
        out.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": cpu_id, "args": {"sort_index": cpu_id}})
        open_slices = 0
        ts = 0.0
        for t, kind, a, b in events.tolist():
            ts = max(ts, (t - start_ns) / 1000.0)  # us, non-decreasing on a track
            if kind == TASK_BEGIN or kind == KERNEL_BEGIN:
                out.append({"ph": "B", "pid": pid, "tid": cpu_id, "ts": ts, "cat": "task" if kind == TASK_BEGIN else "kernel",
                            "name": _slice_name(kind, a, b, ipi_names)})
                open_slices += 1
            elif kind == TASK_END or kind == KERNEL_END:
                if open_slices:  # else its begin was overwritten in the ring
                    out.append({"ph": "E", "pid": pid, "tid": cpu_id, "ts": ts})
                    open_slices -= 1
            elif kind == IPI_SENT:
                out.append({"ph": "i", "s": "t", "pid": pid, "tid": cpu_id, "ts": ts, "cat": "ipi",
                            "name": f"IPI {ipi_names[b]} -> CPU {a}"})
            elif kind == TEARDOWN:
                out.append({"ph": "i", "s": "t", "pid": pid, "tid": cpu_id, "ts": ts, "cat": "mm",
                            "name": f"mm slot {a} freed"})
            elif kind == VIOLATION:
                out.append({"ph": "i", "s": "g", "pid": pid, "tid": cpu_id, "ts": ts, "cat": "violation",
                            "name": f"VIOLATION {violation_kinds.get(a, a)} (mm slot {b})"})
            elif kind == MM_COUNT:
                out.append({"ph": "C", "pid": pid, "ts": ts, "name": f"mm_count (mm slot {a})", "args": {"mm_count": b}})
        for _ in range(open_slices):
            out.append({"ph": "E", "pid": pid, "tid": cpu_id, "ts": ts})
        last_ts = max(last_ts, ts)
    return {
        "traceEvents": out,
        "displayTimeUnit": "ns",
        "otherData": {"title": title, "events_lost_to_ring_wrap": lost, "ring_events": TRACE_EVENTS_PER_CPU,
                      "end_us": last_ts},
    }


def _slice_name(kind: int, a: int, b: int, ipi_names) -> str:
    if kind == TASK_BEGIN:
        if a == RUN_USER:
            return f"user task of mm slot {b}"
        if a == RUN_IDLE_LAZY:
            return f"idle, lazy on mm slot {b}"
        return "idle (init_mm)"
    return {
        KERNEL_IPI: lambda: f"IPI handler: {ipi_names[b]}",
        KERNEL_TEARDOWN: lambda: f"teardown of mm slot {b}",
        KERNEL_STALL: lambda: "stall: interrupts off",
        KERNEL_OFFLINE: lambda: "offline (hotplug)",
    }[a]()
