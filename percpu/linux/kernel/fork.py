"""kernel/fork.c: the mm_struct's life (mm_alloc, mmput/__mmput, __mmdrop,
cleanup_lazy_tlbs, do_shoot_lazy_tlb, do_check_lazy_tlb), Linux 6.12 and
6.18 alike, with the inlines of include/linux/sched/mm.h it is built on
(mmget, mmgrab, mmdrop).

mm_users counts real users (threads); all of them together hold one mm_count
reference, and lazy users hold mm_count references when the strategy takes
them. The last mmput runs exit_mmap (which frees the page tables) and
mmdrop; the last mmdrop runs __mmdrop, which is where a strategy's
cleanup_lazy_tlbs runs and the mm_struct and its pgd are freed (the slot's
generation bumped, so stale references are caught).
"""
from __future__ import annotations

import time

from percpu.linux.arch.x86.mm.tlb import switch_mm
from percpu.linux.include_.linux.cpumask import mm_cpumask_cpus
from percpu.linux.kernel.smp import ipi_function, on_each_cpu_mask
from percpu.linux.mm.mmap import exit_mmap
from percpu.machine import tracing
from percpu.machine.checker import (FREED_WHILE_LOADED, REFCOUNT_UNDERFLOW, deref, site, use_after_free,
                                    violation, warn)
from percpu.machine.context import HZ
from percpu.machine.segment import INIT_MM, NULL, SLOT_MASK, SharedState
from percpu.machine.stats import record

SITE_MMGET = site("mmget: mm_users++")
SITE_MMPUT = site("mmput: mm_users--")
SITE_MMGRAB = site("mmgrab: mm_count++")
SITE_MMDROP = site("mmdrop: mm_count--")
SITE_MMDROP_FREE = site("__mmdrop: free while a CPU has it as loaded_mm")
SITE_SHOOT_MASK = site("cleanup_lazy_tlbs: read mm_cpumask")
SITE_WARN_ACTIVE_MM = site("__mmdrop: WARN_ON_ONCE(mm == current->active_mm)")
SITE_WARN_CHECK_LAZY = site("do_check_lazy_tlb: WARN_ON_ONCE(current->active_mm == mm)")
SITE_WARN_SHOOT_MM = site("do_shoot_lazy_tlb: WARN_ON_ONCE(current->mm)")
SITE_WARN_CURRENT_MM = site("__mmdrop: WARN_ON_ONCE(mm == current->mm)")


def boot_mm(state: SharedState, slot: int, users: int) -> int:
    """Harness: a process's mm, created before the CPUs start (the
    coordinator plays fork)."""
    gen = int(state.field(state.mm, "gen")[slot]) + 1
    assert gen % 2 == 1, "slot already live"
    state.field(state.mm, "mm_users")[slot] = users
    state.field(state.mm, "mm_count")[slot] = 1  # all users together hold one
    # next_trim_cpumask 0: these processes predate the CPUs' clock (and so
    # the explorer's runs of a scenario start from the same memory)
    for field in ("tlb_gen", "freed_tables_gen", "invlpgb_gen", "next_trim_cpumask"):
        state.field(state.mm, field)[slot] = 0
    state.field(state.mm, "gen")[slot] = gen
    return (gen << 32) | slot


def mm_alloc(cpu) -> int:
    """A new mm for a new process, or NULL when this CPU has no free slot.
    Each CPU allocates only from its own slots (s % ncpus == cpu), like a
    per-CPU slab; a slot is free when its generation is even, whoever freed
    it, so no free list has to cross CPUs."""
    mem = cpu.mem
    for slot in cpu.mm_own_slots:
        gen = cpu.load(mem.mm_gen[slot])
        if not gen & 1:
            break
    else:
        return NULL
    gen += 1
    cpu.store(mem.mm_users[slot], 1)  # mm_init
    cpu.store(mem.mm_count[slot], 1)
    for a_word in mem.mm_cpumask[slot]:  # mm_init_cpumask
        cpu.store(a_word, 0)
    cpu.store(mem.mm_tlb_gen[slot], 0)  # init_new_context
    cpu.store(mem.mm_next_trim_cpumask[slot], cpu.jiffies() + HZ)
    cpu.store(mem.mm_invlpgb_gen[slot], 0)
    cpu.store(mem.mm_freed_tables_gen[slot], 0)  # its page tables are live
    cpu.store(mem.mm_gen[slot], gen)  # release: published initialised
    return (gen << 32) | slot


def mmget(cpu, mm: int) -> None:
    cpu.fetch_add(cpu.mem.mm_users[deref(cpu, mm, SITE_MMGET)], 1)


def mmgrab(cpu, mm: int) -> None:
    slot = mm & SLOT_MASK  # deref, inlined: refcount's hot path
    if cpu.load(cpu.mem.mm_gen[slot]) != mm >> 32:
        use_after_free(cpu, mm, SITE_MMGRAB)
    count = cpu.fetch_add(cpu.mem.mm_count[slot], 1) + 1
    if cpu.trace_events is not None:
        cpu.trace_events.append((tracing.now(), tracing.MM_COUNT, slot, count))


def mmput(cpu, mm: int) -> None:
    slot = deref(cpu, mm, SITE_MMPUT)
    users = cpu.add_return(cpu.mem.mm_users[slot], -1)
    if users == 0:
        __mmput(cpu, mm)
    elif users < 0:
        violation(cpu, REFCOUNT_UNDERFLOW, mm, users, SITE_MMPUT)


def __mmput(cpu, mm: int) -> None:
    start, ipis, waited = time.perf_counter_ns(), cpu.stats.ipis_sent, cpu.stats.wait_ns
    _trace_teardown(cpu, tracing.KERNEL_BEGIN, mm)
    cpu.in_teardown = True
    exit_mmap(cpu, mm)
    cpu.strategy.mm_fixup_lazy_refs(cpu, mm)
    mmdrop(cpu, mm)
    cpu.in_teardown = False
    _account_teardown(cpu, start, ipis, waited)
    _trace_teardown(cpu, tracing.KERNEL_END, mm)


def mmdrop(cpu, mm: int) -> None:
    slot = mm & SLOT_MASK  # deref, inlined: refcount's hot path
    if cpu.load(cpu.mem.mm_gen[slot]) != mm >> 32:
        use_after_free(cpu, mm, SITE_MMDROP)
    count = cpu.add_return(cpu.mem.mm_count[slot], -1)
    if cpu.trace_events is not None:
        cpu.trace_events.append((tracing.now(), tracing.MM_COUNT, slot, count))
    if count == 0:
        __mmdrop(cpu, mm)
    elif count < 0:
        violation(cpu, REFCOUNT_UNDERFLOW, mm, count, SITE_MMDROP)


def __mmdrop(cpu, mm: int) -> None:
    start, ipis, waited = time.perf_counter_ns(), cpu.stats.ipis_sent, cpu.stats.wait_ns
    outermost = not cpu.in_teardown
    if outermost:
        _trace_teardown(cpu, tracing.KERNEL_BEGIN, mm)
    if cpu.curr.mm == mm:
        warn(cpu, SITE_WARN_CURRENT_MM, mm)
    cpu.strategy.cleanup_lazy_tlbs(cpu, mm)  # ensure no CPUs are using this as their lazy tlb mm
    if cpu.curr.active_mm == mm:
        warn(cpu, SITE_WARN_ACTIVE_MM, mm)
    # The checker's view (no CPU does this in the kernel): a safe strategy
    # never frees an mm (and its pgd) that any CPU still has loaded.
    for other, a_loaded in enumerate(cpu.mem.cpu_loaded_mm):
        if cpu.load(a_loaded) == mm:
            violation(cpu, FREED_WHILE_LOADED, mm, mm >> 32, SITE_MMDROP_FREE, other)
    slot = mm & SLOT_MASK
    cpu.store(cpu.mem.mm_gen[slot], (mm >> 32) + 1)  # mm_free_pgd, free_mm: every old reference is stale
    cpu.stats.teardowns += 1
    if cpu.trace_events is not None:
        cpu.trace_events.append((tracing.now(), tracing.TEARDOWN, slot, 0))
    if outermost:  # else __mmput accounts for it
        _account_teardown(cpu, start, ipis, waited)
        _trace_teardown(cpu, tracing.KERNEL_END, mm)


@ipi_function
def do_check_lazy_tlb(cpu, mm: int) -> None:
    if cpu.curr.active_mm == mm:
        warn(cpu, SITE_WARN_CHECK_LAZY, mm)


@ipi_function
def do_shoot_lazy_tlb(cpu, mm: int) -> None:
    """On a CPU that may still use `mm` lazily: if its current task borrows
    it, switch that task to init_mm."""
    current = cpu.curr
    if current.active_mm == mm:
        if current.mm:
            warn(cpu, SITE_WARN_SHOOT_MM, mm)
        current.active_mm = INIT_MM
        switch_mm(cpu, mm, INIT_MM)
        cpu.strategy.lazy_tlb_shot(cpu)


def cleanup_lazy_tlbs(cpu, mm: int) -> None:
    """CONFIG_MMU_LAZY_TLB_SHOOTDOWN: before the mm is freed, IPI every CPU
    in mm_cpumask to shoot its lazy use of it, and wait for all of them
    (CONFIG_DEBUG_VM_SHOOT_LAZIES's do_check_lazy_tlb round is off)."""
    on_each_cpu_mask(cpu, mm_cpumask_cpus(cpu, mm, SITE_SHOOT_MASK), do_shoot_lazy_tlb, mm)


def _trace_teardown(cpu, kind: int, mm: int) -> None:
    if cpu.trace_events is not None:
        cpu.trace_events.append((tracing.now(), kind, tracing.KERNEL_TEARDOWN, mm & SLOT_MASK))


def _account_teardown(cpu, start_ns: int, ipis_before: int, wait_before: int) -> None:
    """Harness: a teardown's latency, IPIs and waiting, for the result."""
    stats = cpu.stats
    elapsed = time.perf_counter_ns() - start_ns
    stats.teardown_ns += elapsed
    stats.teardown_ipis += stats.ipis_sent - ipis_before
    stats.teardown_wait_ns += stats.wait_ns - wait_before
    record(stats.teardown_hist, elapsed)
