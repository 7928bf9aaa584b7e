"""A deterministic interleaving explorer: every emulated CPU a thread, one
running at a time, control handed over before every shared-memory access.

The kernel and strategy code are the ones the real workers run: each CPU's
atomics (`CPU.load`, `store`, `fetch_add`, ...) are replaced by wrappers that
first offer the scheduler a choice (a *scheduling point*), then do the real
operation on the same SharedState. The interrupt points the workers poll
(`interrupt_point`, the inlined poll in `run_quanta`) are loads of the CPU's
`ipi_pending`, so they are scheduling points too.

Search (stateless model checking, as CHESS): a schedule is the list of
choices made at the points where more than one actor could go. The default
choice keeps the running CPU running; any other choice while it could go on
is a *preemption*. `explore` tries every schedule with at most `bound`
preemptions (depth first, re-running the scenario from scratch for each),
for bounds 0, 1, ... up to the bound, and stops at the first bound that
shows a violation, so the schedule it reports has the fewest preemptions,
and among those the fewest steps found. States are fingerprinted (shared
memory, each CPU's history of (operation, result) -- a CPU's Python state is
a function of what its loads returned -- its store buffer and whether it is
blocked); a state already explored with as few preemptions is not explored
again. `distinct states` counts fingerprints.

Waiting: a CPU that spins (`spin_until`, `idle_until`: IPI acks, hazard
slots, barriers) and finds its condition false is *blocked*: it is not
offered as a choice until some other CPU has made a shared write (a store
reaching memory, an atomic). A spin therefore costs one iteration per write
that might end it, never an unbounded number of schedules. If every CPU left
is blocked, the schedule is a deadlock (the kernel's CSD-lock warning).

Memory model (`tso=True`): each CPU gets an x86-TSO store buffer. A store
goes into its CPU's buffer; a load sees its own CPU's newest buffered store
to that address, else memory; `smp_mb` and every atomic read-modify-write
(x86 `lock`-prefixed) drain the buffer first. The oldest buffered store of a
CPU reaching memory is an actor of its own ("flush CPU n"); by default
stores stay buffered as long as anything else can run (the adversarial
choice), and flushing one earlier costs a preemption. A CPU's buffer drains
when it finishes its program.

Violations: everything the emulator's checker reports (use-after-free on a
probe or dereference, freed-while-loaded, refcount underflow), deadlock, a
crash of the emulated kernel code, a schedule longer than `max_steps`
(livelock), and the end-of-run check (every mm freed, counts zero, every CPU
back on init_mm). A schedule stops at its first violation.
"""
from __future__ import annotations

import json
import random
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

from percpu import _atomic
from percpu.checks import check_end_state, recorded_violations
from percpu.cpu import COUNTERS, CPU, HIST_BUCKETS, HISTOGRAMS
from percpu.mm import boot_mm, mm_alloc, mmget
from percpu.sched import SITE_IDLE_PROBE, Task, boot_idle, do_exit, exit_tasks, has_live_tasks, idle_task_exit, run_quanta
from percpu.smp import smp_call_function_single
from percpu.state import INIT_MM, LOADED_MM_SWITCHING, NULL, SharedState
from percpu.strategies import STRATEGIES
from percpu.strategies.hazard import Hazard
from percpu.tlb import flush_tlb_mm_range
from percpu.violations import STALE_TLB, site
from percpu.workers.pool import _boot_init_mm
from percpu.workloads import wake_up_new_task

FORMAT = "percpu.explore/1"
RMW_OPS = ("fetch_add", "add_return", "dec_and_test", "xchg", "cmpxchg")


# (tests add broken variants to STRATEGIES: look it up at call time)
def strategy_class(name: str):
    return STRATEGIES[name]


def strategy_names() -> list[str]:
    return list(STRATEGIES)


class _Stop(BaseException):
    """Unwinds a CPU thread when its schedule is over (pruned, violated)."""


# --- scenarios ---------------------------------------------------------------
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
        cpu.ops += 1
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
        cpu.forks += 1
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
        completed = cpu.explorer.flushed_tlb_gen
        if cpu.loaded_tlb_gen < completed.get(task.mm, 0):
            cpu.violation(STALE_TLB, task.mm, cpu.loaded_tlb_gen, SITE_STALE_TLB)
        if self.words[:1] != ["munmap"]:
            return super().run_task(cpu, task)
        self.words.pop(0)
        cpu.ops += 1
        completed[task.mm] = flush_tlb_mm_range(cpu, task.mm)
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
    """The RFC's generic reader: load the source pointer, publish it in this
    CPU's hazard slot (the strategy's slot store and its smp_mb, which
    --drop-barrier mmgrab_lazy_tlb removes), load the source again and back off if it
    changed. Without the barrier x86 lets the second load pass the slot
    store: it can still see the pointer while the slot is in the store
    buffer, when a reclaimer may clear the source and scan past the slot."""
    mm = cpu.load(a_src)
    if mm == NULL:
        return NULL
    cpu.strategy.mmgrab_lazy_tlb(cpu, mm)
    if cpu.load(a_src) != mm:
        cpu.strategy.mmdrop_lazy_tlb(cpu, mm)
        return NULL
    return mm


class HazptrScript(Script):
    """The exiting task clears its task_struct's mm (the source a reader
    loads) before do_exit; an idle quantum `peek` reads that task's mm with
    hazptr_load_try_protect, uses it (a generation-checked dereference) and
    clears its slot."""

    def __init__(self, words, a_src: int):
        super().__init__(words)
        self.a_src = a_src

    def run_task(self, cpu, task):
        if self.words[:1] == ["exit"]:
            cpu.store(self.a_src, NULL)  # exit_mm: current->mm = NULL, then mmput
        return super().run_task(cpu, task)

    def wakeup(self, cpu):
        if self.words[:1] != ["peek"]:
            return super().wakeup(cpu)
        self.words.pop(0)
        mm = hazptr_load_try_protect(cpu, self.a_src)
        if mm != NULL:
            cpu.deref(mm, SITE_HP_READER)
            cpu.strategy.mmdrop_lazy_tlb(cpu, mm)
        return cpu.idle


class HazptrTryProtect(Scenario):
    """CPU 1 runs the only thread of a process and exits: the mm's teardown
    is the reclaimer (__mmdrop -> hp_scan, then free). CPU 0 reads that
    task's mm with hazptr_load_try_protect while it exits."""

    def setup(self, state, n):
        mm = boot_mm(state, 1, users=1)
        state.field(state.task, "mm")[n] = mm
        return [([], ["peek"]), ([Task(n, "thread1", mm, 1)], ["wake", "exit"])] + [([], ["idle"])] * (n - 2)

    def script(self, state, words):
        return HazptrScript(words, state.addr(state.task, state.ncpus, "mm"))


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
                         "protocol) CPU 0 reads the mm of CPU 1's exiting task with the RFC's generic "
                         "hazptr_load_try_protect while CPU 1 tears it down", 1, Hazard),
    )
}
# The lazy-TLB scenarios, which every strategy runs.
LAZY_TLB_SCENARIOS = [name for name, s in SCENARIOS.items() if s.needs is None]


# --- the scheduler ------------------------------------------------------------
RUNNABLE, BLOCKED, DONE = 0, 1, 2


@dataclass
class Step:
    actor: int  # CPU id, or ncpus + id for a store-buffer flush
    op: str
    addr: int
    args: tuple
    result: object
    where: str


@dataclass
class Result:
    outcome: str  # "ok", "violation", "pruned", "step-bound"
    choices: list  # the choice made at every decision point
    decisions: list  # (options, default, chosen, cost_before, current_enabled)
    steps: list
    violations: list = field(default_factory=list)
    preemptions: int = 0
    barriers_dropped: int = 0


class ExplorerCPU(CPU):
    """A CPU whose waits block in the explorer instead of spinning."""

    __slots__ = ("explorer",)

    def spin_until(self, done, timeout_ns: int = 0, timeout_site: int = 0, target: int = -1) -> None:
        self._wait(done, None)

    def idle_until(self, done, site: int) -> None:
        self._wait(done, site)

    def _wait(self, done, probe_site) -> None:
        x = self.explorer
        while True:
            epoch, history, ipi_seen = x.write_epoch, x.history[self.id], self.ipi_seen
            if done():
                return
            self.interrupt_point()
            if probe_site is not None and self.is_lazy:
                self.probe(probe_site)
            # a failed try that took no IPI left this CPU as it was (a probe
            # that finds a violation ends the schedule): forget its loads
            x.block(self.id, epoch, history if self.ipi_seen == ipi_seen else None)

    def heartbeat(self) -> None:
        pass

    def housekeeping(self) -> None:
        pass


_NOT_KERNEL = {"cpu_thread", "execute", "run", "_bootstrap_inner", "_bootstrap", "<lambda>", "<genexpr>"}


def _where(frame) -> str:
    """The emulated kernel functions around an access, innermost last."""
    names = []
    while frame is not None and len(names) < 3:
        name = frame.f_code.co_name
        if name not in _NOT_KERNEL:
            names.append(name)
        frame = frame.f_back
    return " > ".join(reversed(names))


class Run:
    """One schedule of one scenario: threads, wrappers, choices."""

    def __init__(self, cfg: "Config", state: SharedState, prefix, chooser=None, visited=None, bound=None,
                 fingerprints=None):
        self.cfg, self.state, self.n = cfg, state, cfg.cpus
        self.prefix, self.chooser, self.visited, self.bound = prefix, chooser, visited, bound
        self.fingerprints = fingerprints
        n = self.n
        self.locks = [threading.Lock() for _ in range(n)]
        for lock in self.locks:
            lock.acquire()
        self.done = threading.Lock()
        self.done.acquire()
        self.status = [RUNNABLE] * n
        self.block_epoch = [0] * n
        self.write_epoch = 0
        self.current = 0
        self.buffers = [[] for _ in range(n)]
        self.history = [0] * n
        self.decisions: list = []
        self.steps: list[Step] = []
        self.preemptions = 0
        self.stopped = False
        self.outcome = "ok"
        self.extra_violations: list = []
        self.a_violations = state.addr(state.control, 0, "violations")
        lo = state._table_base["control"]
        hi = state._table_base["ipi"] + state.ipi.count * state.ipi.stride
        self.observed_lo, self.observed_hi = state.base + lo, state.base + hi
        self.mem_lo, self.mem_hi = lo, hi
        self.unobserved = {self.a_violations}
        self.flushed_tlb_gen: dict = {}  # the checker's: per mm, the newest completed flush (MunmapScript)
        self.barriers_dropped = 0

    # -- choices ---------------------------------------------------------------
    def enabled(self):
        out = []
        for c in range(self.n):
            st = self.status[c]
            if st == RUNNABLE or (st == BLOCKED and self.write_epoch > self.block_epoch[c]):
                out.append(c)
        if self.cfg.tso:
            out.extend(self.n + c for c in range(self.n) if self.buffers[c])
        return out

    def fingerprint(self):
        mem = bytes(self.state._map[self.mem_lo:self.mem_hi])
        cpus = tuple(
            (self.history[c], self.status[c] == BLOCKED and self.write_epoch <= self.block_epoch[c],
             self.status[c], tuple(self.buffers[c]))
            for c in range(self.n)
        )
        return hash((mem, cpus))

    def decide(self):
        """Pick the next actor (None: the schedule is over)."""
        while True:
            options = self.enabled()
            cur = self.current
            cpus = [o for o in options if o < self.n]
            if not options:
                if any(s != DONE for s in self.status):
                    waiting = [c for c in range(self.n) if self.status[c] != DONE]
                    self._fail("deadlock", f"CPUs {waiting} wait forever (every CPU left is blocked)")
                return None
            if len(self.steps) >= self.cfg.max_steps:
                self.outcome = "step-bound"
                self._fail("livelock", f"schedule longer than {self.cfg.max_steps} steps")
                return None
            cur_can_go = cur in cpus
            default = cur if cur_can_go else (cpus[0] if cpus else options[0])
            if len(options) == 1:
                chosen = default
            else:
                index = len(self.decisions)
                if index >= len(self.prefix) and self.visited is not None:
                    fp = self.fingerprint()
                    self.fingerprints.add(fp)
                    key = (fp, cur if cur_can_go else -1)
                    seen = self.visited.get(key)
                    if seen is not None and seen <= self.preemptions:
                        self.outcome = "pruned"
                        return None
                    self.visited[key] = self.preemptions
                elif self.fingerprints is not None:
                    self.fingerprints.add(self.fingerprint())
                if index < len(self.prefix):
                    chosen = self.prefix[index]
                    if chosen not in options:
                        raise ReplayDiverged(f"decision {index}: {chosen} is not one of {options}")
                elif self.chooser is not None:
                    chosen = self.chooser(options, default)
                else:
                    chosen = default
                cost = 1 if (chosen != default and cur_can_go) else 0
                self.decisions.append((options, default, chosen, self.preemptions, cur_can_go))
                self.preemptions += cost
            if chosen >= self.n:  # a store reaches memory
                self._flush_one(chosen - self.n, chosen)
                continue
            return chosen

    def _flush_one(self, c, actor):
        addr, value = self.buffers[c].pop(0)
        _atomic.store_release(addr, value)
        self.write_epoch += 1
        self.steps.append(Step(actor, "flush", addr, (value,), None, "store buffer"))

    def _drain(self, c):
        drained = len(self.buffers[c])
        while self.buffers[c]:
            addr, value = self.buffers[c].pop(0)
            _atomic.store_release(addr, value)
            self.write_epoch += 1
        return drained

    def _fail(self, kind, message):
        self.extra_violations.append({"kind": kind, "message": message})

    def switch_to(self, me, actor):
        """Hand the (one) running slot from CPU `me` to `actor`."""
        if actor is None:
            self.stopped = True
            for lock in self.locks:
                if lock.locked():
                    try:
                        lock.release()
                    except RuntimeError:
                        pass
            self.done.release()
            if me is not None:
                raise _Stop()
            return
        self.current = actor
        if actor == me:
            return
        self.locks[actor].release()
        if me is not None:
            self.locks[me].acquire()
            if self.stopped:
                raise _Stop()

    def point(self, c):
        """A scheduling point of CPU c, before its next shared access."""
        if self.stopped:
            raise _Stop()
        if _atomic.load_acquire(self.a_violations):
            self.outcome = "violation"
            self.switch_to(c, None)
        self.switch_to(c, self.decide())

    def block(self, c, epoch, history=None):
        if self.stopped:
            raise _Stop()
        if history is not None:
            self.history[c] = history
        self.status[c] = BLOCKED
        self.block_epoch[c] = epoch
        self.switch_to(c, self.decide())
        self.status[c] = RUNNABLE  # it runs again: it was woken (or never slept)

    def record(self, c, op, addr, args, result):
        self.history[c] = hash((self.history[c], op, addr - self.observed_lo if addr else 0, args, result))
        self.steps.append(Step(c, op, addr, args, result, _where(sys._getframe(2))))

    # -- wrappers -------------------------------------------------------------
    def wrap(self, cpu):
        c, tso, buffers, drop = cpu.id, self.cfg.tso, self.buffers, self.cfg.drop_barrier
        lo, hi, unobserved = self.observed_lo, self.observed_hi, self.unobserved
        run = self

        def observed(addr):
            return lo <= addr < hi and addr not in unobserved

        def load(addr):
            if not observed(addr):
                return _atomic.load_acquire(addr)
            run.point(c)
            value = None
            if tso:
                for a, v in reversed(buffers[c]):
                    if a == addr:
                        value = v
                        break
            if value is None:
                value = _atomic.load_acquire(addr)
            run.record(c, "load", addr, (), value)
            return value

        def store(addr, value):
            if not observed(addr):
                return _atomic.store_release(addr, value)
            run.point(c)
            if tso:
                buffers[c].append((addr, value))
            else:
                _atomic.store_release(addr, value)
                run.write_epoch += 1
            run.record(c, "store", addr, (value,), None)

        def rmw(op):
            real = getattr(_atomic, op)

            def atomic(addr, *args):
                if not observed(addr):
                    return real(addr, *args)
                run.point(c)
                drained = run._drain(c) if tso else 0
                result = real(addr, *args)
                run.write_epoch += 1
                run.record(c, op if not drained else f"{op} (drains {drained})", addr, args, result)
                return result

            return atomic

        def smp_mb():
            if drop and sys._getframe(1).f_code.co_name == drop:
                run.barriers_dropped += 1  # as if the line were not there: not even a scheduling point
                return
            run.point(c)
            drained = run._drain(c) if tso else 0
            run.record(c, "smp_mb" if not drained else f"smp_mb (drains {drained})", 0, (), None)

        cpu.load, cpu.store, cpu.smp_mb = load, store, smp_mb
        for op in RMW_OPS:
            setattr(cpu, op, rmw(op))
        cpu.cpu_relax = lambda: None

    # -- the CPUs --------------------------------------------------------------
    def cpu_thread(self, cpu, words):
        c = cpu.id
        try:
            self.locks[c].acquire()
            if self.stopped:
                return
            self.program(cpu, words)
            self.status[c] = DONE
            if self.cfg.tso and self.buffers[c]:
                self._drain(c)
            self.switch_to(c, self.decide())
        except _Stop:
            pass
        except ReplayDiverged as exc:
            self.crash = exc
            self._stop_from(c)
        except BaseException:
            self._fail("crash", f"CPU {c}: " + traceback.format_exc(limit=8))
            self.outcome = "violation"
            self._stop_from(c)

    def _stop_from(self, c):
        if not self.stopped:
            try:
                self.switch_to(c, None)
            except _Stop:
                pass

    def program(self, cpu, words):
        state, n = self.state, self.n
        run_quanta(cpu, cpu.workload, 1 << 30)
        if has_live_tasks(cpu):
            exit_tasks(cpu)
        _barrier(cpu, state.addr(state.control, 0, "exited"), n)
        if has_live_tasks(cpu):
            exit_tasks(cpu)
        idle_task_exit(cpu)
        _barrier(cpu, state.addr(state.control, 0, "offline"), n)

    def execute(self):
        cfg, state, n = self.cfg, self.state, self.n
        state.words[:] = 0
        _boot_init_mm(state)
        scenario = SCENARIOS[cfg.scenario]
        per_cpu = scenario.setup(state, n)
        cls = strategy_class(cfg.strategy)
        cpus = []
        for c in range(n):
            cpu = ExplorerCPU(state, c, cls(), cpumask_clear_on_switch=cfg.cpumask == "eager")
            cpu.explorer = self
            boot_idle(cpu, Task(c, f"swapper/{c}", NULL, c))
            cpu.store(cpu.a_online, 1)
            tasks, words = per_cpu[c]
            scenario.script(state, words).attach(cpu, tasks)
            self.wrap(cpu)
            cpus.append(cpu)
        self.crash = None
        threads = [threading.Thread(target=self.cpu_thread, args=(cpu, per_cpu[cpu.id][1]), daemon=True)
                   for cpu in cpus]
        for t in threads:
            t.start()
        self.switch_to(None, 0)  # CPU 0 first; its first access is the first decision
        if not self.done.acquire(timeout=120):
            raise RuntimeError("explorer: a schedule hung")
        for t in threads:
            t.join()
        if self.crash is not None:
            raise self.crash
        violations = list(self.extra_violations)
        total, found = recorded_violations(state)
        violations.extend(found)
        if self.outcome == "ok" and not violations:
            violations.extend(check_end_state(state))
        if violations and self.outcome != "pruned":
            self.outcome = "violation"
        elif self.outcome == "pruned":
            violations = []
        return Result(self.outcome, [d[2] for d in self.decisions], self.decisions, self.steps, violations,
                      self.preemptions, self.barriers_dropped)


def _barrier(cpu, a_count, n):
    cpu.fetch_add(a_count, 1)
    load = cpu.load
    cpu.idle_until(lambda: load(a_count) >= n, SITE_IDLE_PROBE)


class ReplayDiverged(Exception):
    """A replayed schedule asked for a choice that is not possible."""


# --- the search -----------------------------------------------------------------
@dataclass
class Config:
    strategy: str
    scenario: str
    cpus: int = 2
    tso: bool = False
    cpumask: str = "eager"
    max_steps: int = 5000
    drop_barrier: str = ""  # a kernel function whose smp_mb() calls are removed


def make_state(cfg: Config) -> SharedState:
    return SharedState(ncpus=cfg.cpus, nmm=2 + 2 * cfg.cpus, ntasks=4 * cfg.cpus + 4, npipes=0,
                       counters=COUNTERS, hist_buckets=len(HISTOGRAMS) * HIST_BUCKETS)


@dataclass
class Report:
    config: Config
    mode: str  # "exhaustive" or "random"
    bound: int  # preemption bound explored (exhaustive)
    schedules: int = 0
    complete: int = 0
    pruned: int = 0
    states: int = 0
    seconds: float = 0.0
    exhausted: bool = False  # every schedule within the bound was explored
    violating_schedules: int = 0
    barriers_dropped: int = 0  # smp_mb() calls removed by Config.drop_barrier, over all schedules
    best: Result | None = None

    def count(self, result: Result) -> None:
        """Account one schedule's result."""
        self.schedules += 1
        self.barriers_dropped += result.barriers_dropped
        if result.outcome == "pruned":
            self.pruned += 1
        else:
            self.complete += 1
        if result.outcome == "violation":
            self.violating_schedules += 1
            if _better(result, self.best):
                self.best = result


class _Node:
    """A decision point of the depth-first search."""

    __slots__ = ("options", "default", "cost_before", "cur_can_go", "chosen", "tried")

    def __init__(self, options, default, cost_before, cur_can_go, chosen):
        self.options, self.default, self.cost_before = options, default, cost_before
        self.cur_can_go, self.chosen, self.tried = cur_can_go, chosen, {chosen}

    def next_alternative(self, bound):
        for o in self.options:
            cost = 1 if (o != self.default and self.cur_can_go) else 0
            if o not in self.tried and self.cost_before + cost <= bound:
                self.tried.add(o)
                self.chosen = o
                return o
        return None


def _better(a: Result, b: Result | None) -> bool:
    return b is None or (a.preemptions, len(a.steps)) < (b.preemptions, len(b.steps))


def explore(cfg: Config, bound: int = 2, max_schedules: int = 20000, progress=None) -> Report:
    """Exhaustive search with preemption bounds 0..bound, stopping at the
    first bound with a violation."""
    state = make_state(cfg)
    start = time.perf_counter()
    report = Report(cfg, "exhaustive", bound)
    fingerprints: set = set()
    try:
        for b in range(bound + 1):
            report.bound = b
            visited: dict = {}
            stack: list[_Node] = []
            prefix: list = []
            while True:
                if report.schedules >= max_schedules:
                    report.exhausted = False
                    return report
                result = Run(cfg, state, prefix, visited=visited, bound=b, fingerprints=fingerprints).execute()
                report.count(result)
                if progress is not None:
                    progress(report)
                for options, default, chosen, cost_before, cur_can_go in result.decisions[len(prefix):]:
                    stack.append(_Node(options, default, cost_before, cur_can_go, chosen))
                prefix = None
                while stack:
                    alternative = stack[-1].next_alternative(b)
                    if alternative is not None:
                        prefix = [node.chosen for node in stack]
                        break
                    stack.pop()
                if prefix is None:
                    break
            if report.best is not None:
                break
        report.exhausted = True
        return report
    finally:
        report.states = len(fingerprints)
        report.seconds = time.perf_counter() - start
        state.close()


def explore_random(cfg: Config, schedules: int, seed: int = 1, switch_probability: float = 0.1,
                   progress=None) -> Report:
    """Random schedules: at each decision, a random actor with the given
    probability, else the default."""
    state = make_state(cfg)
    rng = random.Random(seed)
    start = time.perf_counter()
    report = Report(cfg, "random", -1)
    fingerprints: set = set()

    def chooser(options, default):
        return rng.choice(options) if rng.random() < switch_probability else default

    try:
        for _ in range(schedules):
            result = Run(cfg, state, [], chooser=chooser, fingerprints=fingerprints).execute()
            report.count(result)
            if progress is not None:
                progress(report)
        return report
    finally:
        report.states = len(fingerprints)
        report.seconds = time.perf_counter() - start
        state.close()


def replay(cfg: Config, choices: list) -> Result:
    state = make_state(cfg)
    try:
        return Run(cfg, state, list(choices)).execute()
    finally:
        state.close()


# --- reading a schedule -----------------------------------------------------------
def address_names(state: SharedState) -> dict[int, str]:
    """Raw address -> kernel-ish name (mm[1].mm_count, cpu1.hazard, ...)."""
    names = {}
    n = state.ncpus
    for i in range(state.mm.count):
        for f in state.mm.offsets:
            names[state.addr(state.mm, i, f)] = f"mm{i}.{f}" if i else f"init_mm.{f}"
    for c in range(n):
        for f in state.cpu.offsets:
            names[state.addr(state.cpu, c, f)] = f"cpu{c}.{f}"
    for tgt in range(n):
        for snd in range(n):
            for f in state.ipi.offsets:
                names[state.addr(state.ipi, tgt * n + snd, f)] = f"csd[{snd}->{tgt}].{f}"
    for t in range(state.task.count):
        names[state.addr(state.task, t, "mm")] = f"task{t}.mm"
    for f in state.control.offsets:
        names[state.addr(state.control, 0, f)] = f"control.{f}"
    return names


def value_name(value, field: str = "") -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if field.endswith(("loaded_mm", "hazard", "lazy_mm", "mm_to_mmdrop", ".mm")) and value in (NULL, LOADED_MM_SWITCHING):
        return "NULL" if value == NULL else "LOADED_MM_SWITCHING"
    if value == INIT_MM:
        return "init_mm"
    if value >= 1 << 32:
        return f"mm{value & 0xFFFFFFFF}(gen {value >> 32})"
    return str(value)


def describe(step: Step, names: dict, ncpus: int) -> str:
    addr = names.get(step.addr, hex(step.addr)) if step.addr else ""
    op = step.op
    if op == "flush":
        return f"(store buffer) {addr} = {value_name(step.args[0], addr)} reaches memory"
    if op.startswith("smp_mb"):
        text = op
    elif op == "load":
        text = f"load {addr} -> {value_name(step.result, addr)}"
    elif op == "store":
        text = f"store {addr} = {value_name(step.args[0], addr)}"
    else:
        args = ", ".join(value_name(a) for a in step.args)
        text = f"{op.split(' ')[0]}({addr}{', ' if args else ''}{args}) -> {value_name(step.result)}"
        if "drains" in op:
            text += " " + op[op.index("("):]
    return f"{text}   [{step.where}]"


def listing(result: Result, ncpus: int, names: dict) -> list[str]:
    """The schedule as numbered steps, one column per CPU (store-buffer
    flushes in their CPU's column); '>>' marks a switch between CPUs that
    the schedule chose (a preemption or a wakeup)."""
    lines = []
    prev = None
    for i, step in enumerate(result.steps, 1):
        c = step.actor if step.actor < ncpus else step.actor - ncpus
        text = describe(step, names, ncpus)
        mark = ">>" if prev is not None and c != prev else "  "
        prev = c
        lines.append(f"{i:5d} {mark} {'  ' * c}CPU{c}{'  ' * (ncpus - 1 - c)}  {text}")
    return lines


def schedule_document(result: Result, cfg: Config, report: Report | None = None) -> dict:
    return {
        "format": FORMAT,
        "strategy": cfg.strategy,
        "scenario": cfg.scenario,
        "cpus": cfg.cpus,
        "tso": cfg.tso,
        "cpumask": cfg.cpumask,
        "max_steps": cfg.max_steps,
        "drop_barrier": cfg.drop_barrier,
        "choices": result.choices,
        "preemptions": result.preemptions,
        "steps": len(result.steps),
        "violations": [{k: v for k, v in viol.items() if k in ("kind", "cpu", "mm_slot", "site", "message")}
                       for viol in result.violations],
        "explored": None if report is None else {"schedules": report.schedules, "states": report.states,
                                                 "bound": report.bound},
    }


def load_schedule(path: str) -> tuple[Config, list]:
    with open(path) as f:
        doc = json.load(f)
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} schedule")
    cfg = Config(doc["strategy"], doc["scenario"], doc["cpus"], tso=doc.get("tso", False),
                 cpumask=doc.get("cpumask", "eager"), max_steps=doc.get("max_steps", 5000),
                 drop_barrier=doc.get("drop_barrier", ""))
    return cfg, doc
