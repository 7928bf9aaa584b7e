"""The hooks a strategy may fill, named after the kernel code they stand for.

Each hook's default does nothing; a strategy file overrides exactly the hooks
where its scheme differs, so the file is the whole difference.
"""
from __future__ import annotations


class Strategy:
    name = ""
    #: context_switch keeps task->active_mm (kernel threads borrow the mm);
    #: False: the CPU's cpu_tlbstate.loaded_mm is the only record.
    tracks_active_mm = True
    #: a run with this strategy must end in FAILURE (the broken control)
    expect_violations = False

    def mmgrab_lazy_tlb(self, cpu, mm: int) -> None:
        """context_switch, user -> kernel thread: the kernel thread starts
        using prev's mm lazily."""

    def mmdrop_lazy_tlb(self, cpu, mm: int) -> None:
        """finish_task_switch (mmdrop_lazy_tlb_sched) and finish_cpu: the
        lazy use of `mm` is over."""

    #: finish_task_switch(cpu), at the end of every context switch on this
    #: CPU; None (skipped on the hot path) unless a strategy needs it
    finish_task_switch = None

    def mmput_lazy_fixup(self, cpu, mm: int) -> None:
        """__mmput, before exit_mmap: the last user is gone."""

    def exit_mmap_flush(self, cpu, mm: int) -> None:
        """exit_mmap: the TLB flush that comes with freeing the page tables."""

    def cleanup_lazy_tlbs(self, cpu, mm: int) -> None:
        """__mmdrop, before the mm_struct is freed."""
