"""The strategies, one file each, by the name the CLI uses."""
from percpu.strategies.base import Strategy
from percpu.strategies.refcount import Refcount
from percpu.strategies.tlbstate import TlbState
from percpu.strategies.unsafe import Unsafe

STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (Refcount, TlbState, Unsafe)}
SAFE_STRATEGIES = tuple(name for name, s in STRATEGIES.items() if not s.expect_violations)


def get_strategy(name: str) -> Strategy:
    return STRATEGIES[name]()
