"""unsafe: the broken control. No lazy reference, no shootdown, no check.

The last mmput frees the mm while lazy CPUs still have it loaded: the
checker must report a use-after-free on every run (as locktorture ships a
deliberately broken lock to prove its checker works).
"""
from percpu.strategies.base import Strategy


class Unsafe(Strategy):
    name = "unsafe"
    expect_violations = True
