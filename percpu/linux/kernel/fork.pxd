# Types of percpu/linux/kernel/fork.py for the compiled engine.
from libc.stdint cimport int64_t
cimport cython

from percpu.linux.arch.x86.mm.tlb cimport switch_mm
from percpu.linux.include_.linux.cpumask cimport mm_cpumask_cpus
from percpu.linux.kernel.smp cimport on_each_cpu_mask
from percpu.linux.mm.mmap cimport exit_mmap
from percpu.machine.checker cimport deref, use_after_free, violation, warn
from percpu.machine.context cimport CPU
from percpu.machine.stats cimport Stats, record

cdef int64_t INIT_MM, NULL, SLOT_MASK, HZ

@cython.locals(slot=int64_t, gen=int64_t)
cpdef int64_t mm_alloc(CPU cpu) except? -1
cpdef void mmget(CPU cpu, int64_t mm) except *
@cython.locals(slot=int64_t, count=int64_t)
cpdef void mmgrab(CPU cpu, int64_t mm) except *
@cython.locals(slot=int64_t, users=int64_t)
cpdef void mmput(CPU cpu, int64_t mm) except *
cpdef void __mmput(CPU cpu, int64_t mm) except *
@cython.locals(slot=int64_t, count=int64_t)
cpdef void mmdrop(CPU cpu, int64_t mm) except *
@cython.locals(slot=int64_t, other=int64_t, a_loaded=int64_t)
cpdef void __mmdrop(CPU cpu, int64_t mm) except *
cpdef void cleanup_lazy_tlbs(CPU cpu, int64_t mm) except *
cpdef void _trace_teardown(CPU cpu, int64_t kind, int64_t mm) except *
@cython.locals(stats=Stats, elapsed=int64_t)
cpdef void _account_teardown(CPU cpu, int64_t start_ns, int64_t ipis_before, int64_t wait_before) except *
