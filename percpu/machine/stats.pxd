# Types of percpu/machine/stats.py for the compiled engine. (Constants other
# modules import stay Python objects here: a typed module global is C-only.)
from libc.stdint cimport int64_t


cdef class Stats:
    cdef public int64_t ops, switches, lazy_switches, probes, ipis_sent, ipis_received
    cdef public int64_t teardowns, teardown_ns, teardown_ipis, teardown_wait_ns, slots_scanned, fixups, forks
    cdef public int64_t wait_ns, violations, yields, stalls, ipis_delayed, hotplugs, migrations, trace_written
    cdef public int64_t timed_switches, timed_switch_ns, halts, halted_ns, halt_timeouts, kicks
    cdef public list hist, switch_hist, teardown_hist
    cdef public int64_t _rmw_base, batch_start_ns, _batch_start_ops

cpdef void record(list hist, double value_ns) except *
