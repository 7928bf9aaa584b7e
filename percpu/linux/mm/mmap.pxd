# Types of percpu/linux/mm/mmap.py for the compiled engine.
from libc.stdint cimport int64_t

from percpu.linux.mm.mmu_gather cimport MmuGather, tlb_finish_mmu, tlb_gather_mmu_fullmm
from percpu.machine.context cimport CPU

cpdef void exit_mmap(CPU cpu, int64_t mm) except *
