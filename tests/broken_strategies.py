"""Deliberately broken strategies: each removes one safety step from a real
one, so a test can prove the checker sees the bug that step prevents. Each
says under which flush model (`caught_under`) its step is what keeps the mm
alive: on x86 with IPI flushes, exit_mmap's freed-tables flush already moves
every lazy CPU to init_mm, so a teardown step that only repeats that move is
caught where flushes send no IPI (broadcast)."""
from percpu.linux.include_.linux.cpumask import mm_cpumask_cpus
from percpu.linux.kernel.fork import SITE_SHOOT_MASK, do_shoot_lazy_tlb, mmdrop
from percpu.linux.kernel.smp import on_each_cpu_mask
from percpu.strategies.hazard import Hazard
from percpu.strategies.lazy_mm import LazyMm
from percpu.strategies.refcount import Refcount
from percpu.strategies.shootdown import Shootdown
from percpu.strategies.tlbstate import TlbState


class RefcountLeaky(Refcount):
    """Takes the lazy reference but never drops it: every mm leaks."""

    name = "broken-refcount-leaky"
    caught_under = "ipi"

    def mmdrop_lazy_tlb(self, cpu, mm):
        pass


class RefcountNoLazyGrab(Refcount):
    """Drops a lazy reference it never took: the mm is freed under a lazy CPU."""

    name = "broken-refcount-nograb"
    caught_under = "ipi"

    def mmgrab_lazy_tlb(self, cpu, mm):
        pass


class ShootdownMissesOneCpu(Shootdown):
    """cleanup_lazy_tlbs skips the IPI to the first other CPU in the mask."""

    name = "broken-shootdown-misses-one"
    caught_under = "broadcast"

    def cleanup_lazy_tlbs(self, cpu, mm):
        targets = mm_cpumask_cpus(cpu, mm, SITE_SHOOT_MASK)
        others = [c for c in targets if c != cpu.id]
        if others:
            targets.remove(others[0])
        on_each_cpu_mask(cpu, targets, do_shoot_lazy_tlb, mm)


class HazardNoScan(Hazard):
    """Frees without hp_scan: hazard slots are published and never read."""

    name = "broken-hazard-noscan"
    caught_under = "broadcast"

    def cleanup_lazy_tlbs(self, cpu, mm):
        pass


class LazyMmFixupWithoutGrab(LazyMm):
    """mm_fixup_lazy_refs hands each lazy CPU a reference it never took."""

    name = "broken-lazy-mm-nograb"
    caught_under = "ipi"

    def mm_fixup_lazy_refs(self, cpu, mm):
        for other in mm_cpumask_cpus(cpu, mm):
            if cpu.load(cpu.mem.cpu_lazy_mm[other]) == mm:
                old = cpu.xchg(cpu.mem.cpu_mm_to_mmdrop[other], mm)  # no mmgrab first
                if old:
                    mmdrop(cpu, old)


class TlbStateNoFlush(TlbState):
    """Frees the page tables with a flush that skips lazy CPUs."""

    name = "broken-tlbstate-noflush"
    caught_under = "ipi"
    exit_flush_reaches_lazy = False


# One broken variant of each safe strategy, by the strategy it breaks.
BROKEN_VARIANT = {
    "refcount": RefcountNoLazyGrab,
    "shootdown": ShootdownMissesOneCpu,
    "hazard": HazardNoScan,
    "lazy-mm": LazyMmFixupWithoutGrab,
    "tlbstate": TlbStateNoFlush,
}
BROKEN = (RefcountLeaky, *BROKEN_VARIANT.values())
# what a violating run of the broken strategies shows, beyond a FAILURE
MEMORY_ERRORS = {"use-after-free", "page-table-use-after-free", "freed-while-loaded", "refcount-underflow"}
