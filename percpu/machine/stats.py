"""Harness: one CPU's statistics, the counters and latency histograms it
reports at the end of a run. Private to their CPU (no shared writes while
running); `workers/worker.py` copies them into the segment's stats table.
"""
from __future__ import annotations

import math
import time

from percpu.machine import _atomic

# Per-CPU counters reported at the end of a run, in the stats table's order.
COUNTERS = (
    "ops",
    "switches",
    "lazy_switches",
    "probes",
    "shared_atomics",
    "ipis_sent",
    "ipis_received",
    "teardowns",
    "teardown_ns",
    "teardown_ipis",
    "teardown_wait_ns",
    "slots_scanned",
    "fixups",
    "forks",
    "wait_ns",
    "violations",
    "yields",
    "stalls",
    "ipis_delayed",
    "hotplugs",
    "migrations",
    "trace_written",
    "timed_switches",
    "timed_switch_ns",
    # oversubscribed runs (machine/context.py): times the CPU's process slept
    # (halted), ns it slept, halts that ended by their timeout (its next
    # timer, or HALT_MAX_NS) rather than a kick, CPUs it woke from a halt
    "halts",
    "halted_ns",
    "halt_timeouts",
    "kicks",
)
# ns histograms: bucket b holds values in [2**(b/32), 2**((b+1)/32)), so a
# percentile (the bucket's geometric middle) is within 1.1% of the value:
# two runs that differ by more than that read differently.
HIST_BUCKETS_PER_OCTAVE = 32
HIST_BUCKETS = 40 * HIST_BUCKETS_PER_OCTAVE
HIST_BUCKET_WIDTH_PCT = round(100 * (2 ** (1 / HIST_BUCKETS_PER_OCTAVE) - 1), 1)
# Histograms each CPU keeps, in the shared hist table's order: ns per op (from
# batches), ns per context switch (one switch in SWITCH_SAMPLE_EVERY timed),
# ns per mm teardown.
HISTOGRAMS = ("hist", "switch_hist", "teardown_hist")
SWITCH_SAMPLE_EVERY = 64


# Counters kept as attributes; shared_atomics is counted by the C atomics.
COUNTED = tuple(name for name in COUNTERS if name != "shared_atomics")


class Stats:
    __slots__ = COUNTED + HISTOGRAMS + ("_rmw_base", "batch_start_ns", "_batch_start_ops")

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Start measuring: what came before (boot) is not part of the run."""
        for name in COUNTED:
            setattr(self, name, 0)
        for name in HISTOGRAMS:
            setattr(self, name, [0] * HIST_BUCKETS)
        self._rmw_base = _atomic.rmw_count()
        self.batch_start_ns, self._batch_start_ops = time.perf_counter_ns(), 0

    def sample_batch(self) -> None:
        """One ns-per-op sample for the latency histogram, per batch of
        quanta (timing each op would cost more than the op)."""
        now = time.perf_counter_ns()
        ops = self.ops - self._batch_start_ops
        if ops:
            record(self.hist, (now - self.batch_start_ns) / ops)
        self.batch_start_ns, self._batch_start_ops = now, self.ops

    def values(self) -> dict[str, int]:
        values = {name: getattr(self, name) for name in COUNTED}
        values["shared_atomics"] = _atomic.rmw_count() - self._rmw_base
        return values

    def histograms(self) -> list[int]:
        """Every histogram end to end, in the hist table's order."""
        return [count for name in HISTOGRAMS for count in getattr(self, name)]


def record(hist: list[int], value_ns: float) -> None:
    bucket = int(math.log2(value_ns) * HIST_BUCKETS_PER_OCTAVE) if value_ns >= 1 else 0
    hist[min(bucket, HIST_BUCKETS - 1)] += 1


def bucket_value(bucket: int) -> float:
    """Geometric middle of a histogram bucket, in ns."""
    return 2 ** ((bucket + 0.5) / HIST_BUCKETS_PER_OCTAVE)
