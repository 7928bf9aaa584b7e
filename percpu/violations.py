"""What the checker can find, and where in the emulated kernel it was found.

Kinds and sites are small integers so that a CPU can record a violation with
a few stores into the shared violation table; both registries are filled at
import time, before the workers fork, so every CPU agrees on the numbers.
"""
from __future__ import annotations

USE_AFTER_FREE = 1  # a stale mm reference was dereferenced
FREED_WHILE_LOADED = 2  # __mmdrop freed an mm some CPU still had as loaded_mm
REFCOUNT_UNDERFLOW = 3  # mm_users or mm_count went below zero
IPI_TIMEOUT = 4  # a synchronous IPI was not acknowledged (the CSD-lock warning)
LEAKED_MM = 5  # found by the end-of-run check: an mm never freed
BAD_END_STATE = 6  # found by the end-of-run check: counts or pointers left behind
STALE_TLB = 7  # a CPU ran an mm's user code with a TLB older than a completed flush

KIND_NAMES = {
    USE_AFTER_FREE: "use-after-free",
    FREED_WHILE_LOADED: "freed-while-loaded",
    REFCOUNT_UNDERFLOW: "refcount-underflow",
    IPI_TIMEOUT: "ipi-timeout",
    LEAKED_MM: "leaked-mm",
    BAD_END_STATE: "bad-end-state",
    STALE_TLB: "stale-tlb",
}

_SITES: list[str] = ["?"]


def site(description: str) -> int:
    """Register a code path that can observe a violation; returns its id."""
    if description in _SITES:
        return _SITES.index(description)
    _SITES.append(description)
    return len(_SITES) - 1


def site_name(site_id: int) -> str:
    return _SITES[site_id] if 0 <= site_id < len(_SITES) else f"site {site_id}"
