"""lazy-mm: Andy Lutomirski's mockup (2020).

The hot path only does plain stores of this CPU's own rq->lazy_mm. When the
last user goes (__mmput), a fix-up takes a real reference for every CPU in
mm_cpumask whose lazy_mm is still the mm and hands it to that CPU with an
xchg into its rq->mm_to_mmdrop; the CPU drops it at its first context switch
after it stopped using that mm.
No IPI, no waiting. The check-then-xchg race is benign: a CPU that stopped
using the mm in between just drops an extra reference later.
"""
from percpu.linux.include.linux.cpumask import mm_cpumask_cpus
from percpu.linux.kernel.fork import mmdrop, mmgrab
from percpu.machine.checker import site
from percpu.machine.segment import NULL
from percpu.strategies.base import Strategy

SITE_FIXUP_MASK = site("__mmput lazy fix-up: read mm_cpumask")


class LazyMm(Strategy):
    name = "lazy-mm"

    def mmgrab_lazy_tlb(self, cpu, mm):
        cpu.store(cpu.a_lazy_mm, mm)  # plain store

    def mmdrop_lazy_tlb(self, cpu, mm):
        cpu.store(cpu.a_lazy_mm, NULL)

    def finish_task_switch(self, cpu):
        # A handed-over reference is dropped once this CPU no longer has
        # that mm loaded (a kernel -> kernel switch keeps it lazily).
        mm = cpu.load(cpu.a_mm_to_mmdrop)
        if mm and mm != cpu.loaded_mm:
            mm = cpu.xchg(cpu.a_mm_to_mmdrop, NULL)
            if mm == cpu.loaded_mm:  # a fix-up for the mm still in use raced in: keep it
                mm = cpu.xchg(cpu.a_mm_to_mmdrop, mm)
            if mm:
                mmdrop(cpu, mm)

    def mmput_lazy_fixup(self, cpu, mm):
        load = cpu.load
        for other in mm_cpumask_cpus(cpu, mm, SITE_FIXUP_MASK):
            if load(cpu.mem.cpu_lazy_mm[other]) == mm:
                mmgrab(cpu, mm)
                old = cpu.xchg(cpu.mem.cpu_mm_to_mmdrop[other], mm)
                cpu.stats.fixups += 1
                if old:
                    mmdrop(cpu, old)
