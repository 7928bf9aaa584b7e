"""Harness: the raw addresses of the segment's shared fields, computed once per
segment and shared, read-only, by every CPU (workers inherit them across
fork; the explorer's CPUs share one object).

Kernel code dereferences `mem.mm_count[slot]`, `mem.cpu_is_lazy[cpu]`, ...
and hands the address to an atomic: the tables are arrays of int64, which
compiled code indexes as C arrays (addresses.pxd).
"""
from __future__ import annotations

from array import array

from percpu.machine.segment import SharedState

CPUMASK_WORDS = 4  # mm_cpumask: 4 x 64 bits (segment.MAX_CPUMASK_CPUS)
IPI_FIELDS = ("seq", "func", "arg", "ack")  # one call slot (segment.IPI_LINES)


class Addresses:
    __slots__ = (
        "ncpus", "nmm",
        # mm_struct fields, by mm slot
        "mm_gen", "mm_users", "mm_count", "mm_tlb_gen", "mm_cpumask", "mm_freed_tables_gen", "mm_invlpgb_gen",
        "mm_next_trim_cpumask",
        # every CPU's remotely visible fields, by CPU
        "cpu_loaded_mm", "cpu_is_lazy", "cpu_hazard", "cpu_lazy_mm", "cpu_mm_to_mmdrop", "cpu_ipi_pending",
        "cpu_heartbeat", "cpu_ops",
        # harness: the word each CPU's process sleeps on when it halts
        "cpu_halted",
        # tasks' active_mm, by task id (finish_cpu reads a dead CPU's idle task's)
        "task_active_mm",
        # each CPU's flush_tlb_info record
        "flush_tlb_info",
        # the control record: coordinator flags, cpu_online_mask, shared counters
        "stop", "abort", "abort_cpu", "records", "violations", "cpu_online_mask", "online_count",
        # the violation table
        "violation_base", "violation_stride",
    )

    def __init__(self, state: SharedState):
        s, mm, cpu, ctl = state, state.mm, state.cpu, state.control
        self.ncpus, self.nmm = state.ncpus, mm.count
        by_mm = lambda field: array("q", [s.addr(mm, i, field) for i in range(mm.count)])
        by_cpu = lambda field: array("q", [s.addr(cpu, c, field) for c in range(state.ncpus)])
        (self.mm_gen, self.mm_users, self.mm_count, self.mm_tlb_gen, self.mm_freed_tables_gen, self.mm_invlpgb_gen,
         self.mm_next_trim_cpumask) = (
            by_mm(f) for f in ("gen", "mm_users", "mm_count", "tlb_gen", "freed_tables_gen", "invlpgb_gen",
                               "next_trim_cpumask"))
        self.mm_cpumask = [[s.addr(mm, i, f"cpumask{w}") for w in range(CPUMASK_WORDS)] for i in range(mm.count)]
        (self.cpu_loaded_mm, self.cpu_is_lazy, self.cpu_hazard, self.cpu_lazy_mm, self.cpu_mm_to_mmdrop,
         self.cpu_ipi_pending, self.cpu_heartbeat, self.cpu_ops) = (
            by_cpu(f) for f in ("loaded_mm", "is_lazy", "hazard", "lazy_mm", "mm_to_mmdrop", "ipi_pending",
                                "heartbeat", "ops"))
        self.cpu_halted = array("q", [s.addr(state.halt, c, "halted") for c in range(state.ncpus)])
        self.task_active_mm = array("q", [s.addr(state.task, t, "active_mm") for t in range(state.task.count)])
        self.flush_tlb_info = array("q", [s.addr(state.flush_info, c, "mm") for c in range(state.ncpus)])
        self.stop, self.abort, self.abort_cpu, self.records, self.violations, self.online_count = (
            s.addr(ctl, 0, f) for f in ("stop", "abort", "abort_cpu", "records", "violations", "online_count"))
        self.cpu_online_mask = array("q", [s.addr(ctl, 0, f"cpu_online_mask{w}") for w in range(CPUMASK_WORDS)])
        self.violation_base = s.addr(state.violation, 0, "kind")
        self.violation_stride = state.violation.stride


def ipi_slots(state: SharedState, cpu: int) -> tuple[list, list]:
    """The call slots of `cpu`: those others use to call it (by sender) and
    those it uses to call others (by target). A slot is the (seq, func, arg,
    ack) addresses of ipi record target * ncpus + sender, like a per-CPU
    csd. (Arithmetic, not `addr` per field: a CPU boots with 2 * ncpus slots.)"""
    table, n = state.ipi, state.ncpus
    record0 = state.addr(table, 0, IPI_FIELDS[0]) - table.offsets[IPI_FIELDS[0]]
    seq, func, arg, ack = (table.offsets[f] for f in IPI_FIELDS)
    starts_in = [record0 + (cpu * n + sender) * table.stride for sender in range(n)]
    starts_out = [record0 + (target * n + cpu) * table.stride for target in range(n)]
    return ([(a + seq, a + func, a + arg, a + ack) for a in starts_in],
            [(a + seq, a + func, a + arg, a + ack) for a in starts_out])
