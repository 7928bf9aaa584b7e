# Types of percpu/linux/kernel/exit.py for the compiled engine.
from libc.stdint cimport int64_t

from percpu.linux.arch.x86.mm.tlb cimport enter_lazy_tlb
from percpu.linux.include_.linux.sched cimport Task
from percpu.linux.include_.linux.sched.mm cimport Strategy
from percpu.linux.kernel.fork cimport mmput
from percpu.machine.context cimport CPU

cdef int64_t NULL

cpdef void exit_mm(CPU cpu, Task task) except *
cpdef void do_exit(CPU cpu, Task task) except *
