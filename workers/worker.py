"""One worker process = one emulated CPU.

Forked from the coordinator after everything is imported and the segment is
mapped, so a worker starts in about a millisecond and inherits every address.
It pins itself, boots its idle task, waits at the start barrier, runs the
scheduler loop until told to stop, lets its tasks exit (the teardown paths
run here), goes offline, and reports its counters into its own stats record.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
from dataclasses import dataclass

from percpu import faults
from percpu.linux.include_.linux.sched import Task
from percpu.linux.kernel.cpu import offline_at_end
from percpu.linux.kernel.sched.core import SITE_IDLE_PROBE, boot_idle, exit_tasks, has_live_tasks, schedule_loop
from percpu.linux.kernel.smp import flush_smp_call_function_queue
from percpu.machine import _futex, tracing
from percpu.machine.addresses import Addresses
from percpu.machine.context import CPU, Orphaned, RunAborted, kick_all
from percpu.machine.segment import NULL, SharedState
from percpu.machine.stats import COUNTERS

EXIT_OK = 0
EXIT_CRASHED = 1
EXIT_ABORTED = 3
EXIT_ORPHANED = 4

PHASE_BOOT = 0
PHASE_RUN = 1
BOOT_WAKE_NS = 200_000_000  # a CPU at the start barrier wakes this often: heartbeat, abort, orphan check


@dataclass
class WorkerSetup:
    """What every worker inherits across fork."""

    state: SharedState
    mem: Addresses
    strategy: object
    workload: object
    tasks: list  # per CPU: its user tasks
    pinning: list[int]  # per CPU: the core it pins to
    oversubscribed: bool
    coordinator_pid: int
    ipi_timeout_s: float
    kernel: object  # percpu.linux.include_.linux.version.Kernel
    switch_cost_ns: int
    faults: frozenset
    seed: int
    trace: bool


def cpu_main(setup: WorkerSetup, cpu_id: int) -> int:
    """Body of the worker process; returns its exit code."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        os.sched_setaffinity(0, {setup.pinning[cpu_id]})
        cpu = CPU(
            setup.state,
            setup.mem,
            cpu_id,
            setup.strategy,
            setup.kernel,
            flush_smp_call_function_queue,
            oversubscribed=setup.oversubscribed,
            coordinator_pid=setup.coordinator_pid,
            ipi_timeout_s=setup.ipi_timeout_s,
            switch_cost_ns=setup.switch_cost_ns,
        )
        if setup.faults:
            faults.install(cpu, setup.faults, setup.seed)
        return _run_cpu(setup, cpu)
    except RunAborted:
        return EXIT_ABORTED
    except Orphaned:
        return EXIT_ORPHANED
    except BaseException:  # a bug in the emulator: say where, stop the run
        sys.stderr.write(f"percpu: CPU {cpu_id} crashed:\n{traceback.format_exc()}")
        sys.stderr.flush()
        return EXIT_CRASHED


def _run_cpu(setup: WorkerSetup, cpu: CPU) -> int:
    state, n = setup.state, setup.state.ncpus
    idle = Task(cpu.id, f"swapper/{cpu.id}", NULL, cpu.id)
    boot_idle(cpu, idle)
    setup.workload.attach(cpu, setup.tasks[cpu.id])

    a_phase = state.addr(state.control, 0, "phase")
    cpu.fetch_add(state.addr(state.control, 0, "ready"), 1)
    while cpu.load(a_phase) != PHASE_RUN:  # the start barrier: asleep until the coordinator wakes us all
        cpu.interrupt_point()
        cpu.heartbeat()
        _futex.futex_wait(a_phase, PHASE_BOOT, BOOT_WAKE_NS)
    cpu.stats.reset()
    if setup.trace:
        cpu.trace_events = [tracing.task_begin(cpu, cpu.curr)]

    schedule_loop(cpu, setup.workload, faults.inject_faults if setup.faults else None)
    cpu.heartbeat()

    # The processes exit: every thread's exit_mm, the last one's teardown.
    # Threads another CPU forked onto this one until it saw the stop arrive
    # as late as the exit barrier; they exit too.
    exit_tasks(cpu)
    _barrier(cpu, state.addr(state.control, 0, "exited"), n, exit_late_tasks=True)
    cpu.interrupt_point()
    if has_live_tasks(cpu):
        exit_tasks(cpu)
    offline_at_end(cpu)
    _barrier(cpu, state.addr(state.control, 0, "offline"), n)
    _report(cpu, idle)
    return EXIT_OK


def _barrier(cpu: CPU, a_count: int, n: int, exit_late_tasks: bool = False) -> None:
    """Arrive, then idle (servicing IPIs, probing) until every CPU arrived;
    the last to arrive wakes the halted ones."""
    if cpu.fetch_add(a_count, 1) + 1 >= n and cpu.oversubscribed:
        kick_all(cpu)
    load = cpu.load

    def arrived():
        if exit_late_tasks and has_live_tasks(cpu):
            exit_tasks(cpu)
        return load(a_count) >= n

    cpu.idle_until(arrived, SITE_IDLE_PROBE)


def _report(cpu: CPU, idle: Task) -> None:
    state = cpu.state
    if cpu.trace_events:
        tracing.flush(cpu)
    values = cpu.stats.values()
    for name in COUNTERS:
        cpu.store(state.addr(state.stats, cpu.id, name), values[name])
    a_hist = state.addr(state.hist, cpu.id, "b0")
    for i, count in enumerate(cpu.stats.histograms()):
        if count:
            cpu.store(a_hist + 8 * i, count)
    for task in [idle, *cpu.rq]:
        if task.tid < 0:  # short-lived threads have no task record
            continue
        for field, value in (("mm", task.mm), ("active_mm", task.active_mm), ("cpu", task.cpu), ("state", int(task.dead))):
            cpu.store(state.addr(state.task, task.tid, field), value)
    cpu.store(cpu.mem.cpu_ops[cpu.id], cpu.stats.ops)
