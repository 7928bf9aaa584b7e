"""CPU hotplug (kernel/cpu.c, kernel/sched/core.c): a CPU goes offline and
comes back.

cpu_down: the current task is preempted, every task on the run queue
migrates to an online CPU (sched_cpu_dying's migrate_tasks), and the CPU
leaves any lazy mm for init_mm (idle_task_exit, finish_cpu). While offline it
runs nothing and uses no mm; it still answers IPIs sent on a stale
mm_cpumask bit (as a no-op) and passes on any task that arrives. cpu_up:
the idle task starts on init_mm again. The last online CPU never goes down.
"""
from __future__ import annotations

import os
import time

from percpu import trace
from percpu.sched import Task, boot_idle, has_live_tasks, idle_task_exit, preempt_to_idle
from percpu.smp import ipi_function, smp_call_function_single

MAILBOX_FIELDS = ("tid", "mm", "pipe", "side", "life")


def cpu_down(cpu) -> bool:
    if cpu.fetch_add(cpu.a_online_count, -1) <= 1:  # never the last one
        cpu.fetch_add(cpu.a_online_count, 1)
        return False
    cpu.online = False
    cpu.store(cpu.a_online, 0)
    preempt_to_idle(cpu)
    while has_live_tasks(cpu):
        task = next(t for t in cpu.rq if not t.dead)
        cpu.rq.remove(task)
        migrate_task(cpu, task)
    cpu.rq = [t for t in cpu.rq if not t.dead]
    idle_task_exit(cpu)
    cpu.hotplugs += 1
    return True


def cpu_up(cpu) -> None:
    boot_idle(cpu, cpu.idle)
    cpu.online = True
    cpu.store(cpu.a_online, 1)
    cpu.fetch_add(cpu.a_online_count, 1)


def cpu_down_up(cpu, offline_ns: int) -> None:
    """Offline for offline_ns (or until the run stops), then online again."""
    if not cpu_down(cpu):
        return
    traced = cpu.trace_events is not None
    if traced:  # after the switch to idle and the migrations: it nests in idle's slice
        cpu.trace_events.append((trace.now(), trace.KERNEL_BEGIN, trace.KERNEL_OFFLINE, 0))
    end = time.perf_counter_ns() + offline_ns
    spins = 0
    while time.perf_counter_ns() < end and not cpu.stopping:
        cpu.interrupt_point()
        spins += 1
        if not spins % 64:
            cpu.heartbeat()
            if cpu.oversubscribed:
                os.sched_yield()
    if traced:
        cpu.trace_events.append((trace.now(), trace.KERNEL_END, 0, 0))
    cpu_up(cpu)


def enqueue_task(cpu, task: Task) -> None:
    """A task arrives on this CPU (forked or migrated here): an offline CPU
    passes it on."""
    if cpu.online:
        task.cpu = cpu.id
        cpu.rq.append(task)
    else:
        migrate_task(cpu, task)


def migrate_task(cpu, task: Task) -> None:
    """Hand a task to an online CPU: its fields go through this CPU's
    mailbox, read by the target during a synchronous IPI."""
    record = cpu.mailbox[cpu.mailbox_next]
    cpu.mailbox_next = (cpu.mailbox_next + 1) % len(cpu.mailbox)
    for i, name in enumerate(MAILBOX_FIELDS):
        cpu.store(record + 8 * i, getattr(task, name))
    cpu.migrations += 1
    smp_call_function_single(cpu, _online_cpu(cpu), migrate_task_in, record)


@ipi_function
def migrate_task_in(cpu, record: int) -> None:
    tid, mm, pipe, side, life = (cpu.load(record + 8 * i) for i in range(len(MAILBOX_FIELDS)))
    task = Task(tid, "migrated", mm, cpu.id, life=life)
    task.pipe, task.side = pipe, side
    enqueue_task(cpu, task)


def _online_cpu(cpu) -> int:
    """The next online CPU after this one (it may go down meanwhile: then it
    passes the task on in turn)."""
    n = cpu.ncpus
    for step in range(1, n):
        other = (cpu.id + step) % n
        if cpu.load(cpu.cpu_online[other]):
            return other
    return cpu.id if cpu.online else (cpu.id + 1) % n
