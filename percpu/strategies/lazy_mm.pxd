# Types of percpu/strategies/lazy_mm.py for the compiled engine.
from libc.stdint cimport int64_t

from percpu.linux.include_.linux.sched.mm cimport Strategy
from percpu.linux.include_.linux.cpumask cimport mm_cpumask_cpus
from percpu.linux.kernel.fork cimport mmdrop, mmgrab
from percpu.machine.checker cimport warn
from percpu.machine.context cimport CPU

cdef int64_t NULL, SLOT_MASK

cdef class LazyMm(Strategy):
    cpdef void mmgrab_lazy_tlb(self, CPU cpu, int64_t mm) except *
    cpdef void mmdrop_lazy_tlb(self, CPU cpu, int64_t mm) except *
    cpdef void finish_task_switch(self, CPU cpu) except *
    cpdef void mm_fixup_lazy_refs(self, CPU cpu, int64_t mm) except *

cpdef void drop_extra_mm_refs(CPU cpu) except *
cpdef void mm_fixup_lazy_refs(CPU cpu, int64_t mm) except *
