# Types of percpu/workloads.py for the compiled engine.
from libc.stdint cimport int64_t
cimport cython

from percpu.linux.include_.linux.sched cimport Task
from percpu.linux.kernel.exit cimport do_exit
from percpu.linux.kernel.fork cimport mm_alloc, mmget
from percpu.linux.kernel.sched.core cimport Quanta
from percpu.linux.kernel.smp cimport smp_call_function_single
from percpu.machine.context cimport CPU, kick

cdef class Workload(Quanta):
    cdef public int64_t ncpus, seed, tasks_per_cpu
    cdef public double fork_rate

cdef class LazyRoundtrip(Workload):
    cpdef Task run_task(self, CPU cpu, Task task)
    cpdef Task wakeup(self, CPU cpu)

cdef class ContextSwitchThreads(Workload):
    cpdef Task run_task(self, CPU cpu, Task task)
    @cython.locals(partner_cpu=int64_t)
    cpdef void wake_partner(self, CPU cpu, Task task) except *
    cpdef Task wakeup(self, CPU cpu)

cdef class ContextSwitchProcesses(ContextSwitchThreads):
    pass

cdef class ForkExit(Workload):
    cdef public int64_t interval_ns, next_fork_ns
    cdef public object rng
    cdef public list others
    cpdef Task run_task(self, CPU cpu, Task task)
    cpdef Task wakeup(self, CPU cpu)

cpdef Task next_in_turn(CPU cpu)
