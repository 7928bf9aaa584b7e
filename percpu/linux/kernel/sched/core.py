"""kernel/sched/core.c: the scheduler's mm path (context_switch and
finish_task_switch, inlined in the CPU's scheduling loop as __schedule
inlines them), idle_task_exit, enqueue_task, wake_up_new_task and the
migration of tasks off a dying CPU, with the strategy's hooks where the
kernel has them; x86's lazy TLB state is in arch/x86/mm/tlb.py.

    context_switch(rq, prev, next):
      if next->mm == NULL:                        # to a kernel thread: lazy
          enter_lazy_tlb(prev->active_mm, next)
          next->active_mm = prev->active_mm
          if prev->mm: mmgrab_lazy_tlb(prev->active_mm)
          else:        prev->active_mm = NULL     # kernel -> kernel: hand over
      else:
          switch_mm_irqs_off(prev->active_mm, next->mm, next)
          if prev->mm == NULL: rq->prev_mm = prev->active_mm; prev->active_mm = NULL
      finish_task_switch(prev)                    # mmdrop_lazy_tlb(rq->prev_mm)

A strategy without active_mm (tlbstate) takes the CPU's loaded_mm as the
only record of what it uses. The loop around it (batches of quanta, the
idle quantum's page-walk probe) is the harness's: a quantum is the
emulator's unit of running time.
"""
from __future__ import annotations

from time import perf_counter_ns

from percpu.linux.arch.x86.mm.tlb import enter_lazy_tlb, set_loaded_mm, switch_mm_irqs_off
from percpu.linux.include.linux.sched import Task
from percpu.linux.kernel.exit import do_exit
from percpu.linux.kernel.smp import ipi_function, smp_call_function_single
from percpu.machine import tracing
from percpu.machine.checker import probe, site, use_after_free
from percpu.machine.context import HOUSEKEEPING_EVERY
from percpu.machine.segment import INIT_MM, NULL, SLOT_MASK
from percpu.machine.stats import SWITCH_SAMPLE_EVERY, record

SITE_IDLE_PROBE = site("idle: lazy CPU walks loaded_mm's page tables")
SITE_FINAL_PROBE = site("idle_task_exit: last walk of loaded_mm before going offline")
MAILBOX_FIELDS = ("tid", "mm", "pipe", "side", "life")  # segment.MAILBOX_LINES


def boot_idle(cpu, idle: Task) -> None:
    """start_secondary: the idle task runs on init_mm and holds a lazy
    reference to it."""
    idle.active_mm = INIT_MM if cpu.strategy.tracks_active_mm else NULL
    if cpu.strategy.tracks_active_mm:
        cpu.strategy.mmgrab_lazy_tlb(cpu, INIT_MM)
    cpu.idle = cpu.curr = idle
    set_loaded_mm(cpu, INIT_MM)


def schedule_loop(cpu, workload, between_batches=None) -> None:
    """Harness: the CPU's life until it is told to stop: batches of quanta,
    with the housekeeping (heartbeat, latency sample) and
    `between_batches(cpu, workload)` (fault injection) between batches.
    (Batches are also what lets CPython 3.11 specialise the hot loop: it
    quickens a function's code on calls, never inside one long-running call.)"""
    while not cpu.stopping:
        run_quanta(cpu, workload, HOUSEKEEPING_EVERY)
        cpu.housekeeping()
        if between_batches is not None and not cpu.stopping:
            between_batches(cpu, workload)


def run_quanta(cpu, workload, count: int) -> None:
    """Up to `count` quanta: take interrupts, run a quantum, switch. A user
    task's quantum says what runs next (itself, another task, idle when it
    blocked); an idle quantum lets the hardware walk the lazily loaded mm
    (the probe that catches a freed one) and looks for a woken task."""
    idle = cpu.idle
    curr = cpu.curr
    run_task = workload.run_task
    wakeup = workload.wakeup
    load = cpu.load
    a_pending = cpu.a_ipi_pending
    mm_gen = cpu.mem.mm_gen
    strategy = cpu.strategy
    tracks_active_mm = strategy.tracks_active_mm
    mmgrab_lazy_tlb = strategy.mmgrab_lazy_tlb
    mmdrop_lazy_tlb = strategy.mmdrop_lazy_tlb
    finish_task_switch_hook = strategy.finish_task_switch
    trace_events = cpu.trace_events
    switch_cost_ns = cpu.switch_cost_ns
    stats = cpu.stats
    # counters kept in locals for the batch (attribute updates cost more
    # than the shared-memory operations they count); stored on the way out
    switches, lazy_switches, probes = stats.switches, stats.lazy_switches, stats.probes
    for _ in range(count):
        if cpu.stopping:
            break
        if load(a_pending) != cpu.ipi_seen:  # the interrupt point
            cpu.take_interrupt()
        if curr is idle:
            if cpu.is_lazy:  # checker.probe, inlined
                probes += 1
                mm = cpu.loaded_mm
                if load(mm_gen[mm & SLOT_MASK]) != mm >> 32:
                    use_after_free(cpu, mm, SITE_IDLE_PROBE)
            next = wakeup(cpu)
        else:
            next = run_task(cpu, curr)
        if next is curr:
            if next is idle and cpu.oversubscribed and cpu.halt():
                break  # harness: nothing to run, it slept (the host's core went to others): the batch ends
            continue

        # context_switch(rq, prev, next)
        prev = curr
        curr = cpu.curr = next
        switches += 1
        timed = not switches % SWITCH_SAMPLE_EVERY
        if timed:
            start = perf_counter_ns()
        if trace_events is not None:
            trace_events.append((perf_counter_ns(), tracing.TASK_END, 0, 0))
        if not next.mm:  # to a kernel thread: lazy (NULL mm)
            if prev.mm:
                lazy_switches += 1
            if tracks_active_mm:
                mm = prev.active_mm
                enter_lazy_tlb(cpu, mm)
                next.active_mm = mm
                if prev.mm:
                    mmgrab_lazy_tlb(cpu, mm)
                else:
                    prev.active_mm = NULL  # kernel -> kernel: the lazy use is handed over
            else:
                enter_lazy_tlb(cpu, cpu.loaded_mm)
        elif tracks_active_mm:
            switch_mm_irqs_off(cpu, prev.active_mm, next.mm)
            if not prev.mm:
                # finish_task_switch(prev): rq->prev_mm, dropped after the switch
                mm = prev.active_mm
                prev.active_mm = NULL
                mmdrop_lazy_tlb(cpu, mm)  # mmdrop_lazy_tlb_sched
        else:
            switch_mm_irqs_off(cpu, cpu.loaded_mm, next.mm)
        if finish_task_switch_hook is not None:
            finish_task_switch_hook(cpu)
        if trace_events is not None:
            trace_events.append(tracing.task_begin(cpu, next))
        if timed:
            elapsed = perf_counter_ns() - start
            record(stats.switch_hist, elapsed)
            stats.timed_switches += 1
            stats.timed_switch_ns += elapsed
        if switch_cost_ns:  # the modelled rest of the switch, not part of the sample
            cpu.spend(switch_cost_ns)
    stats.switches, stats.lazy_switches, stats.probes = switches, lazy_switches, probes


class _GoIdle:
    """Harness: preemption as a workload: whatever runs, switch to idle, then stop."""

    def run_task(self, cpu, task: Task) -> Task:
        cpu.stopping = True
        return cpu.idle

    def wakeup(self, cpu) -> Task:
        cpu.stopping = True
        return cpu.idle


class _ExitAll:
    """Harness: the exit phase as a workload: each task, when it runs, does
    do_exit; the loop ends when none is left."""

    def run_task(self, cpu, task: Task) -> Task:
        do_exit(cpu, task)
        return self.wakeup(cpu)

    def wakeup(self, cpu) -> Task:
        for task in cpu.rq:
            if not task.dead:
                return task
        cpu.stopping = True  # nothing left to run: the loop ends
        return cpu.idle


def _run_to_completion(cpu, workload) -> None:
    """Run the scheduler loop with `workload` until it says stop, keeping
    the run's own stop (which may arrive meanwhile) for the caller."""
    outer = cpu.stopping
    cpu.stopping = False
    schedule_loop(cpu, workload)
    cpu.stopping = outer or cpu.stop_seen


def exit_tasks(cpu) -> None:
    """At the end of a run every task on this CPU exits; the last thread of a
    process to exit runs its teardown."""
    _run_to_completion(cpu, _ExitAll())


def preempt_to_idle(cpu) -> None:
    """Switch to the idle task now (the current task stays runnable)."""
    _run_to_completion(cpu, _GoIdle())


def has_live_tasks(cpu) -> bool:
    return any(not task.dead for task in cpu.rq)


def idle_task_exit(cpu) -> None:
    """CPU going offline: leave any lazy mm for init_mm, then (finish_cpu,
    which the kernel runs on another CPU) drop the idle task's lazy
    reference."""
    probe(cpu, SITE_FINAL_PROBE)
    idle = cpu.idle
    if cpu.loaded_mm != INIT_MM:
        switch_mm_irqs_off(cpu, idle.active_mm, INIT_MM)
    if cpu.strategy.tracks_active_mm:
        mm = idle.active_mm
        idle.active_mm = INIT_MM
        cpu.strategy.mmdrop_lazy_tlb(cpu, mm)
    if cpu.strategy.finish_task_switch is not None:
        cpu.strategy.finish_task_switch(cpu)  # the CPU's last switch


def enqueue_task(cpu, task: Task) -> None:
    """A task arrives on this CPU (forked or migrated here): an offline CPU
    passes it on."""
    if cpu.online:
        task.cpu = cpu.id
        cpu.rq.append(task)
    else:
        migrate_task(cpu, task)


@ipi_function
def wake_up_new_task(cpu, mm: int) -> None:
    """A thread of a new process arrives on this CPU's run queue."""
    enqueue_task(cpu, cpu.workload.new_thread(cpu, mm))


def migrate_task(cpu, task: Task) -> None:
    """Hand a task to an online CPU (sched_cpu_dying's migration): its
    fields go through this CPU's mailbox, read by the target during a
    synchronous IPI."""
    record = cpu.mailbox[cpu.mailbox_next]
    cpu.mailbox_next = (cpu.mailbox_next + 1) % len(cpu.mailbox)
    for i, name in enumerate(MAILBOX_FIELDS):
        cpu.store(record + 8 * i, getattr(task, name))
    cpu.stats.migrations += 1
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
        if cpu.load(cpu.mem.cpu_online[other]):
            return other
    return cpu.id if cpu.online else (cpu.id + 1) % n
