"""The strategies, one file each, by the name the CLI uses."""
from percpu.linux.include_.linux.sched.mm import Strategy
from percpu.strategies.hazard import Hazard
from percpu.strategies.lazy_mm import LazyMm
from percpu.strategies.refcount import Refcount
from percpu.strategies.shootdown import Shootdown
from percpu.strategies.tlbstate import TlbState
from percpu.strategies.unsafe import Unsafe

STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s for s in (Refcount, Shootdown, Hazard, LazyMm, TlbState, Unsafe)
}
SAFE_STRATEGIES = tuple(name for name, s in STRATEGIES.items() if not s.expect_violations)


def get_strategy(name: str) -> Strategy:
    return STRATEGIES[name]()
