"""mm_struct lifecycle (kernel/fork.c, kernel/exit.c) and mm_cpumask.

mm_users counts real users (threads); all of them together hold one mm_count
reference, and lazy users hold mm_count references when the strategy takes
them. The last mmput runs exit_mmap and mmdrop; the last mmdrop runs
__mmdrop, which is where a strategy's cleanup_lazy_tlbs runs and the slot is
freed (its generation bumped, so stale references are caught).
"""
from __future__ import annotations

import time

from percpu import trace
from percpu.cpu import record
from percpu.state import NULL, SLOT_MASK, SharedState
from percpu.violations import FREED_WHILE_LOADED, REFCOUNT_UNDERFLOW, site

SITE_MMGET = site("mmget: mm_users++")
SITE_MMPUT = site("mmput: mm_users--")
SITE_MMGRAB = site("mmgrab: mm_count++")
SITE_MMDROP = site("mmdrop: mm_count--")
SITE_EXIT_MMAP = site("exit_mmap: tlb_gen++ (freed page tables)")
SITE_CPUMASK = site("switch_mm_irqs_off: mm_cpumask update")
SITE_MMDROP_FREE = site("__mmdrop: free while a CPU has it as loaded_mm")


def boot_mm(state: SharedState, slot: int, users: int) -> int:
    """Create a process's mm before the CPUs start (the coordinator's fork)."""
    gen = int(state.field(state.mm, "gen")[slot]) + 1
    assert gen % 2 == 1, "slot already live"
    state.field(state.mm, "mm_users")[slot] = users
    state.field(state.mm, "mm_count")[slot] = 1  # all users together hold one
    state.field(state.mm, "tlb_gen")[slot] = 0
    state.field(state.mm, "gen")[slot] = gen
    return (gen << 32) | slot


def mm_alloc(cpu) -> int:
    """A new mm for a new process, or NULL when this CPU has no free slot.
    Each CPU allocates only from its own slots (s % ncpus == cpu), like a
    per-CPU slab; a slot is free when its generation is even, whoever freed
    it, so no free list has to cross CPUs."""
    for slot in cpu.mm_own_slots:
        gen = cpu.load(cpu.mm_gen[slot])
        if not gen & 1:
            break
    else:
        return NULL
    gen += 1
    cpu.store(cpu.mm_users[slot], 1)
    cpu.store(cpu.mm_count[slot], 1)
    cpu.store(cpu.mm_tlb_gen[slot], 0)
    for a_word in cpu.mm_cpumask[slot]:
        cpu.store(a_word, 0)
    cpu.store(cpu.mm_gen[slot], gen)  # release: published initialised
    return (gen << 32) | slot


def mmget(cpu, mm: int) -> None:
    cpu.fetch_add(cpu.mm_users[cpu.deref(mm, SITE_MMGET)], 1)


def mmgrab(cpu, mm: int) -> None:
    slot = mm & SLOT_MASK  # cpu.deref, inlined: refcount's hot path
    if cpu.load(cpu.mm_gen[slot]) != mm >> 32:
        cpu.use_after_free(mm, SITE_MMGRAB)
    count = cpu.fetch_add(cpu.mm_count[slot], 1) + 1
    if cpu.trace_events is not None:
        cpu.trace_events.append((trace.now(), trace.MM_COUNT, slot, count))


def mmput(cpu, mm: int) -> None:
    slot = cpu.deref(mm, SITE_MMPUT)
    users = cpu.add_return(cpu.mm_users[slot], -1)
    if users == 0:
        __mmput(cpu, mm)
    elif users < 0:
        cpu.violation(REFCOUNT_UNDERFLOW, mm, users, SITE_MMPUT)


def __mmput(cpu, mm: int) -> None:
    start, ipis, waited = time.perf_counter_ns(), cpu.ipis_sent, cpu.wait_ns
    _trace_teardown(cpu, trace.KERNEL_BEGIN, mm)
    cpu.in_teardown = True
    cpu.strategy.mmput_lazy_fixup(cpu, mm)
    exit_mmap(cpu, mm)
    mmdrop(cpu, mm)
    cpu.in_teardown = False
    _account_teardown(cpu, start, ipis, waited)
    _trace_teardown(cpu, trace.KERNEL_END, mm)


def exit_mmap(cpu, mm: int) -> None:
    """Unmap everything and free the page tables: a TLB flush with
    freed_tables set (what a strategy does about lazy CPUs is its own)."""
    cpu.fetch_add(cpu.mm_tlb_gen[cpu.deref(mm, SITE_EXIT_MMAP)], 1)
    cpu.strategy.exit_mmap_flush(cpu, mm)


def mmdrop(cpu, mm: int) -> None:
    slot = mm & SLOT_MASK  # cpu.deref, inlined: refcount's hot path
    if cpu.load(cpu.mm_gen[slot]) != mm >> 32:
        cpu.use_after_free(mm, SITE_MMDROP)
    count = cpu.add_return(cpu.mm_count[slot], -1)
    if cpu.trace_events is not None:
        cpu.trace_events.append((trace.now(), trace.MM_COUNT, slot, count))
    if count == 0:
        __mmdrop(cpu, mm)
    elif count < 0:
        cpu.violation(REFCOUNT_UNDERFLOW, mm, count, SITE_MMDROP)


def __mmdrop(cpu, mm: int) -> None:
    start, ipis, waited = time.perf_counter_ns(), cpu.ipis_sent, cpu.wait_ns
    outermost = not cpu.in_teardown
    if outermost:
        _trace_teardown(cpu, trace.KERNEL_BEGIN, mm)
    cpu.strategy.cleanup_lazy_tlbs(cpu, mm)
    # The checker's view (no CPU does this in the kernel): a safe strategy
    # never frees an mm that any CPU still has loaded.
    for other, a_loaded in enumerate(cpu.cpu_loaded_mm):
        if cpu.load(a_loaded) == mm:
            cpu.violation(FREED_WHILE_LOADED, mm, mm >> 32, SITE_MMDROP_FREE, other)
    slot = mm & SLOT_MASK
    cpu.store(cpu.mm_gen[slot], (mm >> 32) + 1)  # free: every old reference is stale
    cpu.teardowns += 1
    if cpu.trace_events is not None:
        cpu.trace_events.append((trace.now(), trace.TEARDOWN, slot, 0))
    if outermost:  # else __mmput accounts for it
        _account_teardown(cpu, start, ipis, waited)
        _trace_teardown(cpu, trace.KERNEL_END, mm)


def _trace_teardown(cpu, kind: int, mm: int) -> None:
    if cpu.trace_events is not None:
        cpu.trace_events.append((trace.now(), kind, trace.KERNEL_TEARDOWN, mm & SLOT_MASK))


def _account_teardown(cpu, start_ns: int, ipis_before: int, wait_before: int) -> None:
    elapsed = time.perf_counter_ns() - start_ns
    cpu.teardown_ns += elapsed
    cpu.teardown_ipis += cpu.ipis_sent - ipis_before
    cpu.teardown_wait_ns += cpu.wait_ns - wait_before
    record(cpu.teardown_hist, elapsed)


# --- mm_cpumask: which CPUs may have TLB state for the mm --------------------
def _bit(cpu_id: int) -> tuple[int, int]:
    b = cpu_id & 63
    return cpu_id >> 6, (1 << b) if b < 63 else -(1 << 63)  # int64 words


def cpumask_set_cpu(cpu, mm: int, cpu_id: int) -> None:
    word, bit = _bit(cpu_id)
    a_word = cpu.mm_cpumask[cpu.deref(mm, SITE_CPUMASK)][word]
    old = cpu.load(a_word)
    while not old & bit:  # lock bts
        found = cpu.cmpxchg(a_word, old, old | bit)
        if found == old:
            break
        old = found


def cpumask_clear_cpu(cpu, mm: int, cpu_id: int) -> None:
    word, bit = _bit(cpu_id)
    a_word = cpu.mm_cpumask[cpu.deref(mm, SITE_CPUMASK)][word]
    old = cpu.load(a_word)
    while old & bit:  # lock btr
        found = cpu.cmpxchg(a_word, old, old & ~bit)
        if found == old:
            break
        old = found


def mm_cpumask_cpus(cpu, mm: int, site_id: int) -> list[int]:
    """The CPUs whose bit is set in mm_cpumask(mm)."""
    words = cpu.mm_cpumask[cpu.deref(mm, site_id)]
    cpus = []
    for w in range((cpu.ncpus + 63) >> 6):
        value = cpu.load(words[w]) & 0xFFFFFFFFFFFFFFFF
        while value:
            low = value & -value
            cpus.append((w << 6) + low.bit_length() - 1)
            value ^= low
    return cpus

