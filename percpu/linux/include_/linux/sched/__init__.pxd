# Types of percpu/linux/include_/linux/sched/__init__.py for the compiled engine.
from libc.stdint cimport int64_t

cdef class Task:
    cdef public int64_t tid, mm, active_mm, cpu, pipe, side, life
    cdef public str name
    cdef public bint dead
