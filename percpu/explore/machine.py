"""Harness: the explorer's machine. Every emulated CPU is a thread, one
running at a time, control handed over before every shared-memory access.

The kernel and strategy code are the ones the real workers run: each CPU's
atomics (`CPU.load`, `store`, `fetch_add`, ...) are replaced by wrappers that
first offer the scheduler a choice (a *scheduling point*), then do the real
operation on the same SharedState. The interrupt points the workers poll
(`interrupt_point`, the inlined poll in `run_quanta`) are loads of the CPU's
`ipi_pending`, so they are scheduling points too.

Waiting: a CPU that spins (`spin_until`, `idle_until`: IPI acks, hazard
slots, barriers) and finds its condition false is *blocked*: it is not
offered as a choice until a word that its failed try read has been written
(a store reaching memory, an atomic; any word, if the try took an IPI). A
spin therefore costs one iteration per write that might end it, never an
unbounded number of schedules. If every CPU left
is blocked, the schedule is a deadlock (the kernel's CSD-lock warning).

Memory model (`tso=True`): each CPU gets an x86-TSO store buffer. A store
goes into its CPU's buffer; a load sees its own CPU's newest buffered store
to that address, else memory; `smp_mb` and every atomic read-modify-write
(x86 `lock`-prefixed) drain the buffer first. The oldest buffered store of a
CPU reaching memory is an actor of its own ("flush CPU n"); by default
stores stay buffered as long as anything else can run (the adversarial
choice), and flushing one earlier costs a preemption. A flush is offered
only where it can matter (`NextSteps.flush_matters`: another CPU's
next access, or another buffer, touches one of its words) or costs
nothing; a flush commutes with every other step, so that loses nothing. A store still buffered
when its CPU's program ends reaches memory as a choice of its own too, so
another CPU may read around it as long as it stays buffered (x86 has no
drain at the end of a program: store buffering outlives it).

Partial-order reduction: every actor's step between two scheduling points
is a `Transition`, the shared words it read and wrote (a CPU's store into its
own buffer touches nothing shared; a flush and its CPU's drain both touch
that buffer), whether it started a wait's try (it read the write epoch that
decides when a blocked CPU wakes) and whether a write reached memory. Two
transitions that touch no common word, or only read it, commute: the
sleep-set search (percpu/explore/por.py) explores one order of them.

Violations: everything the emulator's checker reports (use-after-free on a
probe or dereference, freed-while-loaded, refcount underflow), deadlock, a
crash of the emulated kernel code, a schedule longer than `max_steps`
(livelock), and the end-of-run check (every mm freed, counts zero, every CPU
back on init_mm). A schedule stops at its first violation.
"""
from __future__ import annotations

import sys
import threading
import traceback
from dataclasses import dataclass, field

from percpu.linux.include_.linux.sched import Task
from percpu.linux.include_.linux.version import kernel_for
from percpu.linux.init.main import start_kernel
from percpu.linux.kernel.cpu import offline_at_end
from percpu.linux.kernel.sched.core import SITE_IDLE_PROBE, boot_idle, exit_tasks, has_live_tasks, run_quanta
from percpu.linux.kernel.smp import flush_smp_call_function_queue
from percpu.machine import _atomic
from percpu.machine.addresses import Addresses
from percpu.machine.checker import check_end_state, probe, recorded_violations
from percpu.machine.context import COMPILED, CPU
from percpu.machine.segment import NULL, SharedState
from percpu.explore.scenarios import SCENARIOS, strategy_class

RMW_OPS = ("fetch_add", "add_return", "dec_and_test", "xchg", "cmpxchg", "fetch_or", "fetch_and")
RUNNABLE, BLOCKED, DONE = 0, 1, 2


class _Stop(BaseException):
    """Unwinds a CPU thread when its schedule is over (pruned, violated)."""


class ReplayDiverged(Exception):
    """A replayed schedule asked for a choice that is not possible."""


@dataclass(frozen=True)
class Transition:
    """What one actor's step between two scheduling points touched."""

    actor: int
    reads: frozenset
    writes: frozenset
    waits: bool  # began a wait's try: it read the write epoch
    bumps: bool  # a write reached memory (bumping the write epoch)

    def dependent(self, other: "Transition") -> bool:
        """Whether the order of the two can matter (else they commute)."""
        if self.writes & other.writes or self.writes & other.reads or other.writes & self.reads:
            return True
        return (self.waits and other.bumps) or (other.waits and self.bumps)


@dataclass
class Step:
    actor: int  # CPU id, or ncpus + id for a store-buffer flush
    op: str
    addr: int
    args: tuple
    result: object
    frame: object  # the access's caller (its emulated kernel functions are named on demand), or a name

    @property
    def where(self) -> str:
        return self.frame if isinstance(self.frame, str) else _where(self.frame)


@dataclass
class Result:
    outcome: str  # "ok", "violation", "pruned", "step-bound"
    choices: list  # the choice made at every decision point
    decisions: list  # (options, default, chosen, cost_before, current_enabled)
    steps: list
    violations: list = field(default_factory=list)
    preemptions: int = 0
    barriers_dropped: int = 0
    final: object = None  # the end state of a schedule that ran to its end (hashable), else None
    execution: object = None  # which write each read saw and the order of writes, where the machine names them


class ExplorerWaits:
    """A CPU's waits that block in the explorer instead of spinning."""

    __slots__ = ()

    def spin_until(self, done, timeout_ns: int = 0, timeout_site: int = 0, target: int = -1) -> None:
        self._wait(done, None)

    def idle_until(self, done, site: int) -> None:
        self._wait(done, site)

    def _wait(self, done, probe_site) -> None:
        memory, sched = self.explorer.memory, self.explorer.sched
        c = self.id
        while True:
            memory.waits = True  # a write reaching memory from now on wakes this try
            epoch, history, ipi_seen = memory.write_epoch, memory.history[c], self.ipi_seen
            memory.try_reads[c] = tried = set()
            if done():
                memory.try_reads[c] = None
                return
            self.interrupt_point()
            if probe_site is not None and self.is_lazy:
                probe(self, probe_site)
            memory.try_reads[c] = None
            # a failed try that took no IPI left this CPU as it was (a probe
            # that finds a violation ends the schedule): forget its loads,
            # and only a write to a word it read can make the next try differ;
            # one that took an IPI changed this CPU: any write wakes it
            if self.ipi_seen == ipi_seen:
                sched.block(c, epoch, history, frozenset(tried))
            else:
                sched.block(c, epoch)

    def heartbeat(self) -> None:
        pass

    def housekeeping(self) -> None:
        pass


# The explorer substitutes a CPU's atomics and waits: the interpreted
# engine's CPU allows it, the compiled one's (final, inline C) does not.
if COMPILED:
    ExplorerCPU = None
else:
    class ExplorerCPU(ExplorerWaits, CPU):
        __slots__ = ("explorer",)


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


class Memory:
    """Shared memory as the CPUs of one schedule see it: `raw[lo:hi]`, the
    observed words (at raw addresses from `base + lo`), each CPU's store
    buffer, each CPU's history of (access, result) -- a CPU's Python state is
    a function of what its loads returned -- the log of steps, and what the
    step in progress touched (`take`). The kernel's memory is the segment's
    kernel tables; the checker's violation counter (`a_violations`) is not
    observed."""

    def __init__(self, raw, base: int, lo: int, hi: int, n: int, tso: bool, a_violations: int = 0,
                 a_records: int = 0):
        self.raw, self.tso = raw, tso
        self.buffers = [[] for _ in range(n)]
        self.history = [0] * n
        self.write_epoch = 0  # bumped by every write that reaches memory
        self.written_at: dict = {}  # word -> the epoch of its last write
        self.steps: list[Step] = []
        self.barriers_dropped = 0  # smp_mb() calls removed (install_atomics)
        self.a_violations = a_violations
        self.observed_lo, self.observed_hi = base + lo, base + hi
        self.mem_lo, self.mem_hi = lo, hi
        # the checker's counters (a violation ends the schedule; records count WARNs too)
        self.unobserved = {a for a in (a_violations, a_records) if a}
        self.reads: set = set()
        self.writes: set = set()
        self.waits = False
        self._epoch_mark = 0
        self.try_reads: list = [None] * n  # per CPU in a wait's try: the words it has read so far

    @classmethod
    def of_segment(cls, state: SharedState, n: int, tso: bool) -> "Memory":
        """The kernel's tables, from `control` to the IPI slots."""
        lo = state._table_base["control"]
        hi = state._table_base["ipi"] + state.ipi.count * state.ipi.stride
        return cls(state._map, state.base, lo, hi, n, tso, state.addr(state.control, 0, "violations"),
                   state.addr(state.control, 0, "records"))

    def observed(self, addr: int) -> bool:
        return self.observed_lo <= addr < self.observed_hi and addr not in self.unobserved

    def violated(self) -> bool:
        return bool(self.a_violations) and bool(_atomic.load_acquire(self.a_violations))

    def snapshot(self) -> bytes:
        return bytes(self.raw[self.mem_lo:self.mem_hi])

    def started(self, c: int) -> None:
        """A CPU's first step: from now on it is not the CPU that has not started."""
        self.history[c] = hash(("started", c))

    def record(self, c, op, addr, args, result):
        self.history[c] = hash((self.history[c], op, addr - self.observed_lo if addr else 0, args, result))
        self.steps.append(Step(c, op, addr, args, result, sys._getframe(2)))

    def write(self, addr, value):
        """A store reaching memory."""
        _atomic.store_release(addr, value)
        self.wrote(addr)

    def wrote(self, addr):
        self.write_epoch += 1
        self.written_at[addr] = self.write_epoch
        self.writes.add(addr)

    def ghost(self, key, write: bool) -> None:
        """Python state that CPUs share outside memory (a checker's record):
        an access of the step in progress, for the reduction."""
        (self.writes if write else self.reads).add(("ghost", key))

    def flush_one(self, c, actor):
        addr, value = self.buffers[c].pop(0)
        self.write(addr, value)
        self.writes.add(("buffer", c))
        self.steps.append(Step(actor, "flush", addr, (value,), None, "store buffer"))

    def drain(self, c):
        drained = len(self.buffers[c])
        while self.buffers[c]:
            self.write(*self.buffers[c].pop(0))
        if drained:
            self.writes.add(("buffer", c))
        return drained

    def take(self, actor: int) -> Transition:
        """The step `actor` just finished; the next one starts empty."""
        t = Transition(actor, frozenset(self.reads), frozenset(self.writes), self.waits,
                       self.write_epoch != self._epoch_mark)
        self.reads.clear()
        self.writes.clear()
        self.waits = False
        self._epoch_mark = self.write_epoch
        return t


def install_atomics(cpu, memory: Memory, point, drop_barrier: str) -> None:
    """Replace `cpu`'s atomics by wrappers: each observed access is first a
    scheduling point (`point(c)`), then done on memory (through the store
    buffer under TSO) and logged. An smp_mb() called by `drop_barrier` is not
    there at all (memory.barriers_dropped counts them)."""
    c, tso, buffers = cpu.id, memory.tso, memory.buffers
    observed, record, reads, try_reads = memory.observed, memory.record, memory.reads, memory.try_reads

    def load(addr):
        if not observed(addr):
            return _atomic.load_acquire(addr)
        point(c, addr)
        reads.add(addr)
        if try_reads[c] is not None:
            try_reads[c].add(addr)
        value = None
        if tso:
            for a, v in reversed(buffers[c]):
                if a == addr:
                    value = v
                    break
        if value is None:
            value = _atomic.load_acquire(addr)
        record(c, "load", addr, (), value)
        return value

    def store(addr, value):
        if not observed(addr):
            return _atomic.store_release(addr, value)
        point(c, 0 if tso else addr)  # under TSO it goes into its own buffer: nobody else's business yet
        if tso:
            buffers[c].append((addr, value))  # its own buffer: nothing shared is touched yet
        else:
            memory.write(addr, value)
        record(c, "store", addr, (value,), None)

    def rmw(op):
        real = getattr(_atomic, op)

        def atomic(addr, *args):
            if not observed(addr):
                return real(addr, *args)
            point(c, addr, True)
            drained = memory.drain(c) if tso else 0
            result = real(addr, *args)
            memory.wrote(addr)
            reads.add(addr)
            record(c, op if not drained else f"{op} (drains {drained})", addr, args, result)
            return result

        return atomic

    def smp_mb():
        if drop_barrier and sys._getframe(1).f_code.co_name == drop_barrier:
            memory.barriers_dropped += 1  # as if the line were not there: not even a scheduling point
            return
        point(c, 0, True)
        drained = memory.drain(c) if tso else 0
        record(c, "smp_mb" if not drained else f"smp_mb (drains {drained})", 0, (), None)

    cpu.load, cpu.store, cpu.smp_mb = load, store, smp_mb
    for op in RMW_OPS:
        setattr(cpu, op, rmw(op))
    cpu.cpu_relax = lambda: None


class Handoff:
    """The one running slot that the CPU threads hand to each other: each
    thread waits on its own lock; `done` is released when the schedule is
    over."""

    def __init__(self, n: int):
        self.n = n
        self.locks = [threading.Lock() for _ in range(n)]
        for lock in self.locks:
            lock.acquire()
        self.done = threading.Lock()
        self.done.acquire()
        self.current = 0
        self.stopped = False

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


class NextSteps:
    """What each CPU does next, as far as the choices need it: the access it
    waits to make at its scheduling point, or for a blocked CPU the words its
    failed try read and the write epoch it blocked at. `status` is the
    Interleaving's (RUNNABLE, BLOCKED, DONE per CPU)."""

    def __init__(self, n: int, memory: Memory, status: list):
        self.n, self.memory, self.status = n, memory, status
        self.pending: list = [None] * n  # (word it touches or 0, whether it drains its buffer); None: not started
        self.wait_reads: list = [None] * n  # a blocked CPU's: the words its next try reads (None: any)
        self.block_epoch = [0] * n

    def blocked(self, c, epoch, reads) -> None:
        self.wait_reads[c], self.block_epoch[c] = reads, epoch

    def woken(self, c) -> bool:
        """A blocked CPU may go once a word its failed try read has been
        written since (a try that reads the same values fails the same way),
        or (reads None) once any word has."""
        epoch, reads, memory = self.block_epoch[c], self.wait_reads[c], self.memory
        if reads is None:
            return memory.write_epoch > epoch
        written_at = memory.written_at
        return any(written_at.get(a, 0) > epoch for a in reads)

    def flush_matters(self, c) -> bool:
        """Whether a step that does not commute with flushing a word of CPU
        c's buffer could come next: another CPU's next access touching it (a
        load that would see it, an atomic or a drain ordered with it) or
        another buffer's flush of the same word. A flush commutes with
        everything else, so one not taken now is the same as one taken
        later, just before such a step: only there is it offered (and
        wherever it costs no preemption, as before)."""
        memory = self.memory
        words = {a for a, _ in memory.buffers[c]}
        for j in range(self.n):
            if j == c:
                continue
            if any(a in words for a, _ in memory.buffers[j]):
                return True
            if self.status[j] == DONE:
                continue
            if self.status[j] == BLOCKED:
                reads = self.wait_reads[j]
                if reads is None or reads & words:
                    return True
                continue
            pending = self.pending[j]
            if pending is None:
                return True
            addr, drains = pending
            if addr in words or (drains and any(a in words for a, _ in memory.buffers[j])):
                return True
        return False


class Interleaving(Handoff):
    """Who runs: one CPU thread at a time, handed over at scheduling points.
    Where more than one actor could go (a CPU, or under TSO a store buffer
    flushing its oldest store), a choice: from the replayed prefix, else the
    partial-order reduction (`por`, which also ends a schedule whose every
    actor is asleep), else the chooser, else the default (keep the running
    CPU). A state already explored (`visited`; with `bounded`, with as few
    preemptions and the same CPU running) ends the schedule."""

    def __init__(self, n: int, max_steps: int, memory: Memory, prefix, chooser=None, visited=None,
                 fingerprints=None, por=None, bounded: bool = True):
        super().__init__(n)
        self.max_steps, self.memory = max_steps, memory
        self.prefix, self.chooser, self.visited, self.fingerprints = prefix, chooser, visited, fingerprints
        self.por, self.bounded = por, bounded
        self.status = [RUNNABLE] * n
        self.next = NextSteps(n, memory, self.status)
        self.actor = 0  # whose step is in progress (CPU 0 starts)
        self.decisions: list = []
        self.preemptions = 0
        self.outcome = "ok"
        self.extra_violations: list = []

    def enabled(self):
        memory, out = self.memory, []
        for c in range(self.n):
            st = self.status[c]
            if st == RUNNABLE or (st == BLOCKED and self.next.woken(c)):
                out.append(c)
        if memory.tso:
            free = self.current not in out  # the running CPU cannot go: a flush costs nothing
            out.extend(self.n + c for c in range(self.n)
                       if memory.buffers[c] and (free or self.next.flush_matters(c)))
        return out

    def fingerprint(self):
        memory = self.memory
        cpus = tuple(
            (memory.history[c], self.status[c] == BLOCKED and not self.next.woken(c),
             self.status[c], tuple(memory.buffers[c]))
            for c in range(self.n)
        )
        return hash((memory.snapshot(), cpus))

    def _executed(self, actor):
        transition = self.memory.take(actor)
        if self.por is not None:
            self.por.executed(transition)

    def decide(self):
        """Pick the next actor (None: the schedule is over)."""
        self._executed(self.actor)
        while True:
            options = self.enabled()
            cur = self.current
            cpus = [o for o in options if o < self.n]
            if not options:
                if any(s != DONE for s in self.status):
                    waiting = [c for c in range(self.n) if self.status[c] != DONE]
                    self.fail("deadlock", f"CPUs {waiting} wait forever (every CPU left is blocked)")
                return None
            if len(self.memory.steps) >= self.max_steps:
                self.outcome = "step-bound"
                self.fail("livelock", f"schedule longer than {self.max_steps} steps")
                return None
            cur_can_go = cur in cpus
            default = cur if cur_can_go else (cpus[0] if cpus else options[0])
            if len(options) == 1:
                chosen = default
                if self.por is not None and not self.por.awake(chosen):
                    chosen = self._over("sleep-blocked")
            else:
                chosen = self._choose(options, default, cur if cur_can_go else -1)
                if chosen is not None:
                    cost = 1 if (chosen != default and cur_can_go) else 0
                    self.decisions.append((options, default, chosen, self.preemptions, cur_can_go))
                    self.preemptions += cost
            if chosen is None:
                return None
            self.actor = chosen
            if chosen >= self.n:  # a store reaches memory
                self.memory.flush_one(chosen - self.n, chosen)
                self._executed(chosen)
                continue
            return chosen

    def _over(self, outcome):
        """The schedule ends here, unread (a known state, or every actor asleep),
        unless its last step found a violation: that is reported."""
        self.outcome = "violation" if self.memory.violated() else outcome
        return None

    def _choose(self, options, default, running):
        """The choice at a decision point; None when its state was explored."""
        index = len(self.decisions)
        if self.por is not None and index >= len(self.prefix) - 1:
            chosen = self.por.choose(self, index, options, default)
            return self._over(self.por.outcome) if chosen is None else chosen
        if index >= len(self.prefix) and self.visited is not None:
            fp = self.fingerprint()
            self.fingerprints.add(fp)
            key = (fp, running) if self.bounded else fp
            seen = self.visited.get(key)
            if seen is not None and (seen <= self.preemptions or not self.bounded):
                return self._over("pruned")
            self.visited[key] = self.preemptions
        elif self.fingerprints is not None and index >= len(self.prefix):
            self.fingerprints.add(self.fingerprint())  # a replayed decision was counted when it was new
        if index < len(self.prefix):
            chosen = self.prefix[index]
            if chosen not in options:
                raise ReplayDiverged(f"decision {index}: {chosen} is not one of {options}")
            return chosen
        if self.chooser is not None:
            return self.chooser(options, default)
        return default

    def fail(self, kind, message):
        self.extra_violations.append({"kind": kind, "message": message})

    def point(self, c, addr=0, drains=False):
        """A scheduling point of CPU c, before its next shared access (of
        word `addr`, 0 for none; `drains`: it drains c's store buffer)."""
        if self.stopped:
            raise _Stop()
        self.next.pending[c] = (addr, drains)
        if self.memory.violated():
            self.outcome = "violation"
            self.switch_to(c, None)
        self.switch_to(c, self.decide())

    def block(self, c, epoch, history=None, reads=None):
        if self.stopped:
            raise _Stop()
        if history is not None:
            self.memory.history[c] = history
        self.status[c] = BLOCKED
        self.next.blocked(c, epoch, reads)
        self.switch_to(c, self.decide())
        self.status[c] = RUNNABLE  # it runs again: it was woken (or never slept)


class Execution:
    """One schedule of a set of programs: each CPU a thread on an
    Interleaving over a Memory, until every program has ended (its stores
    may still be buffered: they reach memory as choices of their own)."""

    def __init__(self, n: int, memory: Memory, sched: Interleaving):
        self.n, self.memory, self.sched = n, memory, sched
        self.crash = None

    def program(self, cpu):
        raise NotImplementedError

    def cpu_thread(self, cpu):
        c, sched = cpu.id, self.sched
        try:
            sched.locks[c].acquire()
            if sched.stopped:
                return
            self.memory.started(c)
            self.program(cpu)
            sched.status[c] = DONE
            sched.switch_to(c, sched.decide())
        except _Stop:
            pass
        except ReplayDiverged as exc:
            self.crash = exc
            self._stop_from(c)
        except BaseException:
            sched.fail("crash", f"CPU {c}: " + traceback.format_exc(limit=8))
            sched.outcome = "violation"
            self._stop_from(c)

    def _stop_from(self, c):
        if not self.sched.stopped:
            try:
                self.sched.switch_to(c, None)
            except _Stop:
                pass

    def run_threads(self, cpus) -> None:
        """Run the schedule: CPU 0 first; its first access is the first decision."""
        sched = self.sched
        threads = [threading.Thread(target=self.cpu_thread, args=(cpu,), daemon=True) for cpu in cpus]
        for t in threads:
            t.start()
        sched.switch_to(None, 0)
        try:
            if not sched.done.acquire(timeout=120):
                raise RuntimeError("explorer: a schedule hung")
        except BaseException:  # Ctrl-C: the CPUs stop at their next point, before the memory goes
            if not sched.stopped:
                sched.switch_to(None, None)
            for t in threads:
                t.join(timeout=10)
            raise
        for t in threads:
            t.join()
        if self.crash is not None:
            raise self.crash


class Run(Execution):
    """One schedule of one kernel scenario, from boot to the end-of-run check."""

    def __init__(self, cfg, state: SharedState, prefix, chooser=None, visited=None, fingerprints=None, por=None,
                 bounded: bool = True):
        memory = Memory.of_segment(state, cfg.cpus, cfg.tso)
        super().__init__(cfg.cpus, memory, Interleaving(cfg.cpus, cfg.max_steps, memory, prefix, chooser, visited,
                                                        fingerprints, por, bounded))
        self.cfg, self.state = cfg, state
        self.flushed_tlb_gen: dict = {}  # the checker's: per mm, the newest completed flush (MunmapScript)

    def program(self, cpu):
        """The CPU's life, as a worker's: its script, exit, offline."""
        state, n = self.state, self.n
        run_quanta(cpu, cpu.workload, 1 << 30)
        if has_live_tasks(cpu):
            exit_tasks(cpu)
        _barrier(cpu, state.addr(state.control, 0, "exited"), n)
        if has_live_tasks(cpu):
            exit_tasks(cpu)
        offline_at_end(cpu)
        _barrier(cpu, state.addr(state.control, 0, "offline"), n)

    def execute(self) -> Result:
        cfg, state, n, sched = self.cfg, self.state, self.n, self.sched
        state.words[:] = 0
        start_kernel(state)
        mem = Addresses(state)
        scenario = SCENARIOS[cfg.scenario]
        per_cpu = scenario.setup(state, n)
        cls = strategy_class(cfg.strategy)
        kernel = kernel_for(cfg.kernel, cfg.flush)
        cpus = []
        for c in range(n):
            if ExplorerCPU is None:
                raise RuntimeError("the explorer runs the interpreted engine: PERCPU_ENGINE=interpreted")
            cpu = ExplorerCPU(state, mem, c, cls(), kernel, flush_smp_call_function_queue)
            cpu.explorer = self
            cpu.jiffies = _frozen_jiffies  # no tick passes within a schedule: deterministic
            boot_idle(cpu, Task(c, f"swapper/{c}", NULL, c))
            tasks, words = per_cpu[c]
            scenario.script(state, words).attach(cpu, tasks)
            install_atomics(cpu, self.memory, sched.point, cfg.drop_barrier)
            cpus.append(cpu)
        self.run_threads(cpus)
        return self._result()

    def _result(self) -> Result:
        sched = self.sched
        violations = list(sched.extra_violations)
        total, found = recorded_violations(self.state)
        violations.extend(v for v in found if v["kind"] != "warn")  # kernel WARNs are not violations
        if sched.outcome == "ok" and not violations:
            violations.extend(check_end_state(self.state))
        if violations and sched.outcome not in ("pruned", "sleep-blocked"):
            sched.outcome = "violation"
        elif sched.outcome in ("pruned", "sleep-blocked"):
            violations = []
        final = self.memory.snapshot() if sched.outcome in ("ok", "violation") and not sched.extra_violations \
            and all(s == DONE for s in sched.status) else None
        return Result(sched.outcome, [d[2] for d in sched.decisions], sched.decisions, self.memory.steps,
                      violations, sched.preemptions, self.memory.barriers_dropped, final)


def _frozen_jiffies() -> int:
    return 0


def _barrier(cpu, a_count, n):
    cpu.fetch_add(a_count, 1)
    load = cpu.load
    cpu.idle_until(lambda: load(a_count) >= n, SITE_IDLE_PROBE)
