"""The benchmark's minimal loop does exactly the shared-memory operations of
the emulator's lazy round trip: otherwise its overhead figure would lie."""
import importlib.util
import os

import pytest

from percpu.cpu import CPU, COUNTERS, HIST_BUCKETS
from percpu.sched import Task, boot_idle, run_quanta
from percpu.state import NULL, SharedState
from percpu.strategies import get_strategy
from percpu.workers.pool import _boot_init_mm
from percpu.workloads import LazyRoundtrip

BENCH = os.path.join(os.path.dirname(__file__), "..", "bench", "roundtrip.py")


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_roundtrip", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _field_names(state):
    names = {}
    for table in (state.mm, state.cpu, state.control):
        for i in range(table.count):
            for field in table.offsets:
                names[state.addr(table, i, field)] = field
    return names


def _counting(names, log):
    from percpu import _atomic

    def wrap(op, fn):
        def counted(addr, *args):
            log.append((op, names.get(addr, hex(addr))))
            return fn(addr, *args)

        return counted

    return {op: wrap(op, getattr(_atomic, real)) for op, real in
            (("load", "load_acquire"), ("store", "store_release"), ("fetch_add", "fetch_add"),
             ("add_return", "add_return"))}


@pytest.mark.parametrize("strategy", ["refcount", "tlbstate"])
def test_emulator_round_trip_does_exactly_the_minimal_loops_operations(strategy):
    bench = _load_bench()
    workload = LazyRoundtrip(1, 1)
    state = SharedState(ncpus=1, nmm=workload.nmm(), ntasks=workload.ntasks(), npipes=0,
                        counters=COUNTERS, hist_buckets=3 * HIST_BUCKETS)
    _boot_init_mm(state)
    tasks = workload.setup(state)
    cpu = CPU(state, 0, get_strategy(strategy))
    boot_idle(cpu, Task(0, "swapper/0", NULL, 0))
    workload.attach(cpu, tasks[0])
    log = []
    ops = _counting(_field_names(state), log)
    cpu.load, cpu.store, cpu.fetch_add, cpu.add_return = ops["load"], ops["store"], ops["fetch_add"], ops["add_return"]

    round_trips = 20
    real_run_task = workload.run_task

    def run_task(c, task):  # start recording at the first user quantum; stop after 20 round trips
        if c.ops == 0:
            log.clear()
        if c.ops == round_trips:
            c.stopping = True
            return task
        return real_run_task(c, task)

    workload.run_task = run_task
    run_quanta(cpu, workload, 10_000)  # one batch, no housekeeping
    per_trip = len(log) // round_trips
    assert len(log) == per_trip * round_trips
    expected = [tuple(op) for op in bench.MINIMAL_OPS[strategy]]
    assert per_trip == len(expected)
    for i in range(round_trips):
        assert sorted(log[i * per_trip:(i + 1) * per_trip]) == sorted(expected)

    # and the hand-written minimal loop does what MINIMAL_OPS says
    minimal_log = []
    names = {1: "ipi_pending", 2: "is_lazy", 3: "gen", 4: "tlb_gen", 5: "mm_count"}
    def rec(op):
        return lambda addr, *a: minimal_log.append((op, names[addr]))
    bench.MINIMAL_LOOPS[strategy](1, rec("load"), rec("store"), rec("fetch_add"), rec("add_return"), 1, 2, 3, 4, 5)
    assert minimal_log == expected
    state.close()
