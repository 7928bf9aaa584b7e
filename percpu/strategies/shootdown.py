"""shootdown: CONFIG_MMU_LAZY_TLB_SHOOTDOWN (powerpc).

No lazy refcount: mmgrab_lazy_tlb does nothing and mmdrop_lazy_tlb is only
the full barrier the kernel documents for membarrier. Instead, before the mm
is freed, __mmdrop's cleanup_lazy_tlbs sends a synchronous IPI to every CPU
in mm_cpumask (kernel/fork.c); do_shoot_lazy_tlb moves a CPU whose current
task still borrows the mm to init_mm; the freeing CPU waits for all of them.
Safe only if mm_cpumask covers every lazy CPU.
"""
from percpu.mm import mm_cpumask_cpus
from percpu.tlb import switch_mm_irqs_off
from percpu.smp import ipi_function, on_each_cpu_mask
from percpu.state import INIT_MM
from percpu.strategies.base import Strategy
from percpu.violations import site

SITE_SHOOT_MASK = site("cleanup_lazy_tlbs: read mm_cpumask")


@ipi_function
def do_shoot_lazy_tlb(cpu, mm: int) -> None:
    current = cpu.curr
    if current.active_mm == mm:
        current.active_mm = INIT_MM
        switch_mm_irqs_off(cpu, mm, INIT_MM)


class Shootdown(Strategy):
    name = "shootdown"

    def mmdrop_lazy_tlb(self, cpu, mm):
        cpu.smp_mb()

    def cleanup_lazy_tlbs(self, cpu, mm):
        on_each_cpu_mask(cpu, mm_cpumask_cpus(cpu, mm, SITE_SHOOT_MASK), do_shoot_lazy_tlb, mm)
