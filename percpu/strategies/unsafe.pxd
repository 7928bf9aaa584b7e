# Types of percpu/strategies/unsafe.py for the compiled engine.
from libc.stdint cimport int64_t

from percpu.linux.include_.linux.sched.mm cimport Strategy
from percpu.machine.context cimport CPU

cdef class Unsafe(Strategy):
    pass
