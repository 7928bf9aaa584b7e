"""x86's lazy TLB state and TLB flushing (arch/x86/mm/tlb.c).

Each CPU's cpu_tlbstate (loaded_mm, is_lazy, the tlb_gen its TLB holds) is
its own; the mm's tlb_gen says which flush generation its page tables are
at. A lazy CPU is skipped by ordinary flushes (should_flush_tlb) and catches
up when it switches back (switch_mm_irqs_off reads tlb_gen); a flush that
frees page tables reaches lazy CPUs too, which answer by leaving the mm.
"""
from __future__ import annotations

from percpu import mm as mmlib
from percpu.smp import ipi_function, on_each_cpu_mask
from percpu.state import INIT_MM, LOADED_MM_SWITCHING, NULL, SLOT_MASK
from percpu.violations import site

SITE_TLB_GEN = site("switch_mm_irqs_off: read next->context.tlb_gen")
SITE_FLUSH_TLB_GEN = site("flush_tlb_func: read tlb_gen")
SITE_FLUSH_RANGE = site("flush_tlb_mm_range: tlb_gen++")
SITE_FLUSH_RANGE_MASK = site("flush_tlb_mm_range: read mm_cpumask")


def enter_lazy_tlb(cpu, mm: int) -> None:
    if cpu.loaded_mm == INIT_MM:
        return
    cpu.is_lazy = 1  # cpu_tlbstate_shared.is_lazy (write-through mirror)
    cpu.store(cpu.a_is_lazy, 1)


def switch_mm_irqs_off(cpu, prev: int, next: int) -> None:
    """x86: loaded_mm, is_lazy, mm_cpumask, tlb_gen. `prev` is unused, as on
    x86: the CPU's own loaded_mm says what it really had."""
    real_prev = cpu.loaded_mm
    was_lazy = cpu.is_lazy
    if was_lazy:
        cpu.is_lazy = 0
        cpu.store(cpu.a_is_lazy, 0)
    if real_prev == next:
        # Back to the mm we kept loaded while lazy: only catch a flush missed
        # while lazy (a user->user switch within one process skips even that).
        if was_lazy:
            # The barrier pairs with a flush's tlb_gen increment: either the
            # flusher sees is_lazy clear (and IPIs us), or we see its tlb_gen.
            cpu.smp_mb()
            load = cpu.load
            slot = next & SLOT_MASK  # cpu.deref, inlined on the hot path
            if load(cpu.mm_gen[slot]) != next >> 32:
                cpu.use_after_free(next, SITE_TLB_GEN)
            tlb_gen = load(cpu.mm_tlb_gen[slot])
            if tlb_gen != cpu.loaded_tlb_gen:
                cpu.loaded_tlb_gen = tlb_gen  # flush_tlb_local
        return
    cpu.set_loaded_mm(LOADED_MM_SWITCHING)
    if real_prev != INIT_MM and cpu.cpumask_clear_on_switch:
        mmlib.cpumask_clear_cpu(cpu, real_prev, cpu.id)
    if next != INIT_MM:
        mmlib.cpumask_set_cpu(cpu, next, cpu.id)
        cpu.loaded_tlb_gen = cpu.load(cpu.mm_tlb_gen[cpu.deref(next, SITE_TLB_GEN)])
    cpu.set_loaded_mm(next)  # load_new_mm_cr3


@ipi_function
def flush_tlb_func(cpu, mm: int) -> None:
    if cpu.loaded_mm != mm:
        # This CPU has moved on. With a lazily maintained mm_cpumask its bit
        # is stale: trim it, so the next flush skips this CPU.
        if not cpu.cpumask_clear_on_switch:
            mmlib.cpumask_clear_cpu(cpu, mm, cpu.id)
        return
    if cpu.is_lazy:
        switch_mm_irqs_off(cpu, NULL, INIT_MM)
        return
    cpu.loaded_tlb_gen = cpu.load(cpu.mm_tlb_gen[cpu.deref(mm, SITE_FLUSH_TLB_GEN)])


def should_flush_tlb(cpu, other: int, mm: int) -> bool:
    """A lazy CPU will catch up with tlb_gen when it switches back; one that
    no longer has the mm loaded needs nothing; one in the middle of a switch
    may hold either mm's entries."""
    loaded_mm = cpu.load(cpu.cpu_loaded_mm[other])  # before is_lazy (smp_rmb, free on x86)
    if cpu.load(cpu.cpu_is_lazy[other]):
        return False
    return loaded_mm == LOADED_MM_SWITCHING or loaded_mm == mm


def flush_tlb_mm_range(cpu, mm: int) -> int:
    """A flush of part of `mm` that frees no page tables (munmap of pages,
    mprotect): bump tlb_gen, then flush every CPU in mm_cpumask that
    should_flush_tlb picks, this one included, and wait for them. Returns
    the new generation: once this returns, no CPU may run `mm`'s user code
    with an older TLB (the pages may be reused)."""
    new_tlb_gen = cpu.add_return(cpu.mm_tlb_gen[cpu.deref(mm, SITE_FLUSH_RANGE)], 1)  # inc_mm_tlb_gen
    targets = [c for c in mmlib.mm_cpumask_cpus(cpu, mm, SITE_FLUSH_RANGE_MASK) if should_flush_tlb(cpu, c, mm)]
    on_each_cpu_mask(cpu, targets, flush_tlb_func, mm)
    return new_tlb_gen
