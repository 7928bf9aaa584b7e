# Types of percpu/linux/kernel/smp.py for the compiled engine.
from libc.stdint cimport int64_t
cimport cython

from percpu.machine.context cimport CPU

@cython.locals(sender=int64_t, seq=int64_t, func=int64_t, a_seq=int64_t, a_func=int64_t, a_arg=int64_t,
               a_ack=int64_t)
cpdef void flush_smp_call_function_queue(CPU cpu) except *
@cython.locals(previous=int64_t, seq=int64_t, a_seq=int64_t, a_func=int64_t, a_arg=int64_t, a_ack=int64_t)
cpdef int64_t _send(CPU cpu, int64_t target, object func, int64_t arg) except? -1
cpdef bint smp_call_function_single(CPU cpu, int64_t target, object func, int64_t arg) except? -1
cpdef void on_each_cpu_cond_mask(CPU cpu, object cond, list targets, object func, int64_t arg) except *
cpdef void on_each_cpu_mask(CPU cpu, list targets, object func, int64_t arg) except *
