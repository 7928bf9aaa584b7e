"""tlbstate: Linus Torvalds' proposal (LKML, Oct 2024). No lazy refcount and
no active_mm: the CPU's own cpu_tlbstate.loaded_mm / is_lazy already say
which mm it uses, and mm_cpumask says which CPUs may.

The hot path writes only this CPU's own line. The cost moves to teardown:
exit_mmap's freed-tables flush IPIs every CPU in mm_cpumask, lazy ones
included, and a lazy CPU answers by switching to init_mm
(flush_tlb_func's `switch_mm_irqs_off(NULL, &init_mm, NULL)`). Only then may
the mm be freed.
"""
from percpu.linux.arch.x86.mm.tlb import flush_tlb_func
from percpu.linux.include.linux.cpumask import mm_cpumask_cpus
from percpu.linux.kernel.smp import on_each_cpu_mask
from percpu.machine.checker import site
from percpu.strategies.base import Strategy

SITE_FLUSH_MASK = site("exit_mmap: read mm_cpumask for the freed-tables flush")


class TlbState(Strategy):
    name = "tlbstate"
    tracks_active_mm = False

    def exit_mmap_flush(self, cpu, mm):
        on_each_cpu_mask(cpu, mm_cpumask_cpus(cpu, mm, SITE_FLUSH_MASK), flush_tlb_func, mm)
