"""tlbstate: Linus Torvalds' idea (LKML, 2 Oct 2024: "at least on x86 we
ALREADY has a better replacement: it's the percpu 'cpu_tlbstate'"), which
has no posted code; the nearest is Peter Zijlstra's queue.git x86/lazy
branch (Nick Piggin's and Andy Lutomirski's patches).

No lazy refcount and no active_mm: the CPU's own cpu_tlbstate.loaded_mm /
is_lazy already say which mm it uses, and mm_cpumask says which CPUs may.
The hot path writes only this CPU's own line (plus switch_mm_cid's
barrier). Nothing is added at teardown: x86's freed-tables flush at
exit_mmap, which every scheme pays, already IPIs every CPU in mm_cpumask,
lazy ones included, and a lazy CPU answers by switching to init_mm
(flush_tlb_func's `switch_mm_irqs_off(NULL, &init_mm, NULL)`): "we do that
*anyway* as part of TLB flushing". So it is safe only where that flush is
an IPI.
"""
from percpu.linux.include_.linux.sched.mm import Strategy


class TlbState(Strategy):
    name = "tlbstate"
    source = "Torvalds, LKML 2 Oct 2024 (no posted code)"
    tracks_active_mm = False
    safe_under = ("ipi",)  # "at least on x86": its safety is the flush IPI
