"""Harness: the explorer's scenarios, small fixed programs of the emulated
kernel, one script of quanta per CPU, each ending as a run does."""
from __future__ import annotations

from dataclasses import dataclass

from percpu import strategies
from percpu.linux.arch.x86.mm.tlb import flush_tlb_mm_range
from percpu.linux.include_.linux.sched import Task
from percpu.linux.kernel.cpu import cpu_down, cpu_up
from percpu.linux.kernel.exit import do_exit
from percpu.linux.kernel.fork import boot_mm, mm_alloc, mmget
from percpu.linux.kernel.sched.core import wake_up_new_task
from percpu.linux.kernel.smp import smp_call_function_single
from percpu.machine.checker import STALE_TLB, deref, site, tlb_gen_seen, violation
from percpu.machine.segment import NULL, SLOT_MASK
from percpu.strategies.hazard import Hazard, hp_allocate


def strategy_class(name: str):
    """Looked up at call time: tests register broken variants."""
    return strategies.STRATEGIES[name]


def strategy_names() -> list[str]:
    return list(strategies.STRATEGIES)


class Script:
    """A workload for run_quanta that plays a fixed per-CPU script. Each
    quantum consumes one word: a user task's quantum `sleep` (switch to idle:
    a lazy switch) or `exit` (do_exit; the last thread tears the mm down);
    an idle quantum `wake` (switch to the first live task of the run queue,
    blocking until one arrives by IPI), `idle` (stay idle: the lazy CPU's
    page-walk probe runs) or `fork` (a new process: mm_alloc, a thread here
    and one on each other CPU by wake_up_new_task). When the script is done
    the loop stops."""

    def __init__(self, words, threads_per_fork: int = 3):
        self.words = list(words)
        self.threads_per_fork = threads_per_fork

    def attach(self, cpu, tasks):
        cpu.rq = list(tasks)
        cpu.workload = self

    def _next(self, cpu):
        if not self.words:
            cpu.stopping = True
            return None
        return self.words.pop(0)

    def run_task(self, cpu, task):
        word = self._next(cpu)
        if word is None:
            return task
        cpu.stats.ops += 1
        if word == "exit":
            do_exit(cpu, task)
            return cpu.idle
        assert word == "sleep", word
        return cpu.idle

    def wakeup(self, cpu):
        word = self._next(cpu)
        if word is None or word == "idle":
            return cpu.idle
        if word == "fork":
            self.fork(cpu)
            return cpu.idle
        assert word == "wake", word
        while True:
            for task in cpu.rq:
                if not task.dead:
                    return task
            # nothing to run yet: wait (servicing IPIs) for a task to arrive
            cpu.spin_until(lambda: any(not t.dead for t in cpu.rq))

    def fork(self, cpu):
        mm = mm_alloc(cpu)
        assert mm, "no free mm slot"
        cpu.stats.forks += 1
        cpu.rq.append(self.new_thread(cpu, mm))
        for target in range(1, min(self.threads_per_fork, cpu.ncpus)):
            target = (cpu.id + target) % cpu.ncpus
            mmget(cpu, mm)
            smp_call_function_single(cpu, target, wake_up_new_task, mm)

    def new_thread(self, cpu, mm):
        return Task(-1, "thread", mm, cpu.id)


@dataclass(frozen=True)
class Scenario:
    name: str
    help: str
    processes: int  # mms booted before the CPUs start (slots 1..)
    needs: type | None = None  # the strategy class it is written for (None: any)
    hotplug: bool = False  # a CPU goes down: only strategies with hotplug_safe must stay clean

    def setup(self, state, ncpus):
        """Boot the processes; return each CPU's (tasks, script words)."""
        raise NotImplementedError

    def script(self, state, words):
        return Script(words)

    def applies_to(self, strategy: str) -> bool:
        return self.needs is None or issubclass(strategy_class(strategy), self.needs)


class ExitRace(Scenario):
    def setup(self, state, n):
        mm = boot_mm(state, 1, users=n)
        per_cpu = []
        for c in range(n):
            task = Task(n + c, f"thread{c}", mm, c)
            words = ["wake", "exit"] if c == 0 else ["wake", "sleep", "idle", "wake", "exit", "idle"]
            per_cpu.append(([task], words))
        return per_cpu


class ForkExit(Scenario):
    def setup(self, state, n):
        per_cpu = [([], ["fork", "wake", "exit"])]
        for c in range(1, n):
            per_cpu.append(([], ["wake", "exit", "idle"] if c < 3 else ["idle"]))
        return per_cpu


class DoubleTeardown(Scenario):
    def setup(self, state, n):
        a = boot_mm(state, 1, users=n)
        b = boot_mm(state, 2, users=2)
        per_cpu = [([Task(n, "a0", a, 0), Task(n + 1, "b0", b, 0)], ["wake", "exit", "wake", "exit"])]
        per_cpu.append(([Task(n + 2, "a1", a, 1), Task(n + 3, "b1", b, 1)], ["wake", "exit", "wake", "exit", "idle"]))
        for c in range(2, n):
            per_cpu.append(([Task(n + 2 + c, f"a{c}", a, c)], ["wake", "exit", "idle"]))
        return per_cpu


SITE_STALE_TLB = site("user quantum: runs the mm's user code with its TLB older than a completed flush")


class MunmapScript(Script):
    """Adds `munmap` (a user quantum: flush_tlb_mm_range of the task's mm,
    freeing pages but no page tables) and the check that makes it matter:
    once a flush has returned, the pages may be reused, so no CPU may run
    that mm's user code with an older TLB. The checker's record of completed
    flushes is Python state of the explorer (a function of the flushing
    CPU's history, so the state fingerprint covers it)."""

    def run_task(self, cpu, task):
        completed, memory = cpu.explorer.flushed_tlb_gen, cpu.explorer.memory
        memory.ghost("flushed_tlb_gen", write=False)  # CPUs share the record: the reduction must see it
        # what its TLB holds: its own flushes, or (INVLPGB) the broadcast ones
        seen = tlb_gen_seen(cpu, task.mm & SLOT_MASK)
        if seen < completed.get(task.mm, 0):
            violation(cpu, STALE_TLB, task.mm, seen, SITE_STALE_TLB)
        if self.words[:1] != ["munmap"]:
            return super().run_task(cpu, task)
        self.words.pop(0)
        cpu.stats.ops += 1
        completed[task.mm] = flush_tlb_mm_range(cpu, task.mm)
        memory.ghost("flushed_tlb_gen", write=True)
        return task


class MunmapRace(Scenario):
    """CPU 0's thread unmaps pages of the process (a flush that skips lazy
    CPUs) while the others' threads go lazy and come back to the same mm:
    x86's switch_mm_irqs_off must either be seen non-lazy by the flush (and
    get its IPI) or see the new tlb_gen (the smp_mb between the two)."""

    def setup(self, state, n):
        mm = boot_mm(state, 1, users=n)
        per_cpu = [([Task(n, "thread0", mm, 0)], ["wake", "munmap", "exit"])]
        for c in range(1, n):
            per_cpu.append(([Task(n + c, f"thread{c}", mm, c)],
                            ["wake", "sleep", "idle", "wake", "sleep", "wake", "exit", "idle"]))
        return per_cpu

    def script(self, state, words):
        return MunmapScript(words)


# --- a demonstration of the memory model, not of the lazy-TLB protocol ---------
SITE_HP_READER = site("hazptr_load_try_protect reader: use of the protected mm")


def hazptr_load_try_protect(cpu, a_src: int) -> int:
    """The RFC's generic reader (hp_dereference_allocate in RFC v2 3/4):
    load the source pointer (Load A), publish it in this CPU's hazard slot
    (hp_allocate: Store B; a busy slot fails: no protection, no use), smp_mb
    (which --drop-barrier hazptr_load_try_protect removes), load the source
    again and back off if it changed. Without the barrier x86 lets the
    second load pass the slot store: it can still see the pointer while the
    slot is in the store buffer, when a reclaimer may clear the source and
    scan past the slot. (The lazy-TLB hooks' own smp_mb, RFC v2's, comes
    before their slot store: it orders nothing here.)"""
    mm = cpu.load(a_src)
    if mm == NULL or not hp_allocate(cpu, mm):
        return NULL
    cpu.smp_mb()  # Store B before Load A
    if cpu.load(a_src) != mm:
        cpu.store(cpu.a_hazard, NULL)
        return NULL
    return mm


class HazptrScript(Script):
    """The source task's `exit` first clears its task_struct's mm (the
    source a reader loads); a user quantum `peek` reads that task's mm with
    hazptr_load_try_protect, uses it (a generation-checked dereference) and
    retires its slot (hp_retire: a release store of NULL); `join` waits
    (servicing IPIs) until that mm is freed, as a parent reaps a child, so
    that the reader's own process is torn down after it, not interleaved
    with it (one teardown racing the reader is the demonstration)."""

    def __init__(self, words, a_src: int, src_tid: int, src_slot: int):
        super().__init__(words)
        self.a_src, self.src_tid, self.src_slot = a_src, src_tid, src_slot

    def run_task(self, cpu, task):
        if self.words[:1] == ["peek"]:
            self.words.pop(0)
            cpu.stats.ops += 1
            mm = hazptr_load_try_protect(cpu, self.a_src)
            if mm != NULL:
                deref(cpu, mm, SITE_HP_READER)
                cpu.store(cpu.a_hazard, NULL)
            return task
        if self.words[:1] == ["join"]:
            self.words.pop(0)
            a_gen = cpu.mem.mm_gen[self.src_slot]
            cpu.spin_until(lambda: not cpu.load(a_gen) & 1)  # an even generation: freed
            return task
        if self.words[:1] == ["exit"] and task.tid == self.src_tid:
            cpu.store(self.a_src, NULL)  # exit_mm: current->mm = NULL, then mmput
        return super().run_task(cpu, task)


class HazptrTryProtect(Scenario):
    """CPU 1 runs the only thread of process A and exits: the mm's teardown
    is the reclaimer (__mmdrop -> hp_scan, then free). CPU 0's thread of
    process B reads that task's mm with hazptr_load_try_protect meanwhile: a
    user task, so its hazard slot is free (an idle CPU's holds its lazy mm,
    init_mm included, and hp_allocate would refuse)."""

    def setup(self, state, n):
        a = boot_mm(state, 1, users=1)
        b = boot_mm(state, 2, users=1)
        state.field(state.task, "mm")[n] = a
        return ([([Task(n + 1, "reader", b, 0)], ["wake", "peek", "join", "exit"]),
                 ([Task(n, "thread1", a, 1)], ["wake", "exit"])]
                + [([], ["idle"])] * (n - 2))

    def script(self, state, words):
        return HazptrScript(words, state.addr(state.task, state.ncpus, "mm"), state.ncpus, 1)


# --- CPU hotplug: finish_cpu on a surviving CPU ---------------------------------
class HotplugScript(Script):
    """Adds two idle-quantum words: `down` (cpu_down: this CPU migrates its
    tasks, leaves its lazy mm for init_mm and has the next online CPU run
    finish_cpu for it; it stays offline, getting no IPIs) and `up` (cpu_up)."""

    def wakeup(self, cpu):
        if self.words[:1] == ["down"]:
            self.words.pop(0)
            assert cpu_down(cpu), "the last online CPU"
            return cpu.idle
        if self.words[:1] == ["up"]:
            self.words.pop(0)
            cpu_up(cpu)
            return cpu.idle
        return super().wakeup(cpu)


class Hotplug(Scenario):
    """Every CPU runs a thread of process A. CPU 1's thread exits first (its
    idle task goes on lazily on A), then CPU 1 goes down and comes back up:
    CPU 0, the control CPU, runs finish_cpu for it, while CPU 0's thread,
    having slept (a lazy switch) and woken, exits: the last, it tears A down."""

    def setup(self, state, n):
        mm = boot_mm(state, 1, users=n)
        per_cpu = [([Task(n, "thread0", mm, 0)], ["wake", "sleep", "idle", "wake", "exit", "idle"]),
                   ([Task(n + 1, "thread1", mm, 1)], ["wake", "exit", "down", "up", "idle"])]
        for c in range(2, n):
            per_cpu.append(([Task(n + c, f"thread{c}", mm, c)], ["wake", "exit", "idle"]))
        return per_cpu

    def script(self, state, words):
        return HotplugScript(words)


SCENARIOS = {
    s.name: s
    for s in (
        ExitRace("exit-race", "a lazy switch racing the last thread's exit: every CPU runs a thread of one "
                 "process; CPU 0's exits at once, the others' sleep (lazy switch), wake and exit, then idle lazily",
                 1),
        ForkExit("fork-exit", "CPU 0 forks a process with a thread on up to 2 other CPUs (wake_up_new_task IPI); "
                 "every thread runs and exits, its CPU going idle lazily while the last one tears down", 0),
        DoubleTeardown("double-teardown", "CPU 0 runs a thread of process A then one of B, each the last to exit "
                       "(two teardowns in a row) while CPU 1, whose threads of A and B exit first, goes idle", 2),
        MunmapRace("munmap-race", "CPU 0's thread unmaps pages (flush_tlb_mm_range: lazy CPUs skipped) while "
                   "the other CPUs' threads of the process go lazy and come back; a CPU that runs user code "
                   "with a TLB older than the completed flush is a stale-tlb violation", 1),
        HazptrTryProtect("hazptr-try-protect", "(hazard strategies; a demonstration of --tso, not of the lazy-TLB "
                         "protocol) CPU 0's thread of another process reads the mm of CPU 1's exiting task "
                         "with the RFC's generic hazptr_load_try_protect while CPU 1 tears it down", 2, Hazard),
        Hotplug("hotplug", "CPU 1's thread of a process exits, then CPU 1 goes down (cpu_down; CPU 0 runs "
                "finish_cpu for it) and up again, while CPU 0's thread of the process sleeps, wakes and exits "
                "last, tearing it down", 1, hotplug=True),
    )
}
# The lazy-TLB scenarios without hotplug, which every strategy runs.
LAZY_TLB_SCENARIOS = [name for name, s in SCENARIOS.items() if s.needs is None and not s.hotplug]
