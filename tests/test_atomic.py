"""The atomics are atomic across processes, and return what the kernel's do."""
import mmap
import os
import time

import numpy as np
import pytest

from percpu.machine import _atomic, _futex
from conftest import usable_cores

ITERATIONS = 200_000


def _shared_words(n=32):
    buf = mmap.mmap(-1, 8 * n)  # MAP_SHARED|MAP_ANONYMOUS: shared across fork
    words = np.frombuffer(buf, dtype=np.int64)
    return buf, words, words.__array_interface__["data"][0]


def _two_processes(body):
    """Run body(cpu) in two forked processes released together."""
    pids = []
    for cpu in range(2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[cpu % usable_cores()]})
                body(cpu)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _start_together(base):
    _atomic.fetch_add(base + 8, 1)
    while _atomic.load_acquire(base + 8) < 2:
        pass


def test_fetch_add_from_two_processes_counts_exactly():
    buf, words, base = _shared_words()
    counter = base + 128

    def body(cpu):
        _start_together(base)
        add = _atomic.fetch_add
        for _ in range(ITERATIONS):
            add(counter, 1)

    _two_processes(body)
    assert words[16] == 2 * ITERATIONS


@pytest.mark.skipif(usable_cores() < 2, reason="needs two cores to race")
def test_plain_load_store_increment_loses_updates():
    """The broken case the atomic test guards against: a non-atomic
    read-modify-write from two processes loses updates. Each process counts
    its own increments and both run for the same half second, so they
    overlap even on a busy machine."""
    buf, words, base = _shared_words()
    counter, done = base + 128, base + 192

    def body(cpu):
        _start_together(base)
        load, store = _atomic.load_acquire, _atomic.store_release
        mine, end = 0, time.monotonic() + 0.5
        while time.monotonic() < end:
            for _ in range(1000):
                store(counter, load(counter) + 1)
            mine += 1000
        _atomic.fetch_add(done, mine)

    _two_processes(body)
    assert words[16] < words[24]


def test_dec_and_test_reaches_zero_exactly_once_across_processes():
    buf, words, base = _shared_words()
    counter, zero_hits = base + 128, base + 192
    words[16] = 2 * ITERATIONS

    def body(cpu):
        _start_together(base)
        for _ in range(ITERATIONS):
            if _atomic.dec_and_test(counter):
                _atomic.fetch_add(zero_hits, 1)

    _two_processes(body)
    assert words[16] == 0
    assert words[24] == 1


def test_semantics_match_the_kernel():
    buf, words, base = _shared_words()
    a = base + 64
    assert _atomic.fetch_add(a, 5) == 0 and words[8] == 5
    assert _atomic.add_return(a, -2) == 3
    assert _atomic.xchg(a, 10) == 3 and words[8] == 10
    assert _atomic.cmpxchg(a, 9, 20) == 10 and words[8] == 10  # failed: returns what it found
    assert _atomic.cmpxchg(a, 10, 20) == 10 and words[8] == 20
    _atomic.store_release(a, 1)
    assert _atomic.load_acquire(a) == 1
    assert _atomic.dec_and_test(a) is True
    assert _atomic.dec_and_test(a) is False and words[8] == -1
    _atomic.store_release(a, -(1 << 63))  # full int64 range
    assert _atomic.load_acquire(a) == -(1 << 63)
    _atomic.smp_mb()
    _atomic.cpu_relax()


def test_rmw_count_counts_read_modify_writes_only():
    buf, words, base = _shared_words()
    before = _atomic.rmw_count()
    _atomic.fetch_add(base, 1)
    _atomic.xchg(base, 2)
    _atomic.cmpxchg(base, 2, 3)
    _atomic.load_acquire(base)
    _atomic.store_release(base, 0)
    assert _atomic.rmw_count() - before == 3


def test_bad_addresses_raise_instead_of_crashing():
    buf, words, base = _shared_words()
    with pytest.raises(ValueError):
        _atomic.load_acquire(base + 4)
    with pytest.raises(ValueError):
        _atomic.fetch_add(0, 1)
    with pytest.raises(TypeError):
        _atomic.fetch_add(base)


def test_futex_wait_returns_at_once_unless_the_word_holds_the_value():
    buf, words, base = _shared_words()
    words[4] = 1
    assert _futex.futex_wait(base + 32, 0, 10_000_000_000) is True  # holds 1, not 0: no sleep at all
    assert _futex.futex_wait(base + 32, 1, 1_000_000) is False  # holds 1: sleeps until the timeout
    assert _futex.futex_wake(base + 32, 1) == 0  # nobody waits
    before = _atomic.rmw_count()
    _futex.futex_wake(base + 32, 1)
    assert _atomic.rmw_count() == before  # the harness's, not a shared atomic of the kernel's


def test_futex_wake_wakes_a_sleeper_in_another_process():
    """Process 1 sleeps on a word (for up to 60 s); process 0 changes it and
    wakes it. Process 1 then reports whether its wait ended by a wake-up."""
    buf, words, base = _shared_words()
    word, asleep, result = base + 128, base + 192, base + 200

    def body(cpu):
        if cpu == 1:
            _atomic.store_release(asleep, 1)
            woken = _futex.futex_wait(word, 0, 60_000_000_000)
            _atomic.store_release(result, 1 if woken and _atomic.load_acquire(word) == 1 else 2)
        else:
            while not _atomic.load_acquire(asleep):
                pass
            time.sleep(0.05)  # let it reach the futex (were it not there yet, its wait would not start)
            _atomic.store_release(word, 1)
            while _futex.futex_wake(word, 1) == 0 and _atomic.load_acquire(result) == 0:
                time.sleep(0.01)

    _two_processes(body)
    assert words[25] == 1
