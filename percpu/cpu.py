"""The per-CPU context: everything one emulated CPU reaches shared state through.

Kernel and strategy code take a `CPU` as first argument and touch shared
memory only through its atomics (`load`, `store`, `fetch_add`, ...), its
precomputed addresses and its waiting helpers. That keeps the code free of
process mechanics, so the same code can run under pinned processes or under
a deterministic interleaver that substitutes the atomics.

A CPU's own per-CPU fields (`loaded_mm`, `is_lazy`, ...) are mirrored in
Python attributes: only this CPU writes them (IPI handlers run on the target
CPU), so reading the mirror is exact, and it costs what reading one's own
cache line costs natively (nothing), not a call. Writes go through to shared
memory, where other CPUs and the checker read them.
"""
from __future__ import annotations

import math
import os
import random
import time

from percpu import _atomic, trace
from percpu.faults import ipi_delivery_delayed
from percpu.smp import IPI_FUNCTIONS
from percpu.state import (
    INIT_MM,
    LOADED_MM_SWITCHING,
    MAILBOX_SLOTS,
    NULL,
    SLOT_MASK,
    VIOLATION_CAPACITY,
    VIOLATION_FIELDS,
    SharedState,
)
from percpu.violations import IPI_TIMEOUT, USE_AFTER_FREE

# Per-CPU counters reported at the end of a run, in the stats table's order.
COUNTERS = (
    "ops",
    "switches",
    "lazy_switches",
    "probes",
    "shared_atomics",
    "ipis_sent",
    "ipis_received",
    "teardowns",
    "teardown_ns",
    "teardown_ipis",
    "teardown_wait_ns",
    "slots_scanned",
    "fixups",
    "forks",
    "wait_ns",
    "violations",
    "yields",
    "stalls",
    "ipis_delayed",
    "hotplugs",
    "migrations",
    "trace_written",
    "timed_switches",
    "timed_switch_ns",
)
# ns-per-op histogram: bucket b holds values in [2**(b/8), 2**((b+1)/8)).
HIST_BUCKETS_PER_OCTAVE = 8
HIST_BUCKETS = 40 * HIST_BUCKETS_PER_OCTAVE
# Histograms each CPU keeps, in the shared hist table's order: ns per op (from
# batches), ns per context switch (one switch in SWITCH_SAMPLE_EVERY timed),
# ns per mm teardown.
HISTOGRAMS = ("hist", "switch_hist", "teardown_hist")
SWITCH_SAMPLE_EVERY = 64
HOUSEKEEPING_EVERY = 1024  # scheduler-loop iterations between heartbeats
SPINS_PER_CHECK = 64


class RunAborted(Exception):
    """The coordinator (or another CPU) aborted the run."""


class Orphaned(Exception):
    """The coordinator is gone: stop at once (will-it-scale's orphan check)."""


class CPU:
    # Slots, not a __dict__: attribute access on the hot path stays a fixed offset.
    __slots__ = (
        "_batch_start_ns",
        "_batch_start_ops",
        "_heartbeat",
        "_reported",
        "_rmw_base",
        "_violation_base",
        "_violation_stride",
        "a_abort",
        "a_abort_cpu",
        "cpu_online",
        "a_online",
        "a_online_count",
        "mailbox",
        "mailbox_next",
        "online",
        "faults",
        "rng",
        "ipi_defer_until",
        "stalls",
        "ipis_delayed",
        "hotplugs",
        "migrations",
        "timed_switches",
        "timed_switch_ns",
        "trace_events",
        "trace_written",
        "a_hazard",
        "a_heartbeat",
        "a_ipi_pending",
        "a_is_lazy",
        "a_lazy_mm",
        "a_loaded_mm",
        "a_mm_to_mmdrop",
        "a_ops",
        "a_stop",
        "a_violations",
        "add_return",
        "cmpxchg",
        "coordinator_pid",
        "cpu_hazard",
        "cpu_ipi_pending",
        "cpu_is_lazy",
        "cpu_lazy_mm",
        "cpu_loaded_mm",
        "cpu_mm_to_mmdrop",
        "cpu_relax",
        "cpumask_clear_on_switch",
        "curr",
        "dec_and_test",
        "fetch_add",
        "hist",
        "id",
        "idle",
        "in_teardown",
        "ipi_in",
        "ipi_in_acked",
        "ipi_out",
        "ipi_out_seq",
        "ipi_seen",
        "ipi_timeout_ns",
        "wait_ns",
        "ipis_received",
        "ipis_sent",
        "is_lazy",
        "lazy_switches",
        "load",
        "loaded_mm",
        "loaded_tlb_gen",
        "mm_count",
        "mm_cpumask",
        "mm_own_slots",
        "fixups",
        "forks",
        "slots_scanned",
        "teardown_ipis",
        "teardown_wait_ns",
        "mm_gen",
        "mm_tlb_gen",
        "mm_users",
        "ncpus",
        "ops",
        "oversubscribed",
        "probes",
        "rq",
        "smp_mb",
        "state",
        "stopping",
        "stop_seen",
        "workload",
        "store",
        "strategy",
        "switches",
        "switch_cost_ns",
        "teardown_hist",
        "switch_hist",
        "teardown_ns",
        "teardowns",
        "violations",
        "xchg",
        "yields",
    )

    def __init__(
        self,
        state: SharedState,
        cpu_id: int,
        strategy,
        *,
        oversubscribed: bool = False,
        coordinator_pid: int | None = None,
        ipi_timeout_s: float = 10.0,
        cpumask_clear_on_switch: bool = True,
        switch_cost_ns: int = 0,
        faults: frozenset = frozenset(),
        seed: int = 0,
    ):
        self.id = cpu_id
        self.ncpus = n = state.ncpus
        self.state = state
        self.strategy = strategy
        self.oversubscribed = oversubscribed
        self.coordinator_pid = coordinator_pid
        self.ipi_timeout_ns = int(ipi_timeout_s * 1e9)
        # x86 before 6.13 clears the CPU's bit in prev's mm_cpumask on switch
        self.cpumask_clear_on_switch = cpumask_clear_on_switch
        # the rest of a context switch (registers, scheduler, the workload's
        # syscall), spent busy after each one: sets the lazy-mm work's share
        self.switch_cost_ns = switch_cost_ns

        # Atomics, as attributes so that an interleaver can substitute them.
        self.load = _atomic.load_acquire
        self.store = _atomic.store_release
        self.fetch_add = _atomic.fetch_add
        self.add_return = _atomic.add_return
        self.dec_and_test = _atomic.dec_and_test
        self.xchg = _atomic.xchg
        self.cmpxchg = _atomic.cmpxchg
        self.smp_mb = _atomic.smp_mb
        self.cpu_relax = _atomic.cpu_relax

        s, mm, cpu, ctl = state, state.mm, state.cpu, state.control
        # mm_struct fields, by slot
        self.mm_gen = [s.addr(mm, i, "gen") for i in range(mm.count)]
        self.mm_users = [s.addr(mm, i, "mm_users") for i in range(mm.count)]
        self.mm_count = [s.addr(mm, i, "mm_count") for i in range(mm.count)]
        self.mm_tlb_gen = [s.addr(mm, i, "tlb_gen") for i in range(mm.count)]
        self.mm_cpumask = [[s.addr(mm, i, f"cpumask{w}") for w in range(4)] for i in range(mm.count)]
        # every CPU's remotely visible fields, by CPU
        self.cpu_loaded_mm = [s.addr(cpu, c, "loaded_mm") for c in range(n)]
        self.cpu_is_lazy = [s.addr(cpu, c, "is_lazy") for c in range(n)]
        self.cpu_hazard = [s.addr(cpu, c, "hazard") for c in range(n)]
        self.cpu_lazy_mm = [s.addr(cpu, c, "lazy_mm") for c in range(n)]
        self.cpu_mm_to_mmdrop = [s.addr(cpu, c, "mm_to_mmdrop") for c in range(n)]
        self.cpu_ipi_pending = [s.addr(cpu, c, "ipi_pending") for c in range(n)]
        # this CPU's own fields
        self.a_loaded_mm = self.cpu_loaded_mm[cpu_id]
        self.a_is_lazy = self.cpu_is_lazy[cpu_id]
        self.a_hazard = self.cpu_hazard[cpu_id]
        self.a_lazy_mm = self.cpu_lazy_mm[cpu_id]
        self.a_mm_to_mmdrop = self.cpu_mm_to_mmdrop[cpu_id]
        self.cpu_online = [s.addr(cpu, c, "online") for c in range(n)]
        self.a_online = self.cpu_online[cpu_id]
        self.a_online_count = s.addr(ctl, 0, "online_count")
        self.mailbox = [s.addr(state.mailbox, cpu_id * MAILBOX_SLOTS + i, "tid") for i in range(MAILBOX_SLOTS)]
        self.mailbox_next = 0
        self.a_ipi_pending = self.cpu_ipi_pending[cpu_id]
        self.a_heartbeat = s.addr(cpu, cpu_id, "heartbeat")
        self.a_ops = s.addr(cpu, cpu_id, "ops")
        # control word and barriers
        self.a_stop = s.addr(ctl, 0, "stop")
        self.a_abort = s.addr(ctl, 0, "abort")
        self.a_abort_cpu = s.addr(ctl, 0, "abort_cpu")
        self.a_violations = s.addr(ctl, 0, "violations")
        # IPI call slots: ipi record (target * n + sender)
        ipi = state.ipi
        self.ipi_in = [  # slots where others call this CPU
            tuple(s.addr(ipi, cpu_id * n + snd, f) for f in ("seq", "func", "arg", "ack")) for snd in range(n)
        ]
        self.ipi_out = [  # slots where this CPU calls others
            tuple(s.addr(ipi, tgt * n + cpu_id, f) for f in ("seq", "func", "arg", "ack")) for tgt in range(n)
        ]
        self.ipi_out_seq = [0] * n
        self.ipi_in_acked = [0] * n
        self.ipi_seen = 0

        # mirrors of this CPU's own per-CPU state (see module docstring)
        self.loaded_mm = INIT_MM
        self.loaded_tlb_gen = 0
        self.is_lazy = 0
        self.stopping = False
        self.stop_seen = False
        self.online = True
        # fault injection (percpu/faults.py): which faults, this CPU's RNG
        self.faults = faults
        self.rng = random.Random(seed * 7919 + cpu_id)
        self.ipi_defer_until = 0
        self.workload = None

        # private: tasks, and the mm slots this CPU allocates from
        self.idle = None
        self.curr = None
        self.rq: list = []
        self.mm_own_slots = [slot for slot in range(1, state.mm.count) if slot % n == cpu_id]

        # counters (hot ones as attributes; see COUNTERS)
        self.ops = 0
        self.switches = 0
        self.lazy_switches = 0
        self.probes = 0
        self.ipis_sent = 0
        self.ipis_received = 0
        self.teardowns = 0
        self.slots_scanned = 0
        self.teardown_ipis = 0
        self.teardown_wait_ns = 0
        self.fixups = 0
        self.forks = 0
        self.teardown_ns = 0
        self.wait_ns = 0
        self.in_teardown = False
        self.violations = 0
        self.yields = 0
        self.stalls = 0
        self.ipis_delayed = 0
        self.hotplugs = 0
        self.migrations = 0
        self.timed_switches = 0  # the one switch in SWITCH_SAMPLE_EVERY that is timed
        self.timed_switch_ns = 0
        # tracing (percpu/trace.py): None when off, else events not yet in the ring
        self.trace_events = None
        self.trace_written = 0
        for name in HISTOGRAMS:
            setattr(self, name, [0] * HIST_BUCKETS)
        self._reported: set = set()
        self._rmw_base = _atomic.rmw_count()
        self._batch_start_ns = time.perf_counter_ns()
        self._batch_start_ops = 0
        self._heartbeat = 0
        self._violation_base = s.addr(state.violation, 0, VIOLATION_FIELDS[0])
        self._violation_stride = state.violation.stride

    # --- own per-CPU fields: write-through mirrors ---------------------------
    def set_loaded_mm(self, mm: int) -> None:
        self.loaded_mm = mm
        self.store(self.a_loaded_mm, mm)

    # --- checked dereference -------------------------------------------------
    def deref(self, mm: int, site: int) -> int:
        """Return the slot of `mm`, recording a use-after-free if it is stale."""
        slot = mm & SLOT_MASK
        gen = self.load(self.mm_gen[slot])
        if gen != mm >> 32:
            self.violation(USE_AFTER_FREE, mm, gen, site)
        return slot

    def use_after_free(self, mm: int, site: int) -> None:
        """For hot paths that inline deref's generation check."""
        self.violation(USE_AFTER_FREE, mm, self.load(self.mm_gen[mm & SLOT_MASK]), site)

    def probe(self, site: int) -> None:
        """A lazy CPU's hardware may walk the page tables behind CR3 at any time."""
        mm = self.loaded_mm
        if mm != INIT_MM and mm != NULL and mm != LOADED_MM_SWITCHING:
            self.probes += 1
            self.deref(mm, site)

    def violation(self, kind: int, mm: int, found_gen: int, site: int, other: int = 0) -> None:
        key = (kind, mm, site)
        if key in self._reported:  # a lazy CPU would report the same probe forever
            return
        self._reported.add(key)
        self.violations += 1
        if self.trace_events is not None:
            self.trace_events.append((trace.now(), trace.VIOLATION, kind, mm & SLOT_MASK))
        index = self.fetch_add(self.a_violations, 1)
        if index < VIOLATION_CAPACITY:
            base = self._violation_base + index * self._violation_stride
            values = (kind, self.id, mm & SLOT_MASK, mm >> 32, found_gen, site, time.perf_counter_ns(), other)
            for i, value in enumerate(values):
                self.store(base + 8 * i, value)

    # --- interrupt points and IPIs ------------------------------------------
    def interrupt_point(self) -> None:
        """Where this CPU takes interrupts: poll its IPI queue (one load)."""
        if self.load(self.a_ipi_pending) != self.ipi_seen:
            self.flush_smp_call_function_queue()

    def flush_smp_call_function_queue(self) -> None:
        if self.load(self.a_abort):
            raise RunAborted()
        if not self.stop_seen and self.load(self.a_stop):
            self.stop_seen = True  # once: the exit phase runs the loop again
            self.stopping = True
        if self.faults and ipi_delivery_delayed(self):
            return  # seen again at the next interrupt point
        self.ipi_seen = self.load(self.a_ipi_pending)
        load = self.load
        for sender, (a_seq, a_func, a_arg, a_ack) in enumerate(self.ipi_in):
            seq = load(a_seq)
            if seq != self.ipi_in_acked[sender]:
                # taken before it runs: a handler that waits services IPIs
                # itself and must not run this call again
                self.ipi_in_acked[sender] = seq
                self.ipis_received += 1
                func = load(a_func)
                if self.trace_events is not None:
                    self.trace_events.append((trace.now(), trace.KERNEL_BEGIN, trace.KERNEL_IPI, func))
                IPI_FUNCTIONS[func](self, load(a_arg))
                if self.trace_events is not None:
                    self.trace_events.append((trace.now(), trace.KERNEL_END, 0, 0))
                self.store(a_ack, seq)

    def spin_until(self, done, timeout_ns: int = 0, timeout_site: int = 0, target: int = -1) -> None:
        """Spin until done() while servicing IPIs (else two CPUs IPI-ing each
        other deadlock). With a timeout, a wait that never ends is reported as
        the kernel's CSD-lock warning and aborts the run."""
        spins = 0
        deadline = time.perf_counter_ns() + timeout_ns if timeout_ns else 0
        while not done():
            self.interrupt_point()
            spins += 1
            if spins % SPINS_PER_CHECK == 0:
                self.heartbeat()
                if self.oversubscribed:  # let the CPU we wait for run
                    self.yields += 1
                    os.sched_yield()
                if deadline and time.perf_counter_ns() > deadline:
                    self.violation(IPI_TIMEOUT, NULL, 0, timeout_site, target)
                    self.abort_run()
            else:
                self.cpu_relax()

    def idle_until(self, done, site: int) -> None:
        """Idle (lazily, probing loaded_mm) until done()."""
        spins = 0
        while not done():
            self.interrupt_point()
            if self.is_lazy:
                self.probe(site)
            spins += 1
            if spins % SPINS_PER_CHECK == 0:
                self.heartbeat()
                if self.oversubscribed:
                    self.yields += 1
                    os.sched_yield()
            else:
                self.cpu_relax()

    @staticmethod
    def spend(ns: int) -> None:
        """Busy for `ns` (a modelled cost: the CPU does nothing else)."""
        end = time.perf_counter_ns() + ns
        while time.perf_counter_ns() < end:
            pass

    def abort_run(self) -> None:
        self.store(self.a_abort_cpu, self.id + 1)
        self.store(self.a_abort, 1)
        for a_pending in self.cpu_ipi_pending:
            self.fetch_add(a_pending, 1)
        raise RunAborted()

    # --- housekeeping --------------------------------------------------------
    def heartbeat(self) -> None:
        self._heartbeat += 1
        self.store(self.a_heartbeat, self._heartbeat)
        self.store(self.a_ops, self.ops)
        if self.coordinator_pid is not None and os.getppid() != self.coordinator_pid:
            raise Orphaned()

    def housekeeping(self) -> None:
        """Every HOUSEKEEPING_EVERY scheduler iterations: heartbeat, and one
        ns-per-op sample for the latency histogram (timing each op would
        cost more than the op)."""
        self.heartbeat()
        if self.trace_events:
            trace.flush(self)
        now = time.perf_counter_ns()
        ops = self.ops - self._batch_start_ops
        if ops:
            record(self.hist, (now - self._batch_start_ns) / ops)
        self._batch_start_ns, self._batch_start_ops = now, self.ops

    def counter_values(self) -> dict[str, int]:
        values = {name: getattr(self, name) for name in COUNTERS if name != "shared_atomics"}
        values["shared_atomics"] = _atomic.rmw_count() - self._rmw_base
        return values

    def reset_counters(self) -> None:
        """Start measuring: boot-time work is not part of the run."""
        for name in COUNTERS:
            if name != "shared_atomics":
                setattr(self, name, 0)
        self._rmw_base = _atomic.rmw_count()
        for name in HISTOGRAMS:
            setattr(self, name, [0] * HIST_BUCKETS)
        self._batch_start_ns, self._batch_start_ops = time.perf_counter_ns(), 0


def record(hist: list[int], value_ns: float) -> None:
    bucket = int(math.log2(value_ns) * HIST_BUCKETS_PER_OCTAVE) if value_ns >= 1 else 0
    hist[min(bucket, HIST_BUCKETS - 1)] += 1


def bucket_value(bucket: int) -> float:
    """Geometric middle of a histogram bucket, in ns."""
    return 2 ** ((bucket + 0.5) / HIST_BUCKETS_PER_OCTAVE)
