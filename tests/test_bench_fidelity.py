"""The benchmark's native reference does exactly the shared-memory
operations of the emulator's lazy round trip: otherwise its overhead and
visibility figures would lie."""
import subprocess

import pytest

from percpu.bench import roundtrip as bench
from percpu.linux.include_.linux.sched import Task
from percpu.linux.include_.linux.version import kernel_for
from percpu.linux.init.main import start_kernel
from percpu.linux.kernel.sched.core import boot_idle, run_quanta
from percpu.linux.kernel.smp import flush_smp_call_function_queue
from percpu.machine.addresses import Addresses
from percpu.machine.context import CPU
from percpu.machine.segment import NULL, SharedState
from percpu.machine.stats import COUNTERS, HIST_BUCKETS
from percpu.strategies import SAFE_STRATEGIES, get_strategy
from percpu.workloads import LazyRoundtrip

def _field_names(state):
    names = {}
    for table in (state.mm, state.cpu, state.control):
        for i in range(table.count):
            for field in table.offsets:
                names[state.addr(table, i, field)] = field
    return names


def _per_round_trip(log, round_trips):
    per_trip = len(log) // round_trips
    assert len(log) == per_trip * round_trips
    return [log[i * per_trip:(i + 1) * per_trip] for i in range(round_trips)]


def test_every_safe_strategy_is_benchmarked():
    assert set(bench.ROUND_TRIP_OPS) == set(SAFE_STRATEGIES) == set(bench.STRATEGIES)


class CountedRoundTrips(LazyRoundtrip):
    """The lazy round trip, logged from the first user quantum for ROUND_TRIPS."""

    ROUND_TRIPS = 20

    def run_task(self, cpu, task):
        if cpu.stats.ops == 0:
            cpu.start_op_log()
        if cpu.stats.ops == self.ROUND_TRIPS:
            cpu.stopping = True
            return task
        return super().run_task(cpu, task)


@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_emulator_round_trip_does_exactly_the_round_trip_ops(strategy):
    """Whichever engine runs (tests/test_engine.py runs this file compiled)."""
    workload = CountedRoundTrips(1, 1)
    state = SharedState(ncpus=1, nmm=workload.nmm(), ntasks=workload.ntasks(), npipes=0,
                        counters=COUNTERS, hist_buckets=3 * HIST_BUCKETS)
    start_kernel(state)
    tasks = workload.setup(state)
    cpu = CPU(state, Addresses(state), 0, get_strategy(strategy), kernel_for("6.18", "ipi"),
              flush_smp_call_function_queue)
    boot_idle(cpu, Task(0, "swapper/0", NULL, 0))
    workload.attach(cpu, tasks[0])
    run_quanta(cpu, workload, 10_000)  # one batch, no housekeeping
    names = _field_names(state)
    log = [(op, "" if op == "smp_mb" else names.get(addr, hex(addr))) for op, addr in cpu.op_log]
    # recording starts inside the first user quantum, after its interrupt
    # point: each recorded trip is ROUND_TRIP_OPS with that load moved to the end
    ops = bench.ROUND_TRIP_OPS[strategy]
    assert _per_round_trip(log, CountedRoundTrips.ROUND_TRIPS) == [ops[1:] + ops[:1]] * CountedRoundTrips.ROUND_TRIPS
    state.close()


@pytest.fixture(scope="module")
def native_trace(tmp_path_factory):
    return bench.compile_native(str(tmp_path_factory.mktemp("native")), trace=True)


@pytest.fixture(scope="module")
def native_exe(tmp_path_factory):
    return bench.compile_native(str(tmp_path_factory.mktemp("native")))


@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_native_reference_does_what_round_trip_ops_says(strategy, native_trace):
    state = bench.emulator_segment(1, "padded", 128)
    args = bench.native_arguments(strategy, state, [0])
    size = state.size
    state.close()
    out = subprocess.run([native_trace, args[0], "0", str(size), *args[1:]], capture_output=True, text=True, check=True)
    ops = [tuple((line.split(" ", 1) + [""])[:2]) for line in out.stdout.splitlines()]
    assert ops == bench.ROUND_TRIP_OPS[strategy]


@pytest.mark.parametrize("layout", bench.LAYOUTS)
def test_native_reference_puts_each_field_where_the_emulator_does(layout):
    state = bench.emulator_segment(3, layout, 64)
    strategy, *offsets = bench.native_arguments("tlbstate", state, [5, 6, 7])
    assert strategy == "tlbstate"
    mm = [state.addr(state.mm, bench.PROCESS_MM_SLOT, f) - state.base for f in bench.MM_FIELDS]
    assert [int(x) for x in offsets[:len(mm)]] == mm
    for cpu, arg in enumerate(offsets[len(mm):]):
        core, *fields = (int(x) for x in arg.split(":"))
        assert core == 5 + cpu
        assert fields == [state.addr(state.cpu, cpu, f) - state.base for f in bench.CPU_FIELDS]
    state.close()


@pytest.mark.parametrize("strategy", ["refcount", "tlbstate"])
def test_native_reference_counts_round_trips_and_loses_no_update(strategy, native_exe):
    # two CPUs even on one core: the program checks mm_count is back to 1
    ns = bench.native_run(native_exe, strategy, 2, 0.02, "packed", 64)
    assert 0 < ns < 1e6


def test_no_compiler_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "no-such-cc")
    with pytest.raises(bench.BenchError, match="C compiler.*no-such-cc"):
        bench.compile_native(str(tmp_path))
