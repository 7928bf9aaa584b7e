"""mm/mmu_gather.c: tlb_gather_mmu_fullmm and tlb_finish_mmu, with the
inlines they are built on: include/asm-generic/tlb.h's
tlb_flush_mmu_tlbonly and x86's tlb_flush (arch/x86/include/asm/tlb.h).

The gather collects what exit_mmap unmaps and frees; tlb_finish_mmu flushes
the TLBs (with freed_tables set once page tables were freed, which on x86
reaches lazy CPUs too) and only then frees the gathered page-table pages.
"""
from __future__ import annotations

from percpu.linux.arch.x86.mm.tlb import flush_tlb_mm_range
from percpu.machine.segment import SLOT_MASK


class MmuGather:
    """struct mmu_gather: the parts the flush decision reads."""

    __slots__ = ("mm", "fullmm", "freed_tables")

    def __init__(self, mm: int, fullmm: bool):
        self.mm, self.fullmm, self.freed_tables = mm, fullmm, False


def tlb_gather_mmu_fullmm(cpu, mm: int) -> MmuGather:
    return MmuGather(mm, fullmm=True)


def tlb_flush(cpu, tlb: MmuGather) -> int:
    """x86: flush the whole mm (fullmm), telling the flush whether page
    tables were freed. Returns the flush's tlb_gen."""
    freed_tables = tlb.freed_tables and cpu.strategy.exit_flush_reaches_lazy
    return flush_tlb_mm_range(cpu, tlb.mm, freed_tables)


def tlb_finish_mmu(cpu, tlb: MmuGather) -> None:
    """tlb_flush_mmu: the TLB flush (tlb_flush_mmu_tlbonly -> tlb_flush),
    then the gathered pages and page tables are freed (tlb_flush_mmu_free;
    RCU-deferred, which stops no hardware walker)."""
    flushed_gen = tlb_flush(cpu, tlb)
    if tlb.freed_tables:
        cpu.store(cpu.mem.mm_freed_tables_gen[tlb.mm & SLOT_MASK], flushed_gen)
