"""Workloads: what the emulated tasks do between context switches.

A workload creates its processes before the CPUs start (the coordinator plays
fork), places tasks on CPUs, and gives the scheduler two functions: run_task
(one quantum of a user task; the scheduler takes interrupts between quanta; returns what runs
next: the task itself, another runnable one, or idle when it blocked) and
wakeup (an idle CPU's look for a task that became runnable; idle if none).
One op is the unit the rates count.
"""
from __future__ import annotations

from percpu.mm import boot_mm
from percpu.sched import Task
from percpu.state import SharedState


class Workload:
    name = ""
    op = ""  # what one op is, for the result's reader

    def __init__(self, ncpus: int, seed: int, tasks_per_cpu: int = 1):
        self.ncpus, self.seed, self.tasks_per_cpu = ncpus, seed, tasks_per_cpu

    # sizes of the shared tables this workload needs
    def ntasks(self) -> int:
        raise NotImplementedError

    def npipes(self) -> int:
        return 0

    def nmm(self) -> int:
        return 2 + self.ncpus  # init_mm, the process, spares

    def setup(self, state: SharedState) -> list[list[Task]]:
        """Create processes and tasks (coordinator, before the CPUs start);
        returns each CPU's user tasks."""
        raise NotImplementedError

    def attach(self, cpu, tasks: list[Task]) -> None:
        """On the CPU, after fork: take its run queue."""
        cpu.rq = tasks

    def run_task(self, cpu, task: Task) -> Task:
        raise NotImplementedError

    def wakeup(self, cpu) -> Task:
        raise NotImplementedError


class LazyRoundtrip(Workload):
    """Each CPU alternates a thread of one shared process and idle: the bare
    user -> kernel thread -> user round trip, on one mm."""

    name = "lazy-roundtrip"
    op = "user -> idle -> user round trip"

    def ntasks(self):
        return 2 * self.ncpus

    def setup(self, state):
        mm = boot_mm(state, 1, users=self.ncpus)
        return [[Task(self.ncpus + c, f"thread{c}", mm, c)] for c in range(self.ncpus)]

    def run_task(self, cpu, task):
        cpu.ops += 1
        return cpu.idle  # sleeps

    def wakeup(self, cpu):
        return cpu.rq[0]  # after one idle quantum


class ContextSwitchThreads(Workload):
    """will-it-scale context_switch1_threads: task pairs of one process
    ping-pong through a pipe (here a shared turn flag). Task j runs on CPU
    j % ncpus, so with one task per CPU each CPU alternates one thread and
    idle (a lazy switch each time); with more, switches go user -> user."""

    name = "context-switch-threads"
    op = "pipe ping-pong iteration of one task"

    def npairs(self):
        return max(1, -(-self.ncpus * self.tasks_per_cpu // 2))

    def ntasks(self):
        return self.ncpus + 2 * self.npairs()

    def npipes(self):
        return self.npairs()

    def setup(self, state):
        mm = boot_mm(state, 1, users=2 * self.npairs())
        per_cpu = [[] for _ in range(self.ncpus)]
        for j in range(2 * self.npairs()):
            task = Task(self.ncpus + j, f"pair{j // 2}.{'ab'[j % 2]}", mm, j % self.ncpus)
            task.pipe, task.side = j // 2, j % 2
            per_cpu[task.cpu].append(task)
        state.field(state.pipe, "turn")[:] = 0  # side a writes first
        return per_cpu

    def attach(self, cpu, tasks):
        super().attach(cpu, tasks)
        for task in tasks:
            task.pipe = cpu.state.addr(cpu.state.pipe, task.pipe, "turn")

    def run_task(self, cpu, task):
        cpu.store(task.pipe, 1 - task.side)  # write to the partner, then block on read
        cpu.ops += 1
        return self.wakeup(cpu)

    def wakeup(self, cpu):
        load = cpu.load
        for task in cpu.rq:
            if load(task.pipe) == task.side:  # its byte has arrived
                return task
        return cpu.idle


WORKLOADS: dict[str, type[Workload]] = {w.name: w for w in (LazyRoundtrip, ContextSwitchThreads)}
