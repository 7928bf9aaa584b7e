# Types of percpu/linux/include_/linux/sched/mm.py for the compiled engine.
from libc.stdint cimport int64_t

from percpu.machine.context cimport CPU

cdef class Strategy:
    cpdef void mmgrab_lazy_tlb(self, CPU cpu, int64_t mm) except *
    cpdef void mmdrop_lazy_tlb(self, CPU cpu, int64_t mm) except *
    cpdef void finish_task_switch(self, CPU cpu) except *
    cpdef void lazy_tlb_shot(self, CPU cpu) except *
    cpdef void mm_fixup_lazy_refs(self, CPU cpu, int64_t mm) except *
    cpdef void cleanup_lazy_tlbs(self, CPU cpu, int64_t mm) except *
