# Types of percpu/machine/checker.py for the compiled engine: the checks
# kernel code makes on a CPU.
from libc.stdint cimport int64_t

from percpu.machine.context cimport CPU

cdef int64_t INIT_MM, LOADED_MM_SWITCHING, NULL, SLOT_MASK

cpdef void violation(CPU cpu, int64_t kind, int64_t mm, int64_t found_gen, int64_t site_id, int64_t other=*) except *
cpdef int64_t deref(CPU cpu, int64_t mm, int64_t site_id) except? -1
cpdef void use_after_free(CPU cpu, int64_t mm, int64_t site_id) except *
cpdef void warn(CPU cpu, int64_t site_id, int64_t mm=*) except *
cpdef void probe(CPU cpu, int64_t site_id) except *
cpdef void walk_page_tables(CPU cpu, int64_t mm, int64_t site_id) except *
cpdef int64_t tlb_gen_seen(CPU cpu, int64_t slot) except? -1
