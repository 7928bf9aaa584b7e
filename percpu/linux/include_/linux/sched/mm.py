"""include/linux/sched/mm.h: the lazy-TLB hooks, mmgrab_lazy_tlb and
mmdrop_lazy_tlb, whose bodies the kernel chooses by config
(CONFIG_MMU_LAZY_TLB_REFCOUNT or _SHOOTDOWN) and each scheme here by its
strategy (percpu/strategies/), with the other places a scheme or a posted
patch puts code: finish_task_switch, do_shoot_lazy_tlb, __mmput and
kernel/fork.c's cleanup_lazy_tlbs.

Each hook's default does nothing; a strategy file overrides exactly the hooks
where its scheme differs, so the file is the whole difference. The rest of
the kernel, x86's exit-time flush included, is the same for every scheme.
"""
from __future__ import annotations


class Strategy:
    name = ""
    #: where the scheme comes from (config, patch: list, date, version)
    source = ""
    #: context_switch keeps task->active_mm (kernel threads borrow the mm);
    #: False: the CPU's cpu_tlbstate.loaded_mm is the only record.
    tracks_active_mm = True
    #: mmgrab_lazy_tlb is a full barrier (a locked op, or smp_mb), which
    #: switch_mm_cid's smp_mb__after_mmgrab() relies on on x86; without one
    #: the context switch pays an smp_mb() there
    lazy_grab_is_barrier = False
    #: x86's freed-tables flush at exit_mmap reaches lazy CPUs; only the
    #: broken controls skip them, as an ordinary flush does
    exit_flush_reaches_lazy = True
    #: the flush models (linux/include_/linux/version.py FLUSHES) under which
    #: the scheme keeps both lifetimes safe; elsewhere the checker must catch it
    safe_under = ("ipi", "broadcast")
    #: CPU hotplug keeps it safe (finish_cpu runs on a surviving CPU), on
    #: 6.14+: before sched_force_init_mm (6.12) a CPU going down stays on its
    #: lazy mm while offline, out of every flush, and no scheme survives that
    hotplug_safe = True
    #: it overrides finish_task_switch (the scheduler skips the call otherwise)
    hooks_finish_task_switch = False
    #: a run with this strategy must end in FAILURE (the broken control)
    expect_violations = False

    def mmgrab_lazy_tlb(self, cpu, mm: int) -> None:
        """context_switch, user -> kernel thread, and exit_mm: this CPU's
        kernel thread (or exiting task) starts using `mm` lazily."""

    def mmdrop_lazy_tlb(self, cpu, mm: int) -> None:
        """finish_task_switch (mmdrop_lazy_tlb_sched) and finish_cpu: a lazy
        use of `mm` is over."""

    def finish_task_switch(self, cpu) -> None:
        """finish_task_switch, at the end of every context switch on this CPU."""

    def lazy_tlb_shot(self, cpu) -> None:
        """do_shoot_lazy_tlb, after it moved this CPU's kernel thread to
        init_mm: what a patch adds there."""

    def mm_fixup_lazy_refs(self, cpu, mm: int) -> None:
        """__mmput, after exit_mmap, before its mmdrop: the last user is gone."""

    def cleanup_lazy_tlbs(self, cpu, mm: int) -> None:
        """__mmdrop, before the mm_struct is freed."""
