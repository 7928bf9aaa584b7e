# Types of percpu/linux/kernel/sched/core.py for the compiled engine.
from libc.stdint cimport int64_t
cimport cython

from percpu.linux.arch.x86.mm.tlb cimport enter_lazy_tlb, set_loaded_mm, switch_mm, switch_mm_irqs_off
from percpu.linux.include_.linux.cpumask cimport online_cpus
from percpu.linux.include_.linux.sched cimport Task
from percpu.linux.include_.linux.sched.mm cimport Strategy
from percpu.linux.kernel.exit cimport do_exit
from percpu.linux.kernel.smp cimport smp_call_function_single
from percpu.machine.checker cimport probe, walk_page_tables
from percpu.machine.context cimport CPU, halt
from percpu.machine.stats cimport Stats, record

cdef int64_t INIT_MM, NULL, SLOT_MASK, HOUSEKEEPING_EVERY, SWITCH_SAMPLE_EVERY

cdef class Quanta:
    cpdef Task run_task(self, CPU cpu, Task task)
    cpdef Task wakeup(self, CPU cpu)

cdef class _GoIdle(Quanta):
    cpdef Task run_task(self, CPU cpu, Task task)
    cpdef Task wakeup(self, CPU cpu)

cdef class _ExitAll(Quanta):
    cpdef Task run_task(self, CPU cpu, Task task)
    cpdef Task wakeup(self, CPU cpu)

cpdef void boot_idle(CPU cpu, Task idle) except *
cpdef void schedule_loop(CPU cpu, Quanta workload, object between_batches=*) except *
@cython.locals(idle=Task, curr=Task, next=Task, prev=Task, strategy=Strategy, stats=Stats,
               mm_gen=int64_t[::1], mm_freed_tables_gen=int64_t[::1], tracks_active_mm=bint, lazy_grab_is_barrier=bint, switch_hook=bint,
               switch_cost_ns=int64_t, switches=int64_t, lazy_switches=int64_t, probes=int64_t,
               mm=int64_t, slot=int64_t, prev_mm=int64_t, timed=bint, untimed=int64_t, start=int64_t,
               elapsed=int64_t)
cpdef void run_quanta(CPU cpu, Quanta workload, int64_t count) except *
cpdef void idle_task_exit(CPU cpu) except *
cpdef void enqueue_task(CPU cpu, Task task) except *
