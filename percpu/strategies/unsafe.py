"""unsafe: the broken control. No lazy reference, no shootdown, and the
freed-tables flush at exit_mmap skips lazy CPUs as an ordinary flush does.

Nothing keeps a lazily used mm or its page tables alive, whatever the flush
model: the checker must report a violation on every run (as locktorture
ships a deliberately broken lock to prove its checker works).
"""
from percpu.linux.include_.linux.sched.mm import Strategy


class Unsafe(Strategy):
    name = "unsafe"
    source = "none: the checker's control"
    exit_flush_reaches_lazy = False
    safe_under = ()
    expect_violations = True
