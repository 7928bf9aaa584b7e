"""kernel/sched/core.c: the scheduler's mm path (context_switch and
finish_task_switch, inlined in the CPU's scheduling loop as __schedule
inlines them, with kernel/sched/sched.h's switch_mm_cid), idle_task_exit,
enqueue_task, wake_up_new_task and the migration of tasks off a dying CPU,
with the strategy's hooks where the kernel has them (Linux 6.12 and 6.18
alike); x86's lazy TLB state is in arch/x86/mm/tlb.py.

    context_switch(rq, prev, next):
      if next->mm == NULL:                        # to a kernel thread: lazy
          enter_lazy_tlb(prev->active_mm, next)
          next->active_mm = prev->active_mm
          if prev->mm: mmgrab_lazy_tlb(prev->active_mm)
          else:        prev->active_mm = NULL     # kernel -> kernel: hand over
      else:
          switch_mm_irqs_off(prev->active_mm, next->mm, next)
          if prev->mm == NULL: rq->prev_mm = prev->active_mm; prev->active_mm = NULL
      switch_mm_cid(rq, prev, next)               # its barriers (CONFIG_SCHED_MM_CID=y)
      finish_task_switch(prev)                    # mmdrop_lazy_tlb_sched(rq->prev_mm)

A strategy without active_mm (tlbstate) takes the CPU's loaded_mm as the
only record of what it uses. The loop around it (batches of quanta, the
idle quantum's page-walk probe) is the harness's: a quantum is the
emulator's unit of running time. Not modelled: prepare_task_switch,
membarrier_switch_mm, the concurrency-ID allocation itself.
"""
from __future__ import annotations

from time import perf_counter_ns

from percpu.linux.arch.x86.mm.tlb import enter_lazy_tlb, set_loaded_mm, switch_mm, switch_mm_irqs_off
from percpu.linux.include_.linux.cpumask import online_cpus
from percpu.linux.include_.linux.sched import Task
from percpu.linux.kernel.exit import do_exit
from percpu.linux.kernel.smp import ipi_function, smp_call_function_single
from percpu.machine import tracing
from percpu.machine.checker import probe, site, walk_page_tables
from percpu.machine.context import HOUSEKEEPING_EVERY, halt
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
    mm_gen, mm_freed_tables_gen = cpu.mem.mm_gen, cpu.mem.mm_freed_tables_gen
    strategy = cpu.strategy
    tracks_active_mm = strategy.tracks_active_mm
    lazy_grab_is_barrier = strategy.lazy_grab_is_barrier
    # finish_task_switch's part of the scheme: most add none, so the call is
    # skipped (it was a sixth of a compiled round trip)
    switch_hook = strategy.hooks_finish_task_switch
    trace_events = cpu.trace_events
    switch_cost_ns = cpu.switch_cost_ns
    stats = cpu.stats
    # counters kept in locals for the batch (attribute updates cost more
    # than the shared-memory operations they count); stored on the way out
    switches, lazy_switches, probes = stats.switches, stats.lazy_switches, stats.probes
    untimed = SWITCH_SAMPLE_EVERY - 1 - switches % SWITCH_SAMPLE_EVERY  # switches before the next timed one
    for _ in range(count):
        if cpu.stopping:
            break
        if cpu.load(cpu.a_ipi_pending) != cpu.ipi_seen:  # the interrupt point
            cpu.take_interrupt()
        if curr is idle:
            if cpu.is_lazy:  # checker.probe, inlined
                probes += 1
                mm = cpu.loaded_mm
                slot = mm & SLOT_MASK
                if cpu.load(mm_gen[slot]) != mm >> 32 or cpu.load(mm_freed_tables_gen[slot]):
                    walk_page_tables(cpu, mm, SITE_IDLE_PROBE)
            next = workload.wakeup(cpu)
        else:
            next = workload.run_task(cpu, curr)
        if next is curr:
            if next is idle and cpu.oversubscribed and halt(cpu):
                break  # harness: nothing to run, it slept (the host's core went to others): the batch ends
            continue

        # context_switch(rq, prev, next)
        prev = curr
        curr = cpu.curr = next
        switches += 1
        timed = not untimed  # one in SWITCH_SAMPLE_EVERY (counted down: no division per switch)
        if timed:
            untimed = SWITCH_SAMPLE_EVERY
            start = perf_counter_ns()
        untimed -= 1
        if trace_events is not None:
            trace_events.append((perf_counter_ns(), tracing.TASK_END, 0, 0))
        prev_mm = NULL  # rq->prev_mm
        if not next.mm:  # to a kernel thread: lazy (NULL mm)
            if prev.mm:
                lazy_switches += 1
            if tracks_active_mm:
                mm = prev.active_mm
                enter_lazy_tlb(cpu, mm)
                next.active_mm = mm
                if prev.mm:
                    strategy.mmgrab_lazy_tlb(cpu, mm)
                else:
                    prev.active_mm = NULL  # kernel -> kernel: the lazy use is handed over
            else:
                enter_lazy_tlb(cpu, cpu.loaded_mm)
            # switch_mm_cid: user -> kernel relies on mmgrab()'s locked op
            # (smp_mb__after_mmgrab(), a no-op on x86); a scheme without one pays a barrier
            if prev.mm and not lazy_grab_is_barrier:
                cpu.smp_mb()
        else:
            if tracks_active_mm:
                switch_mm_irqs_off(cpu, prev.active_mm, next.mm)
                if not prev.mm:
                    prev_mm = prev.active_mm  # will mmdrop_lazy_tlb() in finish_task_switch()
                    prev.active_mm = NULL
            else:
                switch_mm_irqs_off(cpu, cpu.loaded_mm, next.mm)
            if not prev.mm:
                cpu.smp_mb()  # switch_mm_cid: kernel -> user provides its own barrier
        # finish_task_switch(prev)
        if prev_mm:
            strategy.mmdrop_lazy_tlb(cpu, prev_mm)  # mmdrop_lazy_tlb_sched
        if switch_hook:
            strategy.finish_task_switch(cpu)
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


class Quanta:
    """Harness: what a CPU's tasks do between context switches, as the
    scheduler loop sees them: run_task (one quantum of a user task; returns
    what runs next: the task itself, another runnable one, or idle when it
    blocked) and wakeup (an idle CPU's look for a task that became
    runnable; idle if none). The workloads (percpu/workloads.py) and the
    harness's own phases below are Quanta."""

    def run_task(self, cpu, task: Task) -> Task:
        raise NotImplementedError

    def wakeup(self, cpu) -> Task:
        raise NotImplementedError


class _GoIdle(Quanta):
    """Harness: preemption as a workload: whatever runs, switch to idle, then stop."""

    def run_task(self, cpu, task: Task) -> Task:
        cpu.stopping = True
        return cpu.idle

    def wakeup(self, cpu) -> Task:
        cpu.stopping = True
        return cpu.idle


class _ExitAll(Quanta):
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


def sched_force_init_mm(cpu) -> None:
    """6.14+ (21641bd9a7a7), from sched_cpu_wait_empty on the CPU going
    down, once no user task is left on it and before __cpu_disable: drop a
    lazy mm and switch to init_mm (finish_cpu drops the init_mm reference).
    Before it the CPU stayed on the lazy mm until idle_task_exit, after
    __cpu_disable: offline, it got no flush IPIs while it still had the mm
    loaded."""
    idle, strategy = cpu.idle, cpu.strategy
    if not strategy.tracks_active_mm:  # no active_mm, no lazy reference: the switch alone
        if cpu.loaded_mm != INIT_MM:
            switch_mm_irqs_off(cpu, cpu.loaded_mm, INIT_MM)
        return
    mm = idle.active_mm
    if mm != INIT_MM:
        strategy.mmgrab_lazy_tlb(cpu, INIT_MM)
        idle.active_mm = INIT_MM
        switch_mm_irqs_off(cpu, mm, INIT_MM)
        strategy.mmdrop_lazy_tlb(cpu, mm)


def idle_task_exit(cpu) -> None:
    """The idle task of a CPU going offline leaves any lazy mm for init_mm
    (switch_mm; its active_mm is left as it was: finish_cpu, run on a
    surviving CPU, cleans that up). 6.12's; in 6.14+ sched_force_init_mm
    has done that already."""
    probe(cpu, SITE_FINAL_PROBE)
    idle = cpu.idle
    mm = idle.active_mm if cpu.strategy.tracks_active_mm else cpu.loaded_mm
    if mm != INIT_MM:
        switch_mm(cpu, mm, INIT_MM)
    cpu.store(cpu.mem.task_active_mm[idle.tid], idle.active_mm)  # where finish_cpu reads it


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
    while not smp_call_function_single(cpu, next_online_cpu(cpu), migrate_task_in, record):
        pass  # it went offline meanwhile: the next one


@ipi_function
def migrate_task_in(cpu, record: int) -> None:
    tid, mm, pipe, side, life = (cpu.load(record + 8 * i) for i in range(len(MAILBOX_FIELDS)))
    task = Task(tid, "migrated", mm, cpu.id, life=life)
    task.pipe, task.side = pipe, side
    enqueue_task(cpu, task)


def next_online_cpu(cpu) -> int:
    """The next online CPU after this one (it may go down meanwhile: then
    the call to it fails and the next one is tried; the last online CPU
    never goes down)."""
    online = online_cpus(cpu)
    after = [c for c in online if c > cpu.id] + [c for c in online if c < cpu.id]
    return after[0] if after else cpu.id
