"""Harness: the workloads, what the emulated tasks do between context switches.

A workload creates its processes before the CPUs start (the coordinator plays
fork), places tasks on CPUs, and gives the scheduler run_task and wakeup
(kernel/sched/core.py's Quanta; the scheduler takes interrupts between quanta).
One op is the unit the rates count.
"""
from __future__ import annotations

import random
import time

from percpu.linux.include_.linux.sched import Task
from percpu.linux.kernel.exit import do_exit
from percpu.linux.kernel.fork import boot_mm, mm_alloc, mmget
from percpu.linux.kernel.sched.core import Quanta, wake_up_new_task
from percpu.linux.kernel.smp import smp_call_function_single
from percpu.machine.context import kick
from percpu.machine.segment import SharedState


class Workload(Quanta):
    name = ""
    op = ""  # what one op is, for the result's reader
    uses_tasks_per_cpu = False  # which of the run's workload options it reads
    uses_fork_rate = False

    def __init__(self, ncpus: int, seed: int, tasks_per_cpu: int = 1, fork_rate: float = 200.0):
        self.ncpus, self.seed, self.tasks_per_cpu, self.fork_rate = ncpus, seed, tasks_per_cpu, fork_rate

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
        cpu.workload = self

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
        cpu.stats.ops += 1
        return cpu.idle  # sleeps

    def wakeup(self, cpu):
        rq = cpu.rq  # after one idle quantum
        return rq[0] if len(rq) == 1 else next_in_turn(cpu)


class ContextSwitchThreads(Workload):
    """will-it-scale context_switch1_threads: task pairs of one process
    ping-pong through a pipe (here a shared turn flag). Task j runs on CPU
    j % ncpus, so with one task per CPU each CPU alternates one thread and
    idle (a lazy switch each time); with more, switches go user -> user."""

    name = "context-switch-threads"
    op = "pipe ping-pong iteration of one task"
    one_process = True
    uses_tasks_per_cpu = True

    def npairs(self):
        return max(1, -(-self.ncpus * self.tasks_per_cpu // 2))

    def ntasks(self):
        return self.ncpus + 2 * self.npairs()

    def npipes(self):
        return self.npairs()

    def nmm(self):
        return 2 + self.npairs() + self.ncpus

    def setup(self, state):
        shared = boot_mm(state, 1, users=2 * self.npairs()) if self.one_process else None
        per_cpu = [[] for _ in range(self.ncpus)]
        for j in range(2 * self.npairs()):
            pair = j // 2
            if shared is None and j % 2 == 0:
                mm = boot_mm(state, 1 + pair, users=2)  # each pair its own process
            task = Task(self.ncpus + j, f"pair{pair}.{'ab'[j % 2]}", shared or mm, j % self.ncpus)
            task.pipe, task.side = pair, j % 2
            per_cpu[task.cpu].append(task)
        state.field(state.pipe, "turn")[:] = 0  # side a writes first
        return per_cpu

    def attach(self, cpu, tasks):
        super().attach(cpu, tasks)
        for task in tasks:
            task.pipe = cpu.state.addr(cpu.state.pipe, task.pipe, "turn")

    def run_task(self, cpu, task):
        cpu.store(task.pipe, 1 - task.side)  # write to the partner, then block on read
        cpu.stats.ops += 1
        if cpu.oversubscribed:
            self.wake_partner(cpu, task)
        return self.wakeup(cpu)

    def wake_partner(self, cpu, task) -> None:
        """The pipe's wake-up of the reader, when its CPU may be halted: kick
        the CPU its partner started on (task j's partner is j ^ 1). (A
        partner that hotplug migrated wakes by its halt's timeout.)"""
        partner_cpu = ((task.tid - self.ncpus) ^ 1) % self.ncpus
        if partner_cpu != cpu.id:
            kick(cpu, partner_cpu)

    def wakeup(self, cpu):
        for task in cpu.rq:
            if cpu.load(task.pipe) == task.side:  # its byte has arrived
                return task
        return cpu.idle


class ContextSwitchProcesses(ContextSwitchThreads):
    """will-it-scale context_switch1_processes: the same ping-pong, each
    pair its own process (its own mm)."""

    name = "context-switch-processes"
    one_process = False


class ForkExit(Workload):
    """Processes are born and die at `fork_rate` per second per CPU. Each
    has up to THREADS threads spread over CPUs chosen by the seeded RNG; a
    thread runs LIFETIME round trips (a quantum, then a lazy idle quantum)
    and exits, so the last one out tears the mm down while the CPUs its
    siblings ran on are still lazily using it."""

    name = "fork-exit"
    op = "user -> idle -> user round trip of a short-lived thread"
    uses_fork_rate = True
    THREADS = 3
    LIFETIME = 10
    SLOTS_PER_CPU = 32

    def ntasks(self):
        return self.ncpus  # threads come and go; only idle tasks are reported

    def nmm(self):
        return 1 + self.SLOTS_PER_CPU * self.ncpus

    def setup(self, state):
        return [[] for _ in range(self.ncpus)]

    def attach(self, cpu, tasks):
        super().attach(cpu, list(tasks))
        self.interval_ns = int(1e9 / self.fork_rate)
        self.rng = random.Random(self.seed * 100003 + cpu.id)
        self.next_fork_ns = cpu.timer_ns = time.perf_counter_ns() + self.rng.randrange(self.interval_ns)
        self.others = [c for c in range(self.ncpus) if c != cpu.id]

    def run_task(self, cpu, task):
        cpu.stats.ops += 1
        task.life -= 1
        if task.life <= 0:
            do_exit(cpu, task)
            cpu.rq.remove(task)
        return cpu.idle  # sleeps for one idle quantum (or is gone)

    def wakeup(self, cpu):
        if time.perf_counter_ns() >= self.next_fork_ns:
            self.next_fork_ns = cpu.timer_ns = self.next_fork_ns + self.interval_ns  # a halt wakes for it
            self.fork(cpu)
        return next_in_turn(cpu)

    def fork(self, cpu):
        """clone() of a new process and its threads: the mm is this CPU's
        to allocate; each thread elsewhere takes an mm_users reference and is
        handed to its CPU (wake_up_new_task)."""
        mm = mm_alloc(cpu)
        if not mm:
            return  # no free slot: this fork is skipped
        cpu.stats.forks += 1
        nthreads = min(self.THREADS, self.ncpus)
        cpu.rq.append(self.new_thread(cpu, mm))
        for target in self.rng.sample(self.others, nthreads - 1):
            mmget(cpu, mm)
            if not smp_call_function_single(cpu, target, wake_up_new_task, mm):
                wake_up_new_task(cpu, mm)  # the target is offline: the thread starts here

    def new_thread(self, cpu, mm):
        return Task(-1, "thread", mm, cpu.id, life=self.LIFETIME)


def next_in_turn(cpu) -> Task:
    """Round robin over this CPU's run queue (all its tasks are runnable
    after an idle quantum); idle when it has none."""
    rq = cpu.rq
    if len(rq) == 1:
        return rq[0]
    if not rq:
        return cpu.idle
    task = rq.pop(0)
    rq.append(task)
    return task


WORKLOADS: dict[str, type[Workload]] = {
    w.name: w for w in (LazyRoundtrip, ContextSwitchThreads, ContextSwitchProcesses, ForkExit)
}
