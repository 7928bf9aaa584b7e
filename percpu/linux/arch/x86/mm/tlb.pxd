# Types of percpu/linux/arch/x86/mm/tlb.py for the compiled engine.
from libc.stdint cimport int64_t
cimport cython

from percpu.linux.include_.linux.cpumask cimport cpumask_clear_cpu
from percpu.linux.include_.linux.cpumask cimport cpumask_set_cpu
from percpu.linux.include_.linux.cpumask cimport cpumask_test_cpu
from percpu.linux.include_.linux.cpumask cimport mm_cpumask_cpus
from percpu.linux.include_.linux.version cimport Kernel
from percpu.linux.kernel.smp cimport on_each_cpu_cond_mask, on_each_cpu_mask
from percpu.machine.checker cimport deref, use_after_free
from percpu.machine.context cimport CPU

cdef int64_t INIT_MM, LOADED_MM_SWITCHING, NULL, SLOT_MASK, HZ

cpdef void set_loaded_mm(CPU cpu, int64_t mm) except *
cpdef void enter_lazy_tlb(CPU cpu, int64_t mm) except *
@cython.locals(kernel=Kernel, prev=int64_t, was_lazy=bint, slot=int64_t, next_tlb_gen=int64_t)
cpdef void switch_mm_irqs_off(CPU cpu, int64_t unused, int64_t next) except *
cpdef void switch_mm(CPU cpu, int64_t prev, int64_t next) except *
cpdef int64_t get_flush_tlb_info(CPU cpu, int64_t mm, bint freed_tables, int64_t new_tlb_gen) except? -1
cpdef bint should_trim_cpumask(CPU cpu, int64_t mm) except? -1
cpdef void native_flush_tlb_multi(CPU cpu, list targets, int64_t info) except *
@cython.locals(old=int64_t, found=int64_t, a_gen=int64_t)
cpdef void broadcast_tlb_flush(CPU cpu, int64_t mm, int64_t new_tlb_gen) except *
@cython.locals(new_tlb_gen=int64_t, info=int64_t)
cpdef int64_t flush_tlb_mm_range(CPU cpu, int64_t mm, bint freed_tables=*) except? -1
