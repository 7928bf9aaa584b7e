"""shootdown: CONFIG_MMU_LAZY_TLB_SHOOTDOWN (powerpc).

No lazy refcount: mmgrab_lazy_tlb does nothing and mmdrop_lazy_tlb is only
the full barrier the kernel documents for membarrier. Instead, before the mm
is freed, __mmdrop's cleanup_lazy_tlbs sends a synchronous IPI to every CPU
in mm_cpumask (kernel/fork.c); do_shoot_lazy_tlb moves a CPU whose current
task still borrows the mm to init_mm; the freeing CPU waits for all of them.
Safe only if mm_cpumask covers every lazy CPU.
"""
from percpu.linux.kernel.fork import cleanup_lazy_tlbs
from percpu.strategies.base import Strategy


class Shootdown(Strategy):
    name = "shootdown"

    def mmdrop_lazy_tlb(self, cpu, mm):
        cpu.smp_mb()

    cleanup_lazy_tlbs = staticmethod(cleanup_lazy_tlbs)
