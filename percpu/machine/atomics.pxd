# percpu/machine/atomics.h for the compiled engine: the same static inline C
# the atomics extension (_atomic.c) and the native reference run.
from libc.stdint cimport int64_t

cdef extern from "atomics.h" nogil:
    int64_t percpu_load_acquire(int64_t *p)
    void percpu_store_release(int64_t *p, int64_t v)
    int64_t percpu_fetch_add(int64_t *p, int64_t v)
    int64_t percpu_add_return(int64_t *p, int64_t v)
    int64_t percpu_xchg(int64_t *p, int64_t v)
    int64_t percpu_fetch_or(int64_t *p, int64_t v)
    int64_t percpu_fetch_and(int64_t *p, int64_t v)
    int64_t percpu_cmpxchg(int64_t *p, int64_t old, int64_t new)
    void percpu_smp_mb()
    void percpu_cpu_relax()
