"""The scheduler's mm path (kernel/sched/core.c), with the strategy's hooks
where the kernel has them; x86's lazy TLB state is in percpu/tlb.py.

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
only record of what it uses.
"""
from __future__ import annotations

from time import perf_counter_ns

from percpu import trace
from percpu.cpu import HOUSEKEEPING_EVERY, SWITCH_SAMPLE_EVERY, record
from percpu.state import INIT_MM, NULL, SLOT_MASK
from percpu.tlb import enter_lazy_tlb, switch_mm_irqs_off
from percpu.violations import site
from percpu import mm as mmlib

SITE_IDLE_PROBE = site("idle: lazy CPU walks loaded_mm's page tables")
SITE_FINAL_PROBE = site("idle_task_exit: last walk of loaded_mm before going offline")


class Task:
    """A task_struct: `mm` is NULL for kernel threads."""

    __slots__ = ("tid", "name", "mm", "active_mm", "cpu", "pipe", "side", "life", "dead")

    def __init__(self, tid: int, name: str, mm: int, cpu: int, life: int = 0):
        self.tid, self.name, self.cpu = tid, name, cpu  # tid -1: not in the task table
        self.mm = mm
        self.active_mm = mm
        self.pipe = -1
        self.side = 0
        self.life = life  # quanta left, for short-lived threads
        self.dead = False


# --- kernel/sched/core.c -------------------------------------------------------
# context_switch() and finish_task_switch() live inside schedule_loop() (the
# kernel's __schedule inlines them too): every switch of a CPU goes through
# that loop, task exit included, and keeping the hot path in one function
# keeps the emulator's own overhead small next to the shared-memory traffic.


def boot_idle(cpu, idle: Task) -> None:
    """start_secondary: the idle task runs on init_mm and holds a lazy
    reference to it."""
    idle.active_mm = INIT_MM if cpu.strategy.tracks_active_mm else NULL
    if cpu.strategy.tracks_active_mm:
        cpu.strategy.mmgrab_lazy_tlb(cpu, INIT_MM)
    cpu.idle = cpu.curr = idle
    cpu.set_loaded_mm(INIT_MM)


def exit_mm(cpu, task: Task) -> None:
    """kernel/exit.c: the task gives up its mm and goes on lazily, like a
    kernel thread, until it is switched away from for good."""
    mm = task.mm
    if cpu.strategy.tracks_active_mm:
        cpu.strategy.mmgrab_lazy_tlb(cpu, mm)
    else:
        task.active_mm = NULL  # without active_mm, only loaded_mm keeps it
    task.mm = NULL
    enter_lazy_tlb(cpu, mm)
    mmlib.mmput(cpu, mm)


def do_exit(cpu, task: Task) -> None:
    """The part of do_exit before the task's last __schedule: the caller
    returns the next task to the scheduler loop, which switches away."""
    if task.mm != NULL:
        exit_mm(cpu, task)
    task.dead = True


class _GoIdle:
    """Preemption as a workload: whatever runs, switch to idle, then stop."""

    def run_task(self, cpu, task: Task) -> Task:
        cpu.stopping = True
        return cpu.idle

    def wakeup(self, cpu) -> Task:
        cpu.stopping = True
        return cpu.idle


class _ExitAll:
    """The exit phase as a workload: each task, when it runs, does do_exit;
    the loop ends when none is left."""

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
    cpu.probe(SITE_FINAL_PROBE)
    idle = cpu.idle
    if cpu.loaded_mm != INIT_MM:
        switch_mm_irqs_off(cpu, idle.active_mm, INIT_MM)
    if cpu.strategy.tracks_active_mm:
        mm = idle.active_mm
        idle.active_mm = INIT_MM
        cpu.strategy.mmdrop_lazy_tlb(cpu, mm)
    if cpu.strategy.finish_task_switch is not None:
        cpu.strategy.finish_task_switch(cpu)  # the CPU's last switch


def schedule_loop(cpu, workload, between_batches=None) -> None:
    """The CPU's life until it is told to stop: batches of quanta, with the
    housekeeping (heartbeat, latency sample) and `between_batches(cpu,
    workload)` (fault injection) between batches. (Batches are also what lets
    CPython 3.11 specialise the hot loop: it quickens a function's code on
    calls, never inside one long-running call.)"""
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
    mm_gen = cpu.mm_gen
    strategy = cpu.strategy
    tracks_active_mm = strategy.tracks_active_mm
    mmgrab_lazy_tlb = strategy.mmgrab_lazy_tlb
    mmdrop_lazy_tlb = strategy.mmdrop_lazy_tlb
    finish_task_switch_hook = strategy.finish_task_switch
    trace_events = cpu.trace_events
    switch_cost_ns = cpu.switch_cost_ns
    # counters kept in locals for the batch (attribute updates cost more
    # than the shared-memory operations they count); stored on the way out
    switches, lazy_switches, probes = cpu.switches, cpu.lazy_switches, cpu.probes
    for _ in range(count):
        if cpu.stopping:
            break
        if load(a_pending) != cpu.ipi_seen:  # the interrupt point
            cpu.flush_smp_call_function_queue()
        if curr is idle:
            if cpu.is_lazy:  # cpu.probe(), inlined
                probes += 1
                mm = cpu.loaded_mm
                if load(mm_gen[mm & SLOT_MASK]) != mm >> 32:
                    cpu.use_after_free(mm, SITE_IDLE_PROBE)
            next = wakeup(cpu)
        else:
            next = run_task(cpu, curr)
        if next is curr:
            continue

        # context_switch(rq, prev, next)
        prev = curr
        curr = cpu.curr = next
        switches += 1
        timed = not switches % SWITCH_SAMPLE_EVERY
        if timed:
            start = perf_counter_ns()
        if trace_events is not None:
            trace_events.append((perf_counter_ns(), trace.TASK_END, 0, 0))
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
            trace_events.append(trace.task_begin(cpu, next))
        if timed:
            elapsed = perf_counter_ns() - start
            record(cpu.switch_hist, elapsed)
            cpu.timed_switches += 1
            cpu.timed_switch_ns += elapsed
        if switch_cost_ns:  # the modelled rest of the switch, not part of the sample
            cpu.spend(switch_cost_ns)
    cpu.switches, cpu.lazy_switches, cpu.probes = switches, lazy_switches, probes
