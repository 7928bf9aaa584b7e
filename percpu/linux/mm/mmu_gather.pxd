# Types of percpu/linux/mm/mmu_gather.py for the compiled engine.
from libc.stdint cimport int64_t

from percpu.linux.arch.x86.mm.tlb cimport flush_tlb_mm_range
from percpu.machine.context cimport CPU

cdef int64_t SLOT_MASK

cdef class MmuGather:
    cdef public int64_t mm
    cdef public bint fullmm, freed_tables

cpdef MmuGather tlb_gather_mmu_fullmm(CPU cpu, int64_t mm)
cpdef int64_t tlb_flush(CPU cpu, MmuGather tlb) except? -1
cpdef void tlb_finish_mmu(CPU cpu, MmuGather tlb) except *
