# Types of percpu/strategies/refcount.py for the compiled engine.
from libc.stdint cimport int64_t

from percpu.linux.include_.linux.sched.mm cimport Strategy
from percpu.linux.kernel.fork cimport mmdrop, mmgrab
from percpu.machine.context cimport CPU

cdef class Refcount(Strategy):
    cpdef void mmgrab_lazy_tlb(self, CPU cpu, int64_t mm) except *
    cpdef void mmdrop_lazy_tlb(self, CPU cpu, int64_t mm) except *
