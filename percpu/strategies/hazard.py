"""hazard: Mathieu Desnoyers' hazard-pointer RFC (LKML, Oct 2024).

Each CPU has one hazard slot for its lazy mm. mmgrab_lazy_tlb publishes the
mm in this CPU's own slot followed by a full barrier (so the store is
visible before anything this CPU does next that could let the mm go); the
switch back clears the slot. No shared line is written on the hot path.

Teardown (__mmdrop -> cleanup_lazy_tlbs, the RFC's hp_scan) reads every
possible CPU's slot; a CPU whose slot holds the mm is sent an IPI that moves
it to init_mm, and the freeing CPU spins until that slot no longer holds it.
"""
import time

from percpu.linux.kernel.fork import do_shoot_lazy_tlb
from percpu.linux.kernel.smp import ipi_function, smp_call_function_single
from percpu.machine.checker import site
from percpu.machine.segment import INIT_MM, NULL
from percpu.strategies.base import Strategy

SITE_HP_SLOT = site("hp_scan: hazard slot still holds the mm after the IPI")


@ipi_function
def hp_switch_lazy_to_init_mm(cpu, mm: int) -> None:
    shot = cpu.curr.active_mm == mm
    do_shoot_lazy_tlb(cpu, mm)
    if shot:
        cpu.store(cpu.a_hazard, INIT_MM)  # the lazy use is now of init_mm


class Hazard(Strategy):
    name = "hazard"

    def mmgrab_lazy_tlb(self, cpu, mm):
        cpu.store(cpu.a_hazard, mm)
        cpu.smp_mb()

    def mmdrop_lazy_tlb(self, cpu, mm):
        cpu.store(cpu.a_hazard, NULL)

    def cleanup_lazy_tlbs(self, cpu, mm):
        hp_scan(cpu, mm)


def hp_scan(cpu, mm: int) -> None:
    load = cpu.load
    for other, a_slot in enumerate(cpu.mem.cpu_hazard):
        cpu.stats.slots_scanned += 1
        if load(a_slot) == mm:
            smp_call_function_single(cpu, other, hp_switch_lazy_to_init_mm, mm)
            start = time.perf_counter_ns()
            cpu.spin_until(lambda: load(a_slot) != mm, cpu.ipi_timeout_ns, SITE_HP_SLOT, other)
            cpu.stats.wait_ns += time.perf_counter_ns() - start
