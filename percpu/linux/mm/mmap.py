"""mm/mmap.c: exit_mmap, the last user's unmapping of the whole address space."""
from __future__ import annotations

from percpu.machine.checker import deref, site

SITE_EXIT_MMAP = site("exit_mmap: tlb_gen++ (freed page tables)")


def exit_mmap(cpu, mm: int) -> None:
    """Unmap everything and free the page tables: a TLB flush with
    freed_tables set (what a strategy does about lazy CPUs is its own)."""
    cpu.fetch_add(cpu.mem.mm_tlb_gen[deref(cpu, mm, SITE_EXIT_MMAP)], 1)
    cpu.strategy.exit_mmap_flush(cpu, mm)
