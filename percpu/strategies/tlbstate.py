"""tlbstate: Linus Torvalds' proposal (LKML, Oct 2024). No lazy refcount and
no active_mm: the CPU's own cpu_tlbstate.loaded_mm / is_lazy already say
which mm it uses, and mm_cpumask says which CPUs may.

The hot path writes only this CPU's own line. The cost moves to teardown:
exit_mmap's freed-tables flush IPIs every CPU in mm_cpumask, lazy ones
included, and a lazy CPU answers by switching to init_mm
(flush_tlb_func's `switch_mm_irqs_off(NULL, &init_mm, NULL)`). Only then may
the mm be freed.
"""
from percpu.mm import cpumask_clear_cpu, mm_cpumask_cpus
from percpu.sched import switch_mm_irqs_off
from percpu.smp import ipi_function, on_each_cpu_mask
from percpu.state import INIT_MM, NULL
from percpu.strategies.base import Strategy
from percpu.violations import site

SITE_FLUSH_MASK = site("exit_mmap: read mm_cpumask for the freed-tables flush")
SITE_FLUSH_TLB_GEN = site("flush_tlb_func: read tlb_gen")


@ipi_function
def flush_tlb_func(cpu, mm: int) -> None:
    if cpu.loaded_mm != mm:
        # This CPU has moved on. With a lazily maintained mm_cpumask its bit
        # is stale: trim it, so the next flush skips this CPU.
        if not cpu.cpumask_clear_on_switch:
            cpumask_clear_cpu(cpu, mm, cpu.id)
        return
    if cpu.is_lazy:
        switch_mm_irqs_off(cpu, NULL, INIT_MM)
        return
    cpu.loaded_tlb_gen = cpu.load(cpu.mm_tlb_gen[cpu.deref(mm, SITE_FLUSH_TLB_GEN)])


class TlbState(Strategy):
    name = "tlbstate"
    tracks_active_mm = False

    def exit_mmap_flush(self, cpu, mm):
        on_each_cpu_mask(cpu, mm_cpumask_cpus(cpu, mm, SITE_FLUSH_MASK), flush_tlb_func, mm)
