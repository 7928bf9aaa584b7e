# Types of percpu/strategies/hazard.py for the compiled engine.
from libc.stdint cimport int64_t

from percpu.linux.include_.linux.sched.mm cimport Strategy
from percpu.linux.kernel.smp cimport smp_call_function_single
from percpu.machine.checker cimport warn
from percpu.machine.context cimport CPU

cdef int64_t NULL

cdef class Hazard(Strategy):
    cpdef void mmgrab_lazy_tlb(self, CPU cpu, int64_t mm) except *
    cpdef void mmdrop_lazy_tlb(self, CPU cpu, int64_t mm) except *
    cpdef void lazy_tlb_shot(self, CPU cpu) except *
    cpdef void cleanup_lazy_tlbs(self, CPU cpu, int64_t mm) except *

cpdef bint hp_allocate(CPU cpu, int64_t mm) except? -1
