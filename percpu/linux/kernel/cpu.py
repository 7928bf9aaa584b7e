"""kernel/cpu.c: CPU hotplug, a CPU going offline (cpu_down) and coming back
(cpu_up).

cpu_down: the current task is preempted, every task on the run queue
migrates to an online CPU (sched_cpu_dying's migration), and the CPU leaves
any lazy mm for init_mm (idle_task_exit, finish_cpu). While offline it runs
nothing and uses no mm; it still answers IPIs sent on a stale mm_cpumask
bit (as a no-op) and passes on any task that arrives. cpu_up: the idle task
starts on init_mm again. The last online CPU never goes down.
"""
from __future__ import annotations

from percpu.linux.kernel.sched.core import boot_idle, has_live_tasks, idle_task_exit, migrate_task, preempt_to_idle


def cpu_down(cpu) -> bool:
    if cpu.fetch_add(cpu.mem.online_count, -1) <= 1:  # never the last one
        cpu.fetch_add(cpu.mem.online_count, 1)
        return False
    cpu.online = False
    cpu.store(cpu.mem.cpu_online[cpu.id], 0)
    preempt_to_idle(cpu)
    while has_live_tasks(cpu):
        task = next(t for t in cpu.rq if not t.dead)
        cpu.rq.remove(task)
        migrate_task(cpu, task)
    cpu.rq = [t for t in cpu.rq if not t.dead]
    idle_task_exit(cpu)
    cpu.stats.hotplugs += 1
    return True


def cpu_up(cpu) -> None:
    boot_idle(cpu, cpu.idle)
    cpu.online = True
    cpu.store(cpu.mem.cpu_online[cpu.id], 1)
    cpu.fetch_add(cpu.mem.online_count, 1)
