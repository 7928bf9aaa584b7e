"""include/linux/version.h: which kernel this is (LINUX_VERSION_CODE), here
with the upstream commits, feature by feature, that the emulated functions
branch on: a run emulates Linux 6.12 or 6.18 (`--kernel`), and x86 flushing
by IPIs or by broadcast (`--flush`).
"""
from __future__ import annotations

FEATURES = ("lazy_mm_cpumask", "trim_cpumask", "flush_switching", "switching_before_cpumask",
            "local_cond_after_remote", "force_init_mm", "invlpgb")


class Kernel:
    """A kernel version's choices (a class with typed fields when compiled:
    hot paths read them). Each feature is named after what it does, with
    the upstream commit that brought it."""

    __slots__ = ("version", *FEATURES)

    def __init__(self, version: str, *, lazy_mm_cpumask: bool, trim_cpumask: bool, flush_switching: bool,
                 switching_before_cpumask: bool, local_cond_after_remote: bool, force_init_mm: bool,
                 invlpgb: bool = False):
        self.version = version
        # 209954cbc7d0 "x86/mm/tlb: Update mm_cpumask lazily" (6.14): a CPU
        # stays in prev's mm_cpumask; flush_tlb_func clears a stale bit
        self.lazy_mm_cpumask = lazy_mm_cpumask
        # 6db2526c1d69 "x86/mm/tlb: Only trim the mm_cpumask once a second"
        # (6.14): should_flush_tlb() replaces tlb_is_not_lazy(); should_trim_cpumask()
        self.trim_cpumask = trim_cpumask
        # fea4e317f9e7 "x86/mm: Eliminate window where TLB flushes may be
        # inadvertently skipped" (6.15): should_flush_tlb() flushes a CPU in
        # LOADED_MM_SWITCHING
        self.flush_switching = flush_switching
        # 83b0177a6c48 "x86/mm: Fix SMP ordering in switch_mm_irqs_off()"
        # (6.18): loaded_mm = LOADED_MM_SWITCHING before the mm_cpumask
        # update, and an smp_mb() where that update is skipped
        self.switching_before_cpumask = switching_before_cpumask
        # Yury Norov's smp_call_function_many_cond() rework (6.17): the local
        # cond_func is evaluated after the remote calls are sent
        self.local_cond_after_remote = local_cond_after_remote
        # 21641bd9a7a7 "lazy tlb: fix hotplug exit race with
        # MMU_LAZY_TLB_SHOOTDOWN" (6.14): a CPU going down leaves its lazy
        # mm for init_mm in sched_cpu_wait_empty, before __cpu_disable
        self.force_init_mm = force_init_mm
        # AMD INVLPGB broadcast TLB flushes with a global ASID for every mm
        # (Rik van Riel's series, merged for 6.15): `--flush broadcast`
        self.invlpgb = invlpgb

    def features(self) -> dict[str, bool]:
        return {name: bool(getattr(self, name)) for name in FEATURES}

    def __repr__(self) -> str:
        on = [name for name, value in self.features().items() if value]
        return f"Kernel({self.version!r}: {', '.join(on) or 'none of the features'})"


LINUX_6_12 = Kernel("6.12", lazy_mm_cpumask=False, trim_cpumask=False, flush_switching=False,
                    switching_before_cpumask=False, local_cond_after_remote=False, force_init_mm=False)
LINUX_6_18 = Kernel("6.18", lazy_mm_cpumask=True, trim_cpumask=True, flush_switching=True,
                    switching_before_cpumask=True, local_cond_after_remote=True, force_init_mm=True)
KERNELS = {k.version: k for k in (LINUX_6_12, LINUX_6_18)}
FLUSHES = ("ipi", "broadcast")


def kernel_for(version: str, flush: str) -> Kernel:
    """The kernel a run emulates. Broadcast flushes need 6.15+, so 6.18."""
    if version not in KERNELS:
        raise ValueError(f"unknown kernel {version!r}: use one of {', '.join(KERNELS)}")
    if flush not in FLUSHES:
        raise ValueError(f"unknown flush model {flush!r}: use one of {', '.join(FLUSHES)}")
    kernel = KERNELS[version]
    if flush == "broadcast":
        if not kernel.flush_switching:
            raise ValueError(f"--flush broadcast needs --kernel 6.18, not {version}: "
                             "INVLPGB support was merged for 6.15")
        return Kernel(version, **{**kernel.features(), "invlpgb": True})
    return kernel
