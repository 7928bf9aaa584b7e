"""Deliberately broken strategies: each removes one safety step from a real
one, so a test can prove the checker sees the bug that step prevents."""
from percpu.linux.include.linux.cpumask import mm_cpumask_cpus
from percpu.linux.kernel.fork import SITE_SHOOT_MASK, do_shoot_lazy_tlb
from percpu.linux.kernel.smp import on_each_cpu_mask
from percpu.strategies.hazard import Hazard
from percpu.strategies.lazy_mm import LazyMm
from percpu.strategies.refcount import Refcount
from percpu.strategies.shootdown import Shootdown
from percpu.strategies.tlbstate import TlbState


class RefcountLeaky(Refcount):
    """Takes the lazy reference but never drops it: every mm leaks."""

    name = "broken-refcount-leaky"

    def mmdrop_lazy_tlb(self, cpu, mm):
        pass


class RefcountNoLazyGrab(Refcount):
    """Drops a lazy reference it never took: the mm is freed under a lazy CPU."""

    name = "broken-refcount-nograb"

    def mmgrab_lazy_tlb(self, cpu, mm):
        pass


class ShootdownMissesOneCpu(Shootdown):
    """cleanup_lazy_tlbs skips the IPI to the first other CPU in the mask."""

    name = "broken-shootdown-misses-one"

    def cleanup_lazy_tlbs(self, cpu, mm):
        targets = mm_cpumask_cpus(cpu, mm, SITE_SHOOT_MASK)
        others = [c for c in targets if c != cpu.id]
        if others:
            targets.remove(others[0])
        on_each_cpu_mask(cpu, targets, do_shoot_lazy_tlb, mm)


class HazardNoScan(Hazard):
    """Frees without hp_scan: hazard slots are published and never read."""

    name = "broken-hazard-noscan"

    def cleanup_lazy_tlbs(self, cpu, mm):
        pass


class LazyMmNoFixup(LazyMm):
    """__mmput hands no reference to the CPUs still lazily using the mm."""

    name = "broken-lazy-mm-nofixup"

    def mmput_lazy_fixup(self, cpu, mm):
        pass


class TlbStateNoFlush(TlbState):
    """Frees the page tables without the flush IPI to lazy CPUs."""

    name = "broken-tlbstate-noflush"

    def exit_mmap_flush(self, cpu, mm):
        pass


# One broken variant of each safe strategy, by the strategy it breaks.
BROKEN_VARIANT = {
    "refcount": RefcountNoLazyGrab,
    "shootdown": ShootdownMissesOneCpu,
    "hazard": HazardNoScan,
    "lazy-mm": LazyMmNoFixup,
    "tlbstate": TlbStateNoFlush,
}
BROKEN = (RefcountLeaky, *BROKEN_VARIANT.values())
