"""refcount: CONFIG_MMU_LAZY_TLB_REFCOUNT, the kernel's default (Linux 6.12
and 6.18, include/linux/sched/mm.h).

Every switch into a kernel thread takes a reference on the shared
mm->mm_count and the switch back drops it: two atomics on one cache line
that every CPU running the process hammers. It keeps the mm_struct alive;
the page tables are kept safe, as for every scheme on x86, by exit_mmap's
freed-tables flush, which moves lazy CPUs to init_mm.
"""
from percpu.linux.include_.linux.sched.mm import Strategy
from percpu.linux.kernel.fork import mmdrop, mmgrab


class Refcount(Strategy):
    name = "refcount"
    source = "CONFIG_MMU_LAZY_TLB_REFCOUNT=y (include/linux/sched/mm.h, Linux 6.12/6.18)"
    lazy_grab_is_barrier = True  # mmgrab: lock incq

    def mmgrab_lazy_tlb(self, cpu, mm):
        mmgrab(cpu, mm)

    def mmdrop_lazy_tlb(self, cpu, mm):
        mmdrop(cpu, mm)  # mmdrop_sched is mmdrop without PREEMPT_RT
