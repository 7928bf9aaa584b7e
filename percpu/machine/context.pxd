# Types of percpu/machine/context.py for the compiled engine. The atomics are
# defined here, as inline C (atomics.h) that every compiled caller inlines;
# the interpreted engine binds the atomics extension's functions instead.
from libc.stdint cimport int64_t
cimport cython

from percpu.machine.addresses cimport Addresses
from percpu.machine.atomics cimport percpu_add_return
from percpu.machine.atomics cimport percpu_cmpxchg
from percpu.machine.atomics cimport percpu_cpu_relax
from percpu.machine.atomics cimport percpu_fetch_add
from percpu.machine.atomics cimport percpu_fetch_and
from percpu.machine.atomics cimport percpu_fetch_or
from percpu.machine.atomics cimport percpu_load_acquire
from percpu.machine.atomics cimport percpu_smp_mb
from percpu.machine.atomics cimport percpu_store_release
from percpu.machine.atomics cimport percpu_xchg
from percpu.machine.stats cimport Stats


# the waits (spinning, idling, halting): Python methods, which the
# interpreted explorer's CPU replaces (percpu/explore/machine.py)
cdef class Waits:
    pass


@cython.final
cdef class CPU(Waits):
    cdef public int64_t id, ncpus
    cdef public object state, strategy, workload
    cdef public Addresses mem
    cdef public int64_t a_loaded_mm, a_is_lazy, a_hazard, a_lazy_mm, a_mm_to_mmdrop, a_ipi_pending
    cdef public int64_t loaded_mm, is_lazy, loaded_tlb_gen
    cdef public object curr, idle
    cdef public list rq, mm_own_slots
    cdef public object ipi_handler
    cdef public int64_t ipi_seen
    cdef public list ipi_in, ipi_in_acked, ipi_out, ipi_out_seq
    cdef public bint online, stopping, stop_seen, in_teardown
    cdef public list mailbox
    cdef public int64_t mailbox_next
    cdef public object kernel, jiffies
    cdef public int64_t switch_cost_ns, timer_ns
    cdef public bint oversubscribed
    cdef public int64_t a_halted
    cdef public object coordinator_pid
    cdef public int64_t ipi_timeout_ns, _heartbeat
    cdef public Stats stats
    cdef public set reported
    cdef public object trace_events, fault
    # the compiled atomics' bookkeeping: the atomics extension's count of
    # read-modify-writes (one count per process, whichever engine), and the
    # operation log (None: off)
    cdef unsigned long long *rmw_ops
    cdef public list op_log

    cpdef void interrupt_point(self) except *
    cpdef void take_interrupt(self) except *

    cdef void log_op(self, str op, int64_t addr) noexcept

    cpdef inline int64_t load(self, int64_t addr) noexcept:
        if self.op_log is not None:
            self.log_op("load", addr)
        return percpu_load_acquire(<int64_t *>addr)

    cpdef inline void store(self, int64_t addr, int64_t value) noexcept:
        if self.op_log is not None:
            self.log_op("store", addr)
        percpu_store_release(<int64_t *>addr, value)

    cpdef inline int64_t fetch_add(self, int64_t addr, int64_t value) noexcept:
        self.rmw_ops[0] += 1
        if self.op_log is not None:
            self.log_op("fetch_add", addr)
        return percpu_fetch_add(<int64_t *>addr, value)

    cpdef inline int64_t add_return(self, int64_t addr, int64_t value) noexcept:
        self.rmw_ops[0] += 1
        if self.op_log is not None:
            self.log_op("add_return", addr)
        return percpu_add_return(<int64_t *>addr, value)

    cpdef inline bint dec_and_test(self, int64_t addr) noexcept:
        self.rmw_ops[0] += 1
        if self.op_log is not None:
            self.log_op("dec_and_test", addr)
        return percpu_add_return(<int64_t *>addr, -1) == 0

    cpdef inline int64_t xchg(self, int64_t addr, int64_t value) noexcept:
        self.rmw_ops[0] += 1
        if self.op_log is not None:
            self.log_op("xchg", addr)
        return percpu_xchg(<int64_t *>addr, value)

    cpdef inline int64_t cmpxchg(self, int64_t addr, int64_t old, int64_t new) noexcept:
        self.rmw_ops[0] += 1
        if self.op_log is not None:
            self.log_op("cmpxchg", addr)
        return percpu_cmpxchg(<int64_t *>addr, old, new)

    cpdef inline int64_t fetch_or(self, int64_t addr, int64_t value) noexcept:
        self.rmw_ops[0] += 1
        if self.op_log is not None:
            self.log_op("fetch_or", addr)
        return percpu_fetch_or(<int64_t *>addr, value)

    cpdef inline int64_t fetch_and(self, int64_t addr, int64_t value) noexcept:
        self.rmw_ops[0] += 1
        if self.op_log is not None:
            self.log_op("fetch_and", addr)
        return percpu_fetch_and(<int64_t *>addr, value)

    cpdef inline void smp_mb(self) noexcept:
        if self.op_log is not None:
            self.log_op("smp_mb", 0)
        percpu_smp_mb()

    cpdef inline void cpu_relax(self) noexcept:
        percpu_cpu_relax()


@cython.locals(a_halted=int64_t, start=int64_t, timeout=int64_t, woken=bint, stats=Stats)
cpdef bint halt(CPU cpu) except? -1
@cython.locals(a_halted=int64_t)
cpdef void kick(CPU cpu, int64_t other) except *
@cython.locals(other=int64_t)
cpdef void kick_all(CPU cpu) except *
