# Types of percpu/linux/include_/linux/version.py for the compiled engine.
cdef class Kernel:
    cdef readonly str version
    cdef readonly bint lazy_mm_cpumask, trim_cpumask, flush_switching, switching_before_cpumask
    cdef readonly bint local_cond_after_remote, force_init_mm, invlpgb
