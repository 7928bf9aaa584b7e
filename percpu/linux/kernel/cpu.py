"""kernel/cpu.c: CPU hotplug, Linux 6.12's, as the hazard-pointer RFC (based
on 6.11.1) met it: a CPU going offline (cpu_down), the control CPU's
finish_cpu once it is dead, and its coming back (cpu_up). 6.18 (6.14+)
first leaves any lazy mm for init_mm (sched_force_init_mm, from
sched_cpu_wait_empty), while the CPU is still online.

The dying CPU (its hotplug thread, then its idle task): leaves
cpu_online_mask (__cpu_disable), preempts its current task, migrates every
task to an online CPU (sched_cpu_dying), runs the calls still in flight
(smpcfd_dying_cpu), and its idle task leaves any lazy mm for init_mm
(idle_task_exit, which leaves the idle task's active_mm as it was). Then a
surviving CPU, the control CPU, runs finish_cpu: it drops the dead idle
task's active_mm reference with mmdrop_lazy_tlb, on itself. Here the dying
CPU reports dead with a synchronous call that runs finish_cpu on the next
online CPU. While offline a CPU gets no IPIs (masks are ANDed with
cpu_online_mask) and uses no mm; cpu_up boots its idle task on init_mm
again. The last online CPU never goes down.
"""
from __future__ import annotations

from percpu.linux.include_.linux.cpumask import set_cpu_online
from percpu.linux.kernel.sched.core import (next_online_cpu, boot_idle, has_live_tasks, idle_task_exit, migrate_task,
                                            preempt_to_idle, sched_force_init_mm)
from percpu.linux.kernel.smp import flush_smp_call_function_queue, ipi_function, smp_call_function_single
from percpu.machine.segment import INIT_MM


def cpu_down(cpu) -> bool:
    """The dying CPU's part of taking it down; False when it is the last."""
    if cpu.fetch_add(cpu.mem.online_count, -1) <= 1:  # never the last one
        cpu.fetch_add(cpu.mem.online_count, 1)
        return False
    if cpu.kernel.force_init_mm:  # 6.14+: sched_cpu_wait_empty, before the teardown
        preempt_to_idle(cpu)
        sched_force_init_mm(cpu)
    cpu.online = False
    set_cpu_online(cpu, cpu.id, False)  # __cpu_disable
    preempt_to_idle(cpu)
    while has_live_tasks(cpu):  # sched_cpu_dying: push the tasks away
        task = next(t for t in cpu.rq if not t.dead)
        cpu.rq.remove(task)
        migrate_task(cpu, task)
    cpu.rq = [t for t in cpu.rq if not t.dead]
    flush_smp_call_function_queue(cpu)  # smpcfd_dying_cpu
    _die(cpu)
    cpu.stats.hotplugs += 1
    smp_call_function_single(cpu, next_online_cpu(cpu), finish_cpu, cpu.id)  # cpuhp_report_idle_dead
    return True


@ipi_function
def finish_cpu(cpu, dead: int) -> None:
    """On the control CPU, once `dead` is dead: clean up its idle task's
    active_mm state (the idle task of CPU n is task n)."""
    if not cpu.strategy.tracks_active_mm:
        return  # no active_mm: nothing is held
    a_active_mm = cpu.mem.task_active_mm[dead]
    mm = cpu.load(a_active_mm)
    if mm != INIT_MM:
        cpu.store(a_active_mm, INIT_MM)
        if dead == cpu.id:
            cpu.idle.active_mm = INIT_MM  # offline_at_end: the idle task is this CPU's own
    cpu.strategy.mmdrop_lazy_tlb(cpu, mm)  # on this CPU, whatever that means for the scheme


def cpu_up(cpu) -> None:
    boot_idle(cpu, cpu.idle)
    cpu.online = True
    set_cpu_online(cpu, cpu.id, True)
    cpu.fetch_add(cpu.mem.online_count, 1)


def offline_at_end(cpu) -> None:
    """Harness: the end of a run takes every CPU down at once, so with no
    CPU left to run it, each runs finish_cpu for itself."""
    _die(cpu)
    finish_cpu(cpu, cpu.id)


def _die(cpu) -> None:
    """The dying CPU's last switches: to its hotplug thread (a kernel ->
    kernel switch: finish_task_switch runs), then idle_task_exit."""
    cpu.strategy.finish_task_switch(cpu)
    idle_task_exit(cpu)
