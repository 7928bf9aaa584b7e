"""hazard: Mathieu Desnoyers' hazard-pointer RFC as posted in v2:
"[RFC PATCH v2 4/4] sched+mm: Use hazard pointers to track lazy active mm
existence" with "[RFC PATCH v2 3/4] hp: Implement Hazard Pointers" (LKML,
4 Oct 2024, on v6.11.1). v3 (8 Oct 2024: hazptr_scan, whose callback does
not wait) is not modelled: its 4/4 was not found whole.

Each CPU has one hazard slot for its lazy mm. mmgrab_lazy_tlb is a full
barrier, then hp_allocate stores the mm in this CPU's own slot (refusing a
busy slot: the caller's WARN_ON_ONCE); mmdrop_lazy_tlb is a full barrier,
then the slot is cleared. No shared line is written on the hot path.

Teardown (__mmdrop -> cleanup_lazy_tlbs -> hp_scan): a full barrier, then
every possible CPU's slot; for a CPU whose slot holds the mm, two
synchronous IPIs (do_shoot_lazy_tlb, which the RFC makes clear the slot,
then do_check_lazy_tlb), and a busy-wait until that slot no longer holds it.

RFC v2 also moves exit_mm's mmgrab_lazy_tlb after task_lock's barrier; with
the smp_mb() that mmgrab_lazy_tlb now begins with, the order of shared
accesses differs only in where one more full barrier falls, so the
emulator's exit_mm stays mainline's.
"""
import time

from percpu.linux.include_.linux.sched.mm import Strategy
from percpu.linux.kernel.fork import do_check_lazy_tlb, do_shoot_lazy_tlb
from percpu.linux.kernel.smp import smp_call_function_single
from percpu.machine.checker import site, warn
from percpu.machine.segment import NULL

SITE_HP_BUSY = site("mmgrab_lazy_tlb: WARN_ON_ONCE(!hp_ctx_addr(ctx)): this CPU's hazard slot is busy")
SITE_HP_SLOT = site("hp_scan: busy-wait until the hazard slot no longer holds the mm")


class Hazard(Strategy):
    name = "hazard"
    source = ("Desnoyers, [RFC PATCH v2 3/4] hp: Implement Hazard Pointers and [RFC PATCH v2 4/4] sched+mm: "
              "Use hazard pointers to track lazy active mm existence, LKML 4 Oct 2024")
    lazy_grab_is_barrier = True  # its smp_mb()
    # finish_cpu's mmdrop_lazy_tlb clears the surviving CPU's own slot, whatever
    # it protects; on 6.12 the dead CPU's slot also keeps its lazy mm, and
    # hp_scan then waits on it forever (6.14+'s sched_force_init_mm clears it)
    hotplug_safe = False

    def mmgrab_lazy_tlb(self, cpu, mm):
        cpu.smp_mb()  # must provide a full memory barrier (membarrier, switch_mm_cid)
        if not hp_allocate(cpu, mm):
            warn(cpu, SITE_HP_BUSY, mm)  # there is only a single lazy mm per CPU at any time

    def mmdrop_lazy_tlb(self, cpu, mm):
        cpu.smp_mb()  # must provide a full memory barrier
        cpu.store(cpu.a_hazard, NULL)

    def lazy_tlb_shot(self, cpu):
        cpu.store(cpu.a_hazard, NULL)

    def cleanup_lazy_tlbs(self, cpu, mm):
        hp_scan(cpu, mm, retire_lazy_mm_hp)


def hp_allocate(cpu, mm: int) -> bool:
    """include/linux/hp.h: take this CPU's slot for `mm`; False (and no
    store) when it is busy."""
    if mm == NULL:
        return False
    if cpu.load(cpu.a_hazard):  # a single hazard pointer slot per CPU
        return False
    cpu.store(cpu.a_hazard, mm)  # Store B
    return True


def retire_lazy_mm_hp(cpu, other: int, mm: int) -> None:
    """kernel/fork.c (RFC v2): make CPU `other` stop using `mm` lazily. A
    call to an offline CPU fails and is ignored, as in the RFC."""
    smp_call_function_single(cpu, other, do_shoot_lazy_tlb, mm)
    smp_call_function_single(cpu, other, do_check_lazy_tlb, mm)


def hp_scan(cpu, mm: int, retire_cb) -> None:
    """kernel/hp.c: after Store A (the mm's unpublishing: here its count
    reaching 0), find every slot holding `mm`, retire it, and wait until no
    slot holds it."""
    if mm == NULL:
        return
    cpu.smp_mb()  # Store A before Load B
    for other, a_slot in enumerate(cpu.mem.cpu_hazard):  # for_each_possible_cpu
        cpu.stats.slots_scanned += 1
        if retire_cb is not None and cpu.load(a_slot) == mm:  # Load B
            retire_cb(cpu, other, mm)
        start = time.perf_counter_ns()
        cpu.spin_until(lambda: cpu.load(a_slot) != mm, cpu.ipi_timeout_ns, SITE_HP_SLOT, other)  # busy-wait
        cpu.stats.wait_ns += time.perf_counter_ns() - start
