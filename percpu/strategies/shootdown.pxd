# Types of percpu/strategies/shootdown.py for the compiled engine.
from libc.stdint cimport int64_t

from percpu.linux.include_.linux.sched.mm cimport Strategy
from percpu.linux.kernel.fork cimport cleanup_lazy_tlbs
from percpu.machine.context cimport CPU

cdef class Shootdown(Strategy):
    cpdef void mmdrop_lazy_tlb(self, CPU cpu, int64_t mm) except *
    cpdef void cleanup_lazy_tlbs(self, CPU cpu, int64_t mm) except *
