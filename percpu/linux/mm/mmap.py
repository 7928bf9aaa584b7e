"""mm/mmap.c: exit_mmap, the last user's unmapping of the whole address
space: gather, unmap the VMAs, free the page tables, and flush."""
from __future__ import annotations

from percpu.linux.mm.mmu_gather import tlb_finish_mmu, tlb_gather_mmu_fullmm


def exit_mmap(cpu, mm: int) -> None:
    tlb = tlb_gather_mmu_fullmm(cpu, mm)
    # unmap_vmas(): no pages are modelled; free_pgtables(): pte/pmd/pud_free_tlb
    # set freed_tables (the pages go at tlb_finish_mmu, after the flush)
    tlb.freed_tables = True
    tlb_finish_mmu(cpu, tlb)
