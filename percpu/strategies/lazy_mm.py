"""lazy-mm: Andy Lutomirski's "[RFC v2 2/2] [MOCKUP] sched/mm: Lightweight
lazy mm refcounting" (LKML, x86, linux-arch, 3 Dec 2020, on v5.10), mapped
onto the lazy-TLB hooks the kernel gained since (6.2): its rq->lazy_mm
store sits where context_switch calls mmgrab_lazy_tlb, its unlazying clear
where finish_task_switch calls mmdrop_lazy_tlb_sched.

A lazy switch only stores this CPU's own rq->lazy_mm (a hazard pointer). At
every context switch, unconditionally, drop_extra_mm_refs drops a reference
some other CPU handed over. At the end of __mmput, after exit_mmap,
mm_fixup_lazy_refs takes a real reference for every CPU in mm_cpumask whose
lazy_mm is still the mm and hands it over with an xchg into that CPU's
rq->mm_to_mmdrop. No IPI, no waiting; it relies on mm_cpumask covering every
lazy CPU ("this is wrong on arm64 and possibly on other architectures").
"""
from percpu.linux.include_.linux.cpumask import mm_cpumask_cpus
from percpu.linux.include_.linux.sched.mm import Strategy
from percpu.linux.kernel.fork import mmdrop, mmgrab
from percpu.machine.checker import site, warn
from percpu.machine.segment import NULL, SLOT_MASK

SITE_FIXUP_MASK = site("mm_fixup_lazy_refs: for_each_cpu(cpu, mm_cpumask(mm))")
SITE_LAZY_BUSY = site("context_switch: WARN_ON_ONCE(rq->lazy_mm)")
SITE_FIXUP_USERS = site("mm_fixup_lazy_refs: WARN_ON_ONCE(atomic_read(&mm->mm_users) != 0)")
SITE_FIXUP_OLD = site("mm_fixup_lazy_refs: WARN_ON_ONCE(old == mm)")


class LazyMm(Strategy):
    name = "lazy-mm"
    source = "Lutomirski, [RFC v2 2/2] [MOCKUP] sched/mm: Lightweight lazy mm refcounting, LKML 3 Dec 2020"
    # its hand-over is dropped at the next switch, a kernel -> kernel one
    # included: it relies on x86's exit flush having moved the CPU off
    safe_under = ("ipi",)
    # the mockup leaves finish_cpu alone; mapped onto 6.x, its mmdrop_lazy_tlb
    # (the unlazying clear) empties the surviving CPU's own rq->lazy_mm while
    # that CPU may still be lazy on it, so mm_fixup_lazy_refs skips the CPU.
    # Torture under hotplug caught freed-while-loaded and
    # page-table-use-after-free (fork-exit, 3 CPUs); the explorer's 2-CPU
    # hotplug scenario finds it clean (the exit flush moves that CPU off
    # first) except in 6.12's cpu_down window, which every scheme has
    hotplug_safe = False
    hooks_finish_task_switch = True  # drop_extra_mm_refs

    def mmgrab_lazy_tlb(self, cpu, mm):
        if cpu.load(cpu.a_lazy_mm):
            warn(cpu, SITE_LAZY_BUSY, mm)
        cpu.store(cpu.a_lazy_mm, mm)  # a plain store; "barrier here?" asks the mockup

    def mmdrop_lazy_tlb(self, cpu, mm):
        if cpu.load(cpu.a_lazy_mm):  # unlazying: a remote CPU that sees the store may free the mm
            cpu.store(cpu.a_lazy_mm, NULL)

    def finish_task_switch(self, cpu):
        drop_extra_mm_refs(cpu)  # "Do this unconditionally"

    def mm_fixup_lazy_refs(self, cpu, mm):
        mm_fixup_lazy_refs(cpu, mm)


def drop_extra_mm_refs(cpu) -> None:
    if not cpu.load(cpu.a_mm_to_mmdrop):  # likely: nothing handed over
        return
    old_mm = cpu.xchg(cpu.a_mm_to_mmdrop, NULL)  # atomic_long_xchg_relaxed
    if old_mm:
        mmdrop(cpu, old_mm)


def mm_fixup_lazy_refs(cpu, mm: int) -> None:
    """Convert every lazy_mm reference to `mm` into an mm_count reference;
    the caller (__mmput) still holds one, so `mm` cannot go meanwhile."""
    mem = cpu.mem
    if cpu.load(mem.mm_users[mm & SLOT_MASK]) != 0:
        warn(cpu, SITE_FIXUP_USERS, mm)  # mm_users is zero: no new lazy refs will be taken
    for other in mm_cpumask_cpus(cpu, mm, SITE_FIXUP_MASK):
        if cpu.load(mem.cpu_lazy_mm[other]) != mm:
            continue
        mmgrab(cpu, mm)
        old = cpu.xchg(mem.cpu_mm_to_mmdrop[other], mm)  # atomic_long_xchg
        cpu.stats.fixups += 1
        if not old:
            continue
        if old == mm:
            warn(cpu, SITE_FIXUP_OLD, mm)
        mmdrop(cpu, old)  # stolen from the target, which is done with it
