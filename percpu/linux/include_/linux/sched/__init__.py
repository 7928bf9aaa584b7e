"""include/linux/sched.h: struct task_struct, the fields the mm path uses."""
from __future__ import annotations


class Task:
    """A task_struct: `mm` is NULL for kernel threads; `active_mm` is the mm
    it runs on (a kernel thread borrows the previous task's)."""

    __slots__ = ("tid", "name", "mm", "active_mm", "cpu", "pipe", "side", "life", "dead")

    def __init__(self, tid: int, name: str, mm: int, cpu: int, life: int = 0):
        self.tid, self.name, self.cpu = tid, name, cpu  # tid -1: not in the task table
        self.mm = mm
        self.active_mm = mm
        self.pipe = -1  # harness: the workload's pipe (context-switch workloads)
        self.side = 0
        self.life = life  # harness: quanta left, for short-lived threads
        self.dead = False
