"""Harness: the shared segment, one POSIX shared-memory segment per run, laid
out as tables of the kernel structures (the emulated machine's memory).

Every table is a run of fixed-size records of 64-bit words. In the `padded`
layout each record is split into the cache lines the kernel would give it
(`mm_count` alone on its own line, a CPU's remotely written fields apart from
its own hot fields) and every line starts on a `line_size` boundary; in the
`packed` layout records are laid end to end so neighbours share lines (false
sharing, for users who want to see it).

An mm reference stored anywhere is ``(gen << 32) | slot``. A slot's `gen` is
bumped at alloc (odd: live) and at free (even: free), so a stale reference
is detected on dereference, ABA included.
"""
from __future__ import annotations

import mmap
import os
import secrets
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import posix_ipc

WORD = 8
SEGMENT_PREFIX = "percpu-"

NULL = 0
LOADED_MM_SWITCHING = 1  # gen 0 never names a live mm, as the kernel's (mm_struct *)1
INIT_MM_SLOT = 0
INIT_MM = (1 << 32) | INIT_MM_SLOT  # init_mm: live from boot, never freed
SLOT_MASK = 0xFFFFFFFF


class SharedMemoryUnavailable(RuntimeError):
    """The segment could not be created (for example /dev/shm is full)."""


@dataclass(frozen=True)
class Table:
    """Records of int64 words; `lines` groups field names into cache lines."""

    name: str
    count: int
    lines: tuple[tuple[str, ...], ...]
    line_size: int
    packed: bool

    @cached_property
    def offsets(self) -> dict[str, int]:
        offsets, pos = {}, 0
        for line in self.lines:
            if not self.packed and pos % self.line_size:
                pos += self.line_size - pos % self.line_size
            for field in line:
                offsets[field] = pos
                pos += WORD
        return offsets

    @cached_property
    def stride(self) -> int:
        end = max(self.offsets.values()) + WORD
        if self.packed:
            return end
        return -(-end // self.line_size) * self.line_size


def _table(name, count, lines, line_size, packed):
    return Table(name, count, tuple(tuple(line) for line in lines), line_size, packed)


# Field layout of each record, line by line.
CONTROL_LINES = (
    ("phase", "stop", "abort", "abort_cpu", "start_ns"),  # coordinator -> all
    ("ready",),  # barrier counters: every CPU writes them once per phase
    ("exited",),
    ("offline",),
    # records: the violation table's next free record (violations and
    # kernel WARNs alike); violations: how many of them are violations
    ("records", "violations"),
    # cpu_online_mask (written only by hotplug), and how many are online
    # (the harness's guard: hotplug never takes the last one)
    ("cpu_online_mask0", "cpu_online_mask1", "cpu_online_mask2", "cpu_online_mask3", "online_count"),
)
MM_LINES = (
    # freed_tables_gen: 0 while the page tables below the pgd are live, else
    # the tlb_gen of the flush that came with freeing them (exit_mmap);
    # invlpgb_gen: with broadcast flushes, the tlb_gen every CPU's TLB for
    # this mm has been invalidated up to; next_trim_cpumask: x86 6.14+'s
    # once-a-second mm_cpumask trim (in jiffies)
    ("gen", "mm_users", "tlb_gen", "cpumask0", "cpumask1", "cpumask2", "cpumask3",
     "freed_tables_gen", "invlpgb_gen", "next_trim_cpumask"),
    ("mm_count",),  # alone on its line, as in the kernel
)
# Packed, a record's first and last words touch the neighbours' records: the
# order puts ipi_pending (read at every interrupt point) first and is_lazy
# (written at every lazy switch) last, so CPU i's hottest store shares a
# 64-byte line with CPU i+1's hottest load (7 neighbour pairs in 8, from 2
# CPUs on: the false sharing `--layout packed` is there to show; padded, the
# order changes nothing).
CPU_LINES = (
    # written by other CPUs
    ("ipi_pending", "mm_to_mmdrop"),
    # written by the CPU itself, read by others (teardown scans) and the checker
    ("loaded_mm", "hazard", "lazy_mm", "heartbeat", "ops", "is_lazy"),
)
# Harness, not kernel state: set while a CPU's process sleeps on it (a futex;
# oversubscribed runs only, machine/context.py's halt), cleared by whoever
# wakes it. Its own line per CPU in both layouts, so the packed CPU table's
# false sharing stays what it was.
HALT_LINES = (("halted",),)
TASK_LINES = (("mm", "active_mm", "cpu", "state"),)
PIPE_LINES = (("turn",),)
# A task on its way to another CPU (hotplug migration): each CPU writes its
# own records, the target reads one during the synchronous IPI that names it.
MAILBOX_LINES = (("tid", "mm", "pipe", "side", "life"),)
MAILBOX_SLOTS = 8  # nested migrations (a forward from inside an IPI) stay shallow
# Each CPU's flush_tlb_info (arch/x86/mm/tlb.c): filled by the CPU that
# starts a flush, read by the CPUs its IPIs reach.
FLUSH_INFO_LINES = (("mm", "new_tlb_gen", "freed_tables", "initiating_cpu", "trim_cpumask"),)
IPI_LINES = (("seq", "func", "arg", "ack"),)
VIOLATION_FIELDS = ("kind", "cpu", "slot", "ref_gen", "found_gen", "site", "time_ns", "other")
MAX_CPUMASK_CPUS = 4 * 64
VIOLATION_CAPACITY = 1024


class SharedState:
    """The segment and its tables. Created by the coordinator; workers inherit
    the mapping across fork, so every address is valid in every CPU."""

    def __init__(
        self,
        *,
        ncpus: int,
        nmm: int,
        ntasks: int,
        npipes: int,
        counters: tuple[str, ...],
        hist_buckets: int,
        line_size: int = 128,
        packed: bool = False,
        trace_events_per_cpu: int = 0,
    ):
        if ncpus > MAX_CPUMASK_CPUS:
            raise ValueError(f"at most {MAX_CPUMASK_CPUS} CPUs")
        self.ncpus, self.line_size, self.packed = ncpus, line_size, packed
        t = lambda name, count, lines: _table(name, count, lines, line_size, packed)
        self.control = _table("control", 1, CONTROL_LINES, line_size, False)
        self.mm = t("mm", nmm, MM_LINES)
        self.cpu = t("cpu", ncpus, CPU_LINES)
        self.task = t("task", ntasks, TASK_LINES)
        self.pipe = t("pipe", max(npipes, 1), PIPE_LINES)
        self.mailbox = t("mailbox", ncpus * MAILBOX_SLOTS, MAILBOX_LINES)
        self.flush_info = t("flush_info", ncpus, FLUSH_INFO_LINES)
        # one call slot per (target, sender), like the kernel's per-CPU csd
        self.ipi = t("ipi", ncpus * ncpus, IPI_LINES)
        # after the kernel's tables (the explorer fingerprints control..ipi)
        self.halt = _table("halt", ncpus, HALT_LINES, line_size, False)
        # private to each CPU: never padded per field, one block per CPU
        self.stats = _table("stats", ncpus, (counters,), line_size, False)
        self.hist = _table("hist", ncpus, ([f"b{i}" for i in range(hist_buckets)],), line_size, False)
        self.violation = _table("violation", VIOLATION_CAPACITY, (VIOLATION_FIELDS,), line_size, True)
        # per-CPU trace rings (percpu/trace.py), only when tracing
        self.trace = _table("trace", max(1, ncpus * trace_events_per_cpu), (("t", "kind", "a", "b"),), line_size, True)
        tables = (self.control, self.mm, self.cpu, self.task, self.pipe, self.mailbox, self.flush_info, self.ipi, self.halt,
                  self.stats, self.hist, self.violation, self.trace)
        self._table_base: dict[str, int] = {}
        size = 0
        for table in tables:
            size = -(-size // line_size) * line_size
            self._table_base[table.name] = size
            size += table.count * table.stride
        self.size = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        self.name = f"/{SEGMENT_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            segment = posix_ipc.SharedMemory(self.name, posix_ipc.O_CREX, size=self.size)
        except (posix_ipc.Error, OSError) as exc:
            raise SharedMemoryUnavailable(
                f"cannot create shared memory segment {self.name} of {self.size} bytes: {exc}"
            ) from None
        try:
            try:
                # Reserve the memory now: a full /dev/shm fails here with a
                # clear error instead of a SIGBUS inside a worker later.
                os.posix_fallocate(segment.fd, 0, self.size)
                self._map = mmap.mmap(segment.fd, self.size)
            except (OSError, ValueError) as exc:
                raise SharedMemoryUnavailable(
                    f"cannot allocate shared memory segment {self.name} of {self.size} bytes "
                    f"({exc.strerror if isinstance(exc, OSError) else exc}); is /dev/shm full?"
                ) from None
        finally:
            segment.close_fd()
            # Unlinked at once: workers inherit the mapping across fork, so the
            # name is never needed again and nothing can be left in /dev/shm,
            # whatever later happens to this process or its workers.
            try:
                segment.unlink()
            except posix_ipc.ExistentialError:
                pass
        self.words = np.frombuffer(self._map, dtype=np.int64)
        self.base = self.words.__array_interface__["data"][0]

    def addr(self, table: Table, index: int, field: str) -> int:
        """Raw address of one field of one record (for the atomics)."""
        return self.base + self._table_base[table.name] + index * table.stride + table.offsets[field]

    def field(self, table: Table, field: str) -> np.ndarray:
        """A numpy view of one field across all records (for setup and checks)."""
        return np.ndarray(
            (table.count,),
            dtype=np.int64,
            buffer=self._map,
            offset=self._table_base[table.name] + table.offsets[field],
            strides=(table.stride,),
        )

    def rows(self, table: Table) -> np.ndarray:
        """A 2-D numpy view of a table: one row of words per record."""
        return np.ndarray(
            (table.count, table.stride // WORD),
            dtype=np.int64,
            buffer=self._map,
            offset=self._table_base[table.name],
            strides=(table.stride, WORD),
        )

    def close(self) -> None:
        """Drop this process's numpy views and mapping."""
        self.words = None
        try:
            self._map.close()
        except BufferError:
            pass  # a view is still alive somewhere; the mapping goes at exit


def live_segments() -> list[str]:
    """Names of percpu segments present in /dev/shm (for tests and cleanup)."""
    try:
        return sorted(n for n in os.listdir("/dev/shm") if n.startswith(SEGMENT_PREFIX))
    except FileNotFoundError:
        return []


def segment_owner(name: str) -> int | None:
    """The pid in a segment's name (percpu-<pid>-<random>), if it has one."""
    parts = name[len(SEGMENT_PREFIX):].split("-")
    return int(parts[0]) if len(parts) == 2 and parts[0].isdigit() else None


def owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_segments() -> tuple[list[str], list[str]]:
    """Unlink segments whose owner process is gone; returns (removed, kept).
    A live run's segment (its owner alive) is never touched. (A run unlinks
    its segment right after mapping it, so only a run killed within those
    microseconds can leave one.)"""
    removed, kept = [], []
    for name in live_segments():
        owner = segment_owner(name)
        if owner is not None and owner_alive(owner):
            kept.append(name)
            continue
        try:
            posix_ipc.unlink_shared_memory("/" + name)
            removed.append(name)
        except posix_ipc.ExistentialError:
            pass  # someone else removed it meanwhile
    return removed, kept
