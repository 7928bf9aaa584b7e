# Types of percpu/machine/addresses.py for the compiled engine: the address
# tables are C arrays (typed memoryviews of the .py's int64 arrays).
from libc.stdint cimport int64_t

cdef class Addresses:
    cdef readonly int64_t ncpus, nmm
    cdef readonly int64_t[::1] mm_gen, mm_users, mm_count, mm_tlb_gen, mm_freed_tables_gen, mm_invlpgb_gen
    cdef readonly int64_t[::1] mm_next_trim_cpumask
    cdef readonly list mm_cpumask
    cdef readonly int64_t[::1] cpu_loaded_mm, cpu_is_lazy, cpu_hazard, cpu_lazy_mm, cpu_mm_to_mmdrop, cpu_ipi_pending
    cdef readonly int64_t[::1] cpu_heartbeat, cpu_ops, cpu_halted
    cdef readonly int64_t[::1] task_active_mm, flush_tlb_info
    cdef readonly int64_t stop, abort, abort_cpu, records, violations, online_count
    cdef readonly int64_t[::1] cpu_online_mask
    cdef readonly int64_t violation_base, violation_stride
