"""kernel/exit.c: exit_mm and the part of do_exit that gives up the mm
(Linux 6.12 and 6.18 alike)."""
from __future__ import annotations

from percpu.linux.arch.x86.mm.tlb import enter_lazy_tlb
from percpu.linux.include_.linux.sched import Task
from percpu.linux.kernel.fork import mmput
from percpu.machine.segment import NULL


def exit_mm(cpu, task: Task) -> None:
    """The task gives up its mm and goes on lazily, like a kernel thread,
    until it is switched away from for good."""
    mm = task.mm
    if cpu.strategy.tracks_active_mm:
        cpu.strategy.mmgrab_lazy_tlb(cpu, mm)
    else:
        task.active_mm = NULL  # without active_mm, only loaded_mm keeps it
    # task_lock + smp_mb__after_spinlock(): membarrier needs a full barrier
    # after user-space accesses, before current->mm = NULL (on x86 the lock's
    # locked op is that barrier)
    cpu.smp_mb()
    task.mm = NULL
    enter_lazy_tlb(cpu, mm)
    mmput(cpu, mm)


def do_exit(cpu, task: Task) -> None:
    """The part of do_exit before the task's last __schedule: the caller
    returns the next task to the scheduler loop, which switches away."""
    if task.mm != NULL:
        exit_mm(cpu, task)
    task.dead = True
