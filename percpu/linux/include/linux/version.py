"""include/linux/version.h: which kernel this is (LINUX_VERSION_CODE), here
with the upstream commits, feature by feature, that the emulated functions
branch on: a run emulates Linux 6.12 or 6.18 (`--kernel`), and x86 flushing
by IPIs or by broadcast (`--flush`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Kernel:
    version: str
    #: 209954cbc7d0 "x86/mm/tlb: Update mm_cpumask lazily" (6.14): a CPU stays
    #: in prev's mm_cpumask; flush_tlb_func clears a stale bit
    lazy_mm_cpumask: bool
    #: 6db2526c1d69 "x86/mm/tlb: Only trim the mm_cpumask once a second" (6.14):
    #: should_flush_tlb() replaces tlb_is_not_lazy(); should_trim_cpumask()
    trim_cpumask: bool
    #: fea4e317f9e7 "x86/mm: Eliminate window where TLB flushes may be
    #: inadvertently skipped" (6.15): should_flush_tlb() flushes a CPU in
    #: LOADED_MM_SWITCHING
    flush_switching: bool
    #: 83b0177a6c48 "x86/mm: Fix SMP ordering in switch_mm_irqs_off()" (6.18):
    #: loaded_mm = LOADED_MM_SWITCHING before the mm_cpumask update, and an
    #: smp_mb() where that update is skipped
    switching_before_cpumask: bool
    #: Yury Norov's smp_call_function_many_cond() rework (6.17): the local
    #: cond_func is evaluated after the remote calls are sent
    local_cond_after_remote: bool
    #: AMD INVLPGB broadcast TLB flushes with a global ASID for every mm
    #: (Rik van Riel's series, merged for 6.15): `--flush broadcast`
    invlpgb: bool = False


LINUX_6_12 = Kernel("6.12", lazy_mm_cpumask=False, trim_cpumask=False, flush_switching=False,
                    switching_before_cpumask=False, local_cond_after_remote=False)
LINUX_6_18 = Kernel("6.18", lazy_mm_cpumask=True, trim_cpumask=True, flush_switching=True,
                    switching_before_cpumask=True, local_cond_after_remote=True)
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
        return replace(kernel, invlpgb=True)
    return kernel
