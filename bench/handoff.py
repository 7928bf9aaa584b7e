"""The host's cost of handing a core from one process to another: two
processes pinned to one core pass a word back and forth with the futex
wait and wake the halting CPUs use (percpu/machine/_futex.c). An
oversubscribed ping-pong pays at least one such hand-off per op, so
cores / this cost bounds its throughput, whatever the emulator does.

    python -P -m percpu.bench.handoff [--hand-offs N]
"""
from __future__ import annotations

import argparse
import mmap
import os
import sys
import time

import numpy as np

from percpu.machine import _atomic, _futex


def _side(word: int, me: int, rounds: int, core: int) -> None:
    os.sched_setaffinity(0, {core})
    for _ in range(rounds):
        while _atomic.load_acquire(word) != me:
            _futex.futex_wait(word, 1 - me, 1_000_000_000)
        _atomic.store_release(word, 1 - me)
        _futex.futex_wake(word, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hand-offs", type=int, default=200_000)
    args = p.parse_args(argv)
    shared = mmap.mmap(-1, mmap.PAGESIZE)
    word = np.frombuffer(shared, dtype=np.int64).ctypes.data
    core = min(os.sched_getaffinity(0))
    rounds = args.hand_offs // 2
    pid = os.fork()
    if pid == 0:
        _side(word, 1, rounds, core)
        os._exit(0)
    start = time.perf_counter()
    _side(word, 0, rounds, core)
    os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    print(f"{elapsed / (2 * rounds) * 1e6:.2f} us per hand-off ({2 * rounds / elapsed:,.0f} per second on one core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
