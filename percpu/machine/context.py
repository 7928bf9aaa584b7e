"""Harness: the per-CPU context, the one object through which an emulated CPU
reaches shared memory.

Kernel and strategy code take a `CPU` as first argument and touch shared
memory only through its atomics (`load`, `store`, `fetch_add`, ...), the
segment's address tables (`cpu.mem`, shared by every CPU) and its waiting
helpers. That keeps the kernel code free of process mechanics, so the same
code runs under pinned processes and under the deterministic interleaver
(percpu/explore), which substitutes the atomics and the waits.

The kernel's per-CPU state a CPU keeps here (x86's cpu_tlbstate, the run
queue, the IPI queue, hotplug) is written only by this CPU (IPI handlers
run on their target), so Python attributes mirror it exactly; the fields
other CPUs read are written through to shared memory by the kernel code.
Statistics live in `cpu.stats` (percpu/machine/stats.py).

Waiting on a time-shared core: with more emulated CPUs than host cores
(`oversubscribed`), a CPU that busy-polls takes the core from the CPU it waits
for. So there, as a kernel blocks a waiter, a waiting CPU leaves the core:
an idle CPU with nothing to run, or one waiting at a barrier, halts (its
process sleeps on a futex until kicked, see `halt`), and a CPU spinning on
another CPU (an IPI's ack, a hazard slot) kicks that CPU and yields its
core to it. With a core per CPU nothing changes: they spin, as the kernel's
CPUs do.
"""
from __future__ import annotations

import os
import time
from os import sched_yield
from time import perf_counter_ns

import cython

from percpu.machine import _atomic, checker, tracing
from percpu.machine._futex import futex_wait, futex_wake
from percpu.machine.addresses import Addresses, ipi_slots
from percpu.machine.segment import INIT_MM, MAILBOX_SLOTS, NULL, SharedState
from percpu.machine.stats import Stats

HOUSEKEEPING_EVERY = 1024  # scheduler-loop iterations between heartbeats
SPINS_PER_CHECK = 64
HZ = 1000  # jiffies per second (CONFIG_HZ_1000)
AWAKE, HALTED = 0, 1  # a CPU's halted word (segment.HALT_LINES)
# A halted CPU wakes at least this often, kicked or not: for its heartbeat
# and to notice that its coordinator is gone.
HALT_MAX_NS = 50_000_000
BATCH_NS = 1_000_000  # a batch of HOUSEKEEPING_EVERY quanta without halts takes about this long
# this module, and with it the engine, is compiled (percpu/__init__.py)
COMPILED = cython.compiled
# the atomics, by the names kernel code calls them, and their C functions
ATOMICS = {
    "load": _atomic.load_acquire, "store": _atomic.store_release, "fetch_add": _atomic.fetch_add,
    "add_return": _atomic.add_return, "dec_and_test": _atomic.dec_and_test, "xchg": _atomic.xchg,
    "cmpxchg": _atomic.cmpxchg, "fetch_or": _atomic.fetch_or, "fetch_and": _atomic.fetch_and,
    "smp_mb": _atomic.smp_mb, "cpu_relax": _atomic.cpu_relax,
}


def jiffies() -> int:
    """The kernel's tick count, from the clock every CPU shares."""
    return time.monotonic_ns() // (1_000_000_000 // HZ)


class RunAborted(Exception):
    """The coordinator (or another CPU) aborted the run."""


class Orphaned(Exception):
    """The coordinator is gone: stop at once (will-it-scale's orphan check)."""


class Waits:
    """A CPU's waits (mixed into CPU; the explorer's CPU replaces the first
    two): spinning on another CPU, idling until a condition."""

    __slots__ = ()

    def spin_until(self, done, timeout_ns: int = 0, timeout_site: int = 0, target: int = -1) -> None:
        """Spin until done() while servicing IPIs (else two CPUs IPI-ing each
        other deadlock). With a timeout, a wait that never ends is reported as
        the kernel's CSD-lock warning and aborts the run. Oversubscribed, it kicks
        `target` (the CPU it waits for) and yields its core at every try."""
        spins = 0
        deadline = time.perf_counter_ns() + timeout_ns if timeout_ns else 0
        blocking = self.oversubscribed
        while not done():
            if blocking and spins % SPINS_PER_CHECK == 0 and target >= 0:
                kick(self, target)  # again now and then: it may have halted since
            self.interrupt_point()
            spins += 1
            if blocking:
                self.stats.yields += 1
                os.sched_yield()
            if spins % SPINS_PER_CHECK == 0:
                self.heartbeat()
                if deadline and time.perf_counter_ns() > deadline:
                    checker.violation(self, checker.IPI_TIMEOUT, NULL, 0, timeout_site, target)
                    self.abort_run()
            elif not blocking:
                self.cpu_relax()

    def idle_until(self, done, site: int) -> None:
        """Idle (lazily, the hardware walking loaded_mm) until done().
        Oversubscribed, it halts between tries: whoever makes done() true
        kicks it."""
        spins = 0
        while not done():
            self.interrupt_point()
            if self.is_lazy:
                checker.probe(self, site)
            spins += 1
            if spins % SPINS_PER_CHECK == 0:
                self.heartbeat()
            elif self.oversubscribed:
                halt(self)
            else:
                self.cpu_relax()

    def share_core(self) -> None:
        """Oversubscribed: let another CPU run on our core (fault injection's
        offline spell)."""
        if self.oversubscribed:
            self.stats.yields += 1
            os.sched_yield()


class CPU(Waits):
    # Slots, not a __dict__: attribute access on the hot path stays a fixed offset.
    __slots__ = (
        # who it is, the machine it is part of, what it runs
        "id", "ncpus", "state", "mem", "strategy", "workload",
        # its atomics (interpreted: attributes, so that an interleaver can
        # substitute them; compiled: inline C, context.pxd) and their log
        *ATOMICS, "op_log",
        # the addresses of its own hot per-CPU fields
        "a_loaded_mm", "a_is_lazy", "a_hazard", "a_lazy_mm", "a_mm_to_mmdrop", "a_ipi_pending",
        # x86 cpu_tlbstate (mirrors): loaded_mm, is_lazy, the tlb_gen its TLB holds
        "loaded_mm", "is_lazy", "loaded_tlb_gen",
        # the run queue: current task, idle task, tasks; the mm slots it allocates from (a per-CPU slab)
        "curr", "idle", "rq", "mm_own_slots",
        # the IPI queue (kernel/smp.c): the handler the kernel installed, call slots in and out
        "ipi_handler", "ipi_seen", "ipi_in", "ipi_in_acked", "ipi_out", "ipi_out_seq",
        # hotplug (kernel/cpu.c), the run's phase, teardown in progress
        "online", "mailbox", "mailbox_next", "stopping", "stop_seen", "in_teardown",
        # the kernel it runs (version, flush hardware: linux/include_/linux/version.py),
        # its clock, and the modelled cost of the rest of a switch
        "kernel", "jiffies", "switch_cost_ns",
        # the next timer this CPU must wake up for when halted (0: none), as NO_HZ idle does
        "timer_ns",
        # harness: watchdogs, statistics, the checker's memory, tracing, fault injection
        "oversubscribed", "a_halted", "coordinator_pid", "ipi_timeout_ns", "_heartbeat",
        "stats", "reported", "trace_events", "fault",
    )

    def __init__(self, state: SharedState, mem: Addresses, cpu_id: int, strategy, kernel, ipi_handler, *,
                 oversubscribed: bool = False, coordinator_pid: int | None = None, ipi_timeout_s: float = 10.0,
                 switch_cost_ns: int = 0):
        self.id, self.ncpus, self.state, self.mem = cpu_id, state.ncpus, state, mem
        self.strategy, self.workload = strategy, None
        self.op_log = None
        if cython.compiled:  # count read-modify-writes where the atomics extension does
            self.rmw_ops = cython.cast(cython.pointer(cython.ulonglong), cython.cast(cython.size_t, _atomic.rmw_counter()))
        else:
            _bind_atomics(self, ATOMICS)
        self.a_loaded_mm, self.a_is_lazy, self.a_hazard, self.a_lazy_mm, self.a_mm_to_mmdrop, self.a_ipi_pending = (
            table[cpu_id] for table in (mem.cpu_loaded_mm, mem.cpu_is_lazy, mem.cpu_hazard, mem.cpu_lazy_mm,
                                        mem.cpu_mm_to_mmdrop, mem.cpu_ipi_pending))
        self.loaded_mm, self.is_lazy, self.loaded_tlb_gen = INIT_MM, 0, 0
        self.curr = self.idle = None
        self.rq: list = []
        self.mm_own_slots = [slot for slot in range(1, mem.nmm) if slot % self.ncpus == cpu_id]
        # x86's CALL_FUNCTION_VECTOR: the kernel's handler (__flush_smp_call_function_queue)
        self.ipi_handler = ipi_handler
        self.ipi_seen = 0
        self.ipi_in, self.ipi_out = ipi_slots(state, cpu_id)  # others call this CPU; this CPU calls others
        self.ipi_in_acked, self.ipi_out_seq = [0] * self.ncpus, [0] * self.ncpus
        self.online, self.stopping, self.stop_seen, self.in_teardown = True, False, False, False
        self.mailbox = [state.addr(state.mailbox, cpu_id * MAILBOX_SLOTS + i, "tid") for i in range(MAILBOX_SLOTS)]
        self.mailbox_next = 0
        self.kernel, self.jiffies = kernel, jiffies
        # the rest of a context switch (registers, scheduler, the workload's
        # syscall), spent busy after each one: sets the lazy-mm work's share
        self.switch_cost_ns = switch_cost_ns
        self.oversubscribed, self.coordinator_pid = oversubscribed, coordinator_pid
        self.a_halted = mem.cpu_halted[cpu_id]
        self.timer_ns = 0
        self.ipi_timeout_ns = int(ipi_timeout_s * 1e9)
        self._heartbeat = 0
        self.stats = Stats()
        self.reported: set = set()  # violations already recorded (checker.violation)
        self.trace_events = None  # tracing: None when off, else events not yet in the ring
        self.fault = None  # fault injection (percpu/faults.py): None when off

    def start_op_log(self) -> list:
        """From now on, log every shared-memory operation this CPU does, as
        (atomic's name, address) pairs (smp_mb's address: 0), into the list
        returned."""
        self.op_log = []
        if not cython.compiled:
            _bind_atomics(self, {name: _logged(self.op_log, name, fn) for name, fn in ATOMICS.items()})
        return self.op_log

    def log_op(self, op: str, addr: int) -> None:
        """The compiled atomics' logging, when start_op_log turned it on."""
        self.op_log.append((op, addr))

    # --- interrupt points ----------------------------------------------------
    def interrupt_point(self) -> None:
        """Where this CPU takes interrupts: one load of its ipi_pending."""
        if self.load(self.a_ipi_pending) != self.ipi_seen:
            self.take_interrupt()

    def take_interrupt(self) -> None:
        """Something is pending: the coordinator's abort or stop, or IPIs,
        which the kernel's handler runs."""
        if self.load(self.mem.abort):
            raise RunAborted()
        if not self.stop_seen and self.load(self.mem.stop):
            self.stop_seen = True  # once: the exit phase runs the loop again
            self.stopping = True
        self.ipi_handler(self)

    @staticmethod
    def spend(ns: int) -> None:
        """Busy for `ns` (a modelled cost: the CPU does nothing else)."""
        end = time.perf_counter_ns() + ns
        while time.perf_counter_ns() < end:
            pass

    def abort_run(self) -> None:
        self.store(self.mem.abort_cpu, self.id + 1)
        self.store(self.mem.abort, 1)
        for a_pending in self.mem.cpu_ipi_pending:
            self.fetch_add(a_pending, 1)
        raise RunAborted()

    # --- housekeeping --------------------------------------------------------
    def heartbeat(self) -> None:
        self._heartbeat += 1
        self.store(self.mem.cpu_heartbeat[self.id], self._heartbeat)
        self.store(self.mem.cpu_ops[self.id], self.stats.ops)
        if self.coordinator_pid is not None and os.getppid() != self.coordinator_pid:
            raise Orphaned()

    def housekeeping(self) -> None:
        """Every HOUSEKEEPING_EVERY scheduler iterations: heartbeat, trace
        flush, one ns-per-op sample."""
        self.heartbeat()
        if self.trace_events:
            tracing.flush(self)
        self.stats.sample_batch()


# --- halting, when CPUs share cores (typed C functions: they are on the
# oversubscribed hot path; the explorer's CPUs never halt) ---------------------
def halt(cpu) -> bool:
    """Harness, as x86's hlt: sleep until an interrupt or a kick, or this
    CPU's next timer.

    Called by an idle CPU with nothing to run, it works in two steps so
    that no wake-up is lost: the first call announces the halt (HALTED,
    then a full barrier) and returns; the caller looks for work once
    more (an idle quantum: the interrupt point, the run queue); the next
    call sleeps unless someone cleared the word meanwhile (a waker makes
    its change visible, then clears the word and wakes us: `kick`).

    True when it slept, faults are injected and the batch of quanta has
    lasted BATCH_NS: then the scheduler ends the batch, so that fault
    injection (between batches, drawing about once per BATCH_NS) keeps
    its pace. Not otherwise: housekeeping on the wake-up path delays the
    woken CPU (measured: half the oversubscribed throughput)."""
    a_halted = cpu.a_halted
    if cpu.load(a_halted) != HALTED:
        cpu.store(a_halted, HALTED)
        cpu.smp_mb()
        return False
    start = perf_counter_ns()
    timeout = HALT_MAX_NS
    if cpu.timer_ns:
        timeout = min(timeout, cpu.timer_ns - start)
        if timeout <= 0:
            return False  # the timer is due: the next idle quantum runs it
    # once more off the core before sleeping: the partner just woken on it
    # often answers while we yield, which spares a futex sleep and wake
    # (measured: 2.2x the 64-CPU ping-pong on 2 cores)
    stats = cpu.stats
    sched_yield()
    stats.yields += 1
    if cpu.load(a_halted) != HALTED:
        return False  # kicked meanwhile
    woken = futex_wait(a_halted, HALTED, timeout)
    cpu.store(a_halted, AWAKE)
    stats.halts += 1
    stats.halted_ns += perf_counter_ns() - start
    if not woken:
        stats.halt_timeouts += 1
    if not woken or stats.halts % SPINS_PER_CHECK == 0:  # a batch of kicked halts can outlast the stall watchdog
        cpu.heartbeat()
    return cpu.fault is not None and perf_counter_ns() - stats.batch_start_ns > BATCH_NS


def kick(cpu, other: int) -> None:
    """Wake CPU `other` if it is halted. The full barrier first: the
    change that gives it work (a store, an IPI) is visible before we look
    at its halted word, as its halt announcement is before its last look
    for work (`halt`)."""
    a_halted = cpu.mem.cpu_halted[other]
    cpu.smp_mb()
    if cpu.load(a_halted) == HALTED:
        cpu.store(a_halted, AWAKE)
        futex_wake(a_halted, 1)
        cpu.stats.kicks += 1


def kick_all(cpu) -> None:
    """Wake every halted CPU (the last arrival at a barrier)."""
    for other in range(cpu.ncpus):
        if other != cpu.id:
            kick(cpu, other)


def _bind_atomics(cpu: CPU, atomics: dict) -> None:
    """The interpreted engine's atomics: attributes of the CPU."""
    for name, fn in atomics.items():
        setattr(cpu, name, fn)


def _logged(log: list, name: str, fn):
    if name == "cpu_relax":
        return fn  # not a shared-memory operation

    def logged(*args):
        log.append((name, args[0] if args else 0))
        return fn(*args)

    return logged
