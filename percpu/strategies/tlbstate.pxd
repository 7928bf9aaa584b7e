# Types of percpu/strategies/tlbstate.py for the compiled engine.
from libc.stdint cimport int64_t

from percpu.linux.include_.linux.sched.mm cimport Strategy
from percpu.machine.context cimport CPU

cdef class TlbState(Strategy):
    pass
