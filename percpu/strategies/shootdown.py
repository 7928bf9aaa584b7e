"""shootdown: CONFIG_MMU_LAZY_TLB_SHOOTDOWN (powerpc selects it; x86 does
not), as include/linux/sched/mm.h and kernel/fork.c have it (Linux 6.12/6.18).

No lazy refcount: mmgrab_lazy_tlb does nothing and mmdrop_lazy_tlb is only
the full barrier membarrier needs (finish_task_switch relies on it).
Instead, before the mm_struct is freed, __mmdrop's cleanup_lazy_tlbs sends
a synchronous IPI to every CPU in mm_cpumask; do_shoot_lazy_tlb moves a CPU
whose current task still borrows the mm to init_mm; the freeing CPU waits
for all of them. With no locked op on the way into a kernel thread,
switch_mm_cid pays an smp_mb() there.
"""
from percpu.linux.include_.linux.sched.mm import Strategy
from percpu.linux.kernel.fork import cleanup_lazy_tlbs


class Shootdown(Strategy):
    name = "shootdown"
    source = "CONFIG_MMU_LAZY_TLB_SHOOTDOWN=y (include/linux/sched/mm.h, kernel/fork.c, Linux 6.12/6.18)"

    def mmdrop_lazy_tlb(self, cpu, mm):
        cpu.smp_mb()  # must provide a full memory barrier (membarrier)

    def cleanup_lazy_tlbs(self, cpu, mm):
        cleanup_lazy_tlbs(cpu, mm)
