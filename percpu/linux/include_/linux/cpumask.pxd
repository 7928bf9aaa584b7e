# Types of percpu/linux/include_/linux/cpumask.py for the compiled engine.
from libc.stdint cimport int64_t
cimport cython

from percpu.machine.context cimport CPU

cdef int64_t BIT_63, ONE

cdef inline int64_t _word(int64_t cpu_id) noexcept
@cython.locals(b=int64_t)
cdef inline int64_t _bit(int64_t cpu_id) noexcept

cpdef list _words(CPU cpu, int64_t mm, int64_t site_id=*)
cpdef void cpumask_set_cpu(CPU cpu, int64_t mm, int64_t cpu_id) except *
cpdef void cpumask_clear_cpu(CPU cpu, int64_t mm, int64_t cpu_id) except *
cpdef bint cpumask_test_cpu(CPU cpu, int64_t mm, int64_t cpu_id) except? -1
@cython.locals(value=object, low=object)
cpdef list _cpus(CPU cpu, object words)
cpdef list mm_cpumask_cpus(CPU cpu, int64_t mm, int64_t site_id=*)
cpdef list online_cpus(CPU cpu)
cpdef bint cpu_online(CPU cpu, int64_t cpu_id) except? -1
cpdef void set_cpu_online(CPU cpu, int64_t cpu_id, bint online) except *
