"""arch/x86/mm/tlb.c: x86's lazy TLB state and TLB flushing.

Each CPU's cpu_tlbstate (loaded_mm, is_lazy, the tlb_gen its TLB holds) is
its own; the mm's tlb_gen says which flush generation its page tables are
at. A lazy CPU is skipped by ordinary flushes (should_flush_tlb) and catches
up when it switches back (switch_mm_irqs_off reads tlb_gen); a flush that
frees page tables reaches lazy CPUs too, which answer by leaving the mm.
"""
from __future__ import annotations

from percpu.linux.include.linux.cpumask import cpumask_clear_cpu, cpumask_set_cpu, mm_cpumask_cpus
from percpu.linux.kernel.smp import ipi_function, on_each_cpu_mask
from percpu.machine.checker import deref, site, use_after_free
from percpu.machine.segment import INIT_MM, LOADED_MM_SWITCHING, NULL, SLOT_MASK

SITE_TLB_GEN = site("switch_mm_irqs_off: read next->context.tlb_gen")
SITE_FLUSH_TLB_GEN = site("flush_tlb_func: read tlb_gen")
SITE_FLUSH_RANGE = site("flush_tlb_mm_range: tlb_gen++")
SITE_FLUSH_RANGE_MASK = site("flush_tlb_mm_range: read mm_cpumask")


def set_loaded_mm(cpu, mm: int) -> None:
    """this_cpu_write(cpu_tlbstate.loaded_mm, mm): mirror and shared field."""
    cpu.loaded_mm = mm
    cpu.store(cpu.a_loaded_mm, mm)


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
            slot = next & SLOT_MASK  # deref, inlined on the hot path
            if load(cpu.mem.mm_gen[slot]) != next >> 32:
                use_after_free(cpu, next, SITE_TLB_GEN)
            tlb_gen = load(cpu.mem.mm_tlb_gen[slot])
            if tlb_gen != cpu.loaded_tlb_gen:
                cpu.loaded_tlb_gen = tlb_gen  # flush_tlb_local
        return
    set_loaded_mm(cpu, LOADED_MM_SWITCHING)
    if real_prev != INIT_MM and cpu.cpumask_clear_on_switch:
        cpumask_clear_cpu(cpu, real_prev, cpu.id)
    if next != INIT_MM:
        cpumask_set_cpu(cpu, next, cpu.id)
        cpu.loaded_tlb_gen = cpu.load(cpu.mem.mm_tlb_gen[deref(cpu, next, SITE_TLB_GEN)])
    set_loaded_mm(cpu, next)  # load_new_mm_cr3


@ipi_function
def flush_tlb_func(cpu, mm: int) -> None:
    if cpu.loaded_mm != mm:
        # This CPU has moved on. With a lazily maintained mm_cpumask its bit
        # is stale: trim it, so the next flush skips this CPU.
        if not cpu.cpumask_clear_on_switch:
            cpumask_clear_cpu(cpu, mm, cpu.id)
        return
    if cpu.is_lazy:
        switch_mm_irqs_off(cpu, NULL, INIT_MM)
        return
    cpu.loaded_tlb_gen = cpu.load(cpu.mem.mm_tlb_gen[deref(cpu, mm, SITE_FLUSH_TLB_GEN)])


def should_flush_tlb(cpu, other: int, mm: int) -> bool:
    """A lazy CPU will catch up with tlb_gen when it switches back; one that
    no longer has the mm loaded needs nothing; one in the middle of a switch
    may hold either mm's entries."""
    loaded_mm = cpu.load(cpu.mem.cpu_loaded_mm[other])  # before is_lazy (smp_rmb, free on x86)
    if cpu.load(cpu.mem.cpu_is_lazy[other]):
        return False
    return loaded_mm == LOADED_MM_SWITCHING or loaded_mm == mm


def flush_tlb_mm_range(cpu, mm: int) -> int:
    """A flush of part of `mm` that frees no page tables (munmap of pages,
    mprotect): bump tlb_gen, then flush every CPU in mm_cpumask that
    should_flush_tlb picks, this one included, and wait for them. Returns
    the new generation: once this returns, no CPU may run `mm`'s user code
    with an older TLB (the pages may be reused)."""
    new_tlb_gen = cpu.add_return(cpu.mem.mm_tlb_gen[deref(cpu, mm, SITE_FLUSH_RANGE)], 1)  # inc_mm_tlb_gen
    targets = [c for c in mm_cpumask_cpus(cpu, mm, SITE_FLUSH_RANGE_MASK) if should_flush_tlb(cpu, c, mm)]
    on_each_cpu_mask(cpu, targets, flush_tlb_func, mm)
    return new_tlb_gen
