"""Deliberately broken strategies: each removes one safety step, so a test
can prove the checker sees the bug it would cause."""
from percpu.strategies.refcount import Refcount
from percpu.strategies.tlbstate import TlbState


class RefcountLeaky(Refcount):
    """Takes the lazy reference but never drops it: every mm leaks."""

    name = "broken-refcount-leaky"

    def mmdrop_lazy_tlb(self, cpu, mm):
        pass


class RefcountNoLazyGrab(Refcount):
    """Drops a lazy reference it never took: mm_count underflows and the mm
    is freed under a lazy CPU."""

    name = "broken-refcount-nograb"

    def mmgrab_lazy_tlb(self, cpu, mm):
        pass


class TlbStateNoFlush(TlbState):
    """Frees the page tables without the flush IPI to lazy CPUs."""

    name = "broken-tlbstate-noflush"

    def exit_mmap_flush(self, cpu, mm):
        pass


BROKEN = (RefcountLeaky, RefcountNoLazyGrab, TlbStateNoFlush)
