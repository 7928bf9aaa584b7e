"""arch/x86/mm/tlb.c: x86's lazy TLB state and TLB flushing, as of Linux 6.12
and 6.18 (include/linux/version.py lists what differs, commit by commit).

Each CPU's cpu_tlbstate (loaded_mm, is_lazy, the tlb_gen its TLB holds) is
its own; the mm's tlb_gen says which flush generation its page tables are
at. A lazy CPU is skipped by ordinary flushes (should_flush_tlb) and catches
up when it switches back (switch_mm_irqs_off reads tlb_gen); a flush that
frees page tables reaches lazy CPUs too, which answer by leaving the mm.
With broadcast flushes (AMD INVLPGB, global ASIDs, 6.15+) no flush sends an
IPI: the hardware invalidates every CPU's TLB, lazy or not, and no CPU is
moved off the mm.

Not modelled: PCIDs/ASIDs (every switch to another mm flushes; under
INVLPGB every mm has a global ASID from the start, so there is no ASID
transition), LAM, the DEBUG_VM checks, partial flushes (every flush is of
the whole mm), kthread_use_mm.
"""
from __future__ import annotations

from percpu.linux.include_.linux.cpumask import (cpumask_any_but, cpumask_clear_cpu, cpumask_set_cpu,
                                                cpumask_test_cpu, mm_cpumask_cpus)
from percpu.linux.kernel.smp import ipi_function, on_each_cpu_cond_mask, on_each_cpu_mask
from percpu.machine.checker import deref, site, use_after_free
from percpu.machine.context import HZ
from percpu.machine.segment import INIT_MM, LOADED_MM_SWITCHING, NULL, SLOT_MASK

SITE_TLB_GEN = site("switch_mm_irqs_off: read next->context.tlb_gen")
SITE_FLUSH_INFO = site("flush_tlb_func: read f->mm's mm_cpumask")
SITE_FLUSH_TLB_GEN = site("flush_tlb_func: read loaded_mm->context.tlb_gen")
SITE_FLUSH_RANGE = site("flush_tlb_mm_range: inc_mm_tlb_gen")
SITE_TRIM = site("should_trim_cpumask: mm->context.next_trim_cpumask")


def set_loaded_mm(cpu, mm: int) -> None:
    """this_cpu_write(cpu_tlbstate.loaded_mm, mm): mirror and shared field."""
    cpu.loaded_mm = mm
    cpu.store(cpu.a_loaded_mm, mm)


def enter_lazy_tlb(cpu, mm: int) -> None:
    if cpu.loaded_mm == INIT_MM:
        return
    cpu.is_lazy = 1  # cpu_tlbstate_shared.is_lazy (write-through mirror)
    cpu.store(cpu.a_is_lazy, 1)


def switch_mm_irqs_off(cpu, unused: int, next: int) -> None:
    """x86 ignores `unused` (prev's active_mm): the CPU's own loaded_mm says
    what it really had."""
    kernel = cpu.kernel
    prev = cpu.loaded_mm
    was_lazy = cpu.is_lazy
    if was_lazy:
        cpu.is_lazy = 0
        cpu.store(cpu.a_is_lazy, 0)
    if prev == next:
        if kernel.invlpgb:
            return  # is_global_asid(prev_asid): broadcast invalidation keeps it up to date
        if not was_lazy:
            return  # one thread of a process to another: no flush
        # The barrier synchronizes with the tlb_gen increment in the TLB
        # shootdown code: either the flusher sees is_lazy clear (and IPIs
        # us), or we see its tlb_gen.
        cpu.smp_mb()
        slot = next & SLOT_MASK  # deref, inlined on the hot path
        if cpu.load(cpu.mem.mm_gen[slot]) != next >> 32:
            use_after_free(cpu, next, SITE_TLB_GEN)
        next_tlb_gen = cpu.load(cpu.mem.mm_tlb_gen[slot])
        if cpu.loaded_tlb_gen == next_tlb_gen:
            return
        cpu.loaded_tlb_gen = next_tlb_gen  # out of date while lazy: flush and reload CR3
        set_loaded_mm(cpu, next)
        return
    if kernel.switching_before_cpumask:  # 6.18
        set_loaded_mm(cpu, LOADED_MM_SWITCHING)
        if next != INIT_MM and not cpumask_test_cpu(cpu, next, cpu.id):
            cpumask_set_cpu(cpu, next, cpu.id)
        else:
            cpu.smp_mb()
        next_tlb_gen = cpu.load(cpu.mem.mm_tlb_gen[deref(cpu, next, SITE_TLB_GEN)])
    else:  # 6.12: stop remote flushes for prev, start receiving them for next
        if prev != INIT_MM:
            cpumask_clear_cpu(cpu, prev, cpu.id)
        if next != INIT_MM:
            cpumask_set_cpu(cpu, next, cpu.id)
        next_tlb_gen = cpu.load(cpu.mem.mm_tlb_gen[deref(cpu, next, SITE_TLB_GEN)])
        set_loaded_mm(cpu, LOADED_MM_SWITCHING)  # after choose_new_asid()
    # choose_new_asid(): without PCIDs every switch flushes (a global ASID
    # needs none: INVLPGB kept it current); either way the TLB is now at next_tlb_gen
    cpu.loaded_tlb_gen = next_tlb_gen
    set_loaded_mm(cpu, next)  # load_new_mm_cr3(), barrier(), loaded_mm = next


def switch_mm(cpu, prev: int, next: int) -> None:
    """switch_mm_irqs_off with interrupts off (no interrupts to hold off here)."""
    switch_mm_irqs_off(cpu, NULL, next)


# --- flush_tlb_info: the initiator's record, which the IPI handlers read ---------
# byte offsets of its fields (segment.FLUSH_INFO_LINES: one line of words)
F_MM, F_NEW_TLB_GEN, F_FREED_TABLES, F_INITIATING_CPU, F_TRIM_CPUMASK = 0, 8, 16, 24, 32


def get_flush_tlb_info(cpu, mm: int, freed_tables: bool, new_tlb_gen: int) -> int:
    """Fill this CPU's flush_tlb_info; returns its address (the IPIs' argument)."""
    info = cpu.mem.flush_tlb_info[cpu.id]
    cpu.store(info + F_MM, mm)
    cpu.store(info + F_NEW_TLB_GEN, new_tlb_gen)
    cpu.store(info + F_FREED_TABLES, int(freed_tables))
    cpu.store(info + F_INITIATING_CPU, cpu.id)
    cpu.store(info + F_TRIM_CPUMASK, 0)
    return info


@ipi_function
def flush_tlb_func(cpu, info: int) -> None:
    loaded_mm = cpu.loaded_mm
    local = cpu.load(info + F_INITIATING_CPU) == cpu.id
    f_mm = cpu.load(info + F_MM)
    if cpu.kernel.lazy_mm_cpumask:  # 6.14+
        if f_mm != NULL and f_mm != loaded_mm:
            cpumask_clear_cpu(cpu, f_mm, cpu.id)  # the CPU was left in the mm_cpumask: clear it
            return
    elif not local and f_mm != NULL and f_mm != loaded_mm:
        return  # can only happen on remote CPUs
    if loaded_mm == INIT_MM:
        return
    if cpu.kernel.invlpgb:
        return  # broadcast ASIDs are always kept up to date with INVLPGB
    if cpu.is_lazy:
        # We need to at least flush our paging-structure cache to avoid
        # speculatively reading garbage into our TLB: switch to init_mm.
        switch_mm_irqs_off(cpu, NULL, INIT_MM)
        return
    local_tlb_gen = cpu.loaded_tlb_gen
    if cpu.load(info + F_NEW_TLB_GEN) <= local_tlb_gen:  # already up to date
        return
    mm_tlb_gen = cpu.load(cpu.mem.mm_tlb_gen[deref(cpu, loaded_mm, SITE_FLUSH_TLB_GEN)])
    if local_tlb_gen == mm_tlb_gen:
        return
    cpu.loaded_tlb_gen = mm_tlb_gen  # flush_tlb_local(); ctxs[asid].tlb_gen = mm_tlb_gen


def tlb_is_not_lazy(cpu, other: int, info: int) -> bool:
    """6.12's IPI filter."""
    return not cpu.load(cpu.mem.cpu_is_lazy[other])


def should_flush_tlb(cpu, other: int, info: int) -> bool:
    """6.14+'s IPI filter: a lazy CPU catches up at its next switch; one
    that no longer has the mm loaded needs nothing, unless this flush trims
    the mask; one in the middle of a switch may hold either mm's entries."""
    loaded_mm = cpu.load(cpu.mem.cpu_loaded_mm[other])  # smp_rmb(): loaded_mm before is_lazy (free on x86)
    if cpu.load(cpu.mem.cpu_is_lazy[other]):
        return False
    mm = cpu.load(info + F_MM)
    if mm == NULL:
        return True
    if cpu.kernel.flush_switching and loaded_mm == LOADED_MM_SWITCHING:
        return True
    if loaded_mm == mm:
        return True
    return bool(cpu.load(info + F_TRIM_CPUMASK))


def should_trim_cpumask(cpu, mm: int) -> bool:
    a_next = cpu.mem.mm_next_trim_cpumask[deref(cpu, mm, SITE_TRIM)]
    if cpu.jiffies() > cpu.load(a_next):  # time_after(jiffies, next_trim_cpumask)
        cpu.store(a_next, cpu.jiffies() + HZ)
        return True
    return False


def native_flush_tlb_multi(cpu, targets: list[int], info: int) -> None:
    """If page tables are getting freed, send the IPI everywhere, lazy CPUs
    included (they must not trip over what used to be page tables); else
    skip the lazy ones, which flush at their next switch."""
    if cpu.load(info + F_FREED_TABLES):
        on_each_cpu_mask(cpu, targets, flush_tlb_func, info)
    else:
        cond = should_flush_tlb if cpu.kernel.trim_cpumask else tlb_is_not_lazy
        on_each_cpu_cond_mask(cpu, cond, targets, flush_tlb_func, info)


def broadcast_tlb_flush(cpu, mm: int, new_tlb_gen: int) -> None:
    """INVLPGB of the mm's global ASID, then TLBSYNC: every CPU's TLB for
    the mm, lazy or not, is invalidated up to new_tlb_gen; nobody is IPI'd."""
    a_gen = cpu.mem.mm_invlpgb_gen[mm & SLOT_MASK]
    old = cpu.load(a_gen)
    while old < new_tlb_gen:  # concurrent flushes: the newest wins
        found = cpu.cmpxchg(a_gen, old, new_tlb_gen)
        if found == old:
            break
        old = found


def flush_tlb_mm_range(cpu, mm: int, freed_tables: bool = False) -> int:
    """A flush of the whole of `mm` (munmap, or exit_mmap's with freed page
    tables): bump tlb_gen, then flush every CPU in mm_cpumask that must be,
    this one included, and wait for them. Returns the new generation: once
    this returns, no CPU may run `mm`'s user code with an older TLB."""
    new_tlb_gen = cpu.add_return(cpu.mem.mm_tlb_gen[deref(cpu, mm, SITE_FLUSH_RANGE)], 1)  # inc_mm_tlb_gen
    info = get_flush_tlb_info(cpu, mm, freed_tables, new_tlb_gen)
    if cpu.kernel.invlpgb:  # mm_global_asid(mm)
        broadcast_tlb_flush(cpu, mm, new_tlb_gen)
    elif cpumask_any_but(cpu, mm, cpu.id):
        if cpu.kernel.trim_cpumask:
            cpu.store(info + F_TRIM_CPUMASK, int(should_trim_cpumask(cpu, mm)))
        native_flush_tlb_multi(cpu, mm_cpumask_cpus(cpu, mm, SITE_FLUSH_RANGE), info)
    elif mm == cpu.loaded_mm:
        flush_tlb_func(cpu, info)
    return new_tlb_gen
