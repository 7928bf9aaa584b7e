"""refcount: CONFIG_MMU_LAZY_TLB_REFCOUNT, the kernel's default.

Every switch into a kernel thread takes a reference on the shared
mm->mm_count and the switch back drops it: two atomics on one cache line
that every CPU running the process hammers. Teardown needs nothing: the last
lazy CPU's mmdrop frees the mm.
"""
from percpu.linux.kernel.fork import mmdrop, mmgrab
from percpu.strategies.base import Strategy


class Refcount(Strategy):
    name = "refcount"

    # include/linux/sched/mm.h, CONFIG_MMU_LAZY_TLB_REFCOUNT=y
    mmgrab_lazy_tlb = staticmethod(mmgrab)
    mmdrop_lazy_tlb = staticmethod(mmdrop)
