"""The coordinator: builds the shared state, forks one worker per CPU,
releases them together, samples their progress, watches their health, stops
them, and turns what they left in shared memory into the result document.

Watchdog: a worker that dies, crashes or falls silent (no heartbeat for
`stall_timeout_s`) aborts the run with a reason naming the CPU; workers
check that the coordinator is still their parent and stop if it is not.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import asdict, dataclass

from percpu.linux.include_.linux.version import kernel_for
from percpu.linux.init.main import start_kernel
from percpu.linux.kernel.smp import IPI_NAMES
from percpu.machine import _atomic, _futex
from percpu.machine.addresses import Addresses
from percpu.machine.context import AWAKE
from percpu.machine.checker import IPI_TIMEOUT, KIND_NAMES, check_end_state, final_state, recorded_violations
from percpu.machine.segment import SharedState
from percpu.machine.stats import COUNTERS, HIST_BUCKETS, HISTOGRAMS
from percpu.machine.tracing import TRACE_EVENTS_PER_CPU, read_rings, to_chrome_trace
from percpu.strategies import get_strategy
from percpu.workloads import WORKLOADS
from percpu.workers.results import build_document, machine_info
from percpu.workers.worker import (
    EXIT_ABORTED,
    EXIT_CRASHED,
    EXIT_OK,
    EXIT_ORPHANED,
    PHASE_RUN,
    WorkerSetup,
    cpu_main,
)

MAX_CPUS = 256  # mm_cpumask has 4 words


@dataclass
class RunParams:
    strategy: str = "refcount"
    workload: str = "lazy-roundtrip"
    cpus: int = 2
    duration: float = 2.0
    seed: int = 1
    line_size: int = 128
    layout: str = "padded"
    tasks_per_cpu: int = 1
    fork_rate: float = 200.0
    kernel: str = "6.18"  # the Linux version emulated (percpu.linux.include_.linux.version.KERNELS)
    flush: str = "ipi"  # x86 TLB flushes by IPI, or by broadcast (INVLPGB)
    switch_cost_ns: int = 0  # modelled rest of each context switch, spent busy (linux/kernel/sched/core.py)
    faults: tuple[str, ...] = ()  # percpu.faults.FAULTS
    trace: bool = False  # record per-CPU events; the document gets a "trace" (Chrome JSON)
    kill_after_s: float = 0.0  # > 0: the coordinator SIGKILLs one worker then
    ipi_timeout_s: float = 10.0
    stall_timeout_s: float = 20.0


class _Terminated(BaseException):
    pass


def _raise_terminated(signum, frame):
    raise _Terminated()


STARTUP_QUIET_S = 1.0  # start-up this long says nothing; longer, it reports
STARTUP_REPORT_EVERY_S = 0.5


def run(params: RunParams, progress=None, on_startup=None) -> dict:
    """Run one emulation; returns the result document. `progress(samples)`
    is called with the live sample list, if given; `on_startup(forked,
    ready, total, elapsed_s, done)` when start-up takes over
    STARTUP_QUIET_S, every STARTUP_REPORT_EVERY_S and once at its end."""
    strategy = get_strategy(params.strategy)
    workload = WORKLOADS[params.workload](params.cpus, params.seed, params.tasks_per_cpu, params.fork_rate)
    usable = sorted(os.sched_getaffinity(0))
    pinning = pin_cpus(params.cpus, usable)
    state = new_state(params, workload)
    old_term = signal.signal(signal.SIGTERM, _raise_terminated)
    pids: dict[int, int] = {}
    try:
        start_kernel(state)
        setup = WorkerSetup(
            state=state,
            mem=Addresses(state),
            strategy=strategy,
            workload=workload,
            tasks=workload.setup(state),
            pinning=pinning,
            oversubscribed=params.cpus > len(usable),
            coordinator_pid=os.getpid(),
            ipi_timeout_s=params.ipi_timeout_s,
            kernel=kernel_for(params.kernel, params.flush),
            switch_cost_ns=params.switch_cost_ns,
            faults=frozenset(params.faults),
            seed=params.seed,
            trace=params.trace,
        )
        startup = _Startup(params.cpus, on_startup)
        _start_workers(setup, pids, startup)
        watch = _Watchdog(state, pids, params.stall_timeout_s)
        aborted = _wait_for_boot(state, params, watch, startup)
        samples, elapsed, counted_s, aborted = _supervise(state, params, watch, progress, aborted)
        doc = _collect(state, params, workload, pinning, usable, samples, elapsed, counted_s, aborted)
        doc["startup_s"] = round(startup.elapsed(), 3)
        return doc
    except (KeyboardInterrupt, _Terminated):
        _abort_workers(state, pids)
        raise KeyboardInterrupt() from None
    finally:
        signal.signal(signal.SIGTERM, old_term)
        _kill_all(pids)
        state.close()


def pin_cpus(ncpus: int, usable: list[int]) -> list[int]:
    """The core each emulated CPU runs on: one core each, in turn, while
    there are cores enough; more CPUs than cores, in contiguous blocks (CPU
    i on core i * cores // ncpus), so that neighbours, which the
    context-switch workloads make partners, share a core: the one that
    wakes the other then sleeps and leaves it the core, where partners on
    two cores wait on each other's wake-up across cores (an IPI, and on a
    VM a halted virtual CPU's exit)."""
    if ncpus <= len(usable):
        return usable[:ncpus]
    return [usable[i * len(usable) // ncpus] for i in range(ncpus)]


def new_state(params: RunParams, workload) -> SharedState:
    """The segment a run of `workload` with `params` needs."""
    return SharedState(
        ncpus=params.cpus,
        nmm=workload.nmm(),
        ntasks=workload.ntasks(),
        npipes=workload.npipes(),
        counters=COUNTERS,
        hist_buckets=len(HISTOGRAMS) * HIST_BUCKETS,
        line_size=params.line_size,
        packed=params.layout == "packed",
        trace_events_per_cpu=TRACE_EVENTS_PER_CPU if params.trace else 0,
    )


class _Startup:
    """Start-up progress, for runs whose start-up is long (many CPUs on few
    cores): quiet for STARTUP_QUIET_S, then a report every
    STARTUP_REPORT_EVERY_S and one at the end."""

    def __init__(self, total: int, report):
        self.total, self.report = total, report
        self.start = time.monotonic()
        self.next_report = self.start + STARTUP_QUIET_S
        self.reported = False
        self.end = None

    def tick(self, forked: int, ready: int) -> None:
        now = time.monotonic()
        if self.report is not None and now >= self.next_report:
            self.report(forked, ready, self.total, now - self.start, False)
            self.next_report, self.reported = now + STARTUP_REPORT_EVERY_S, True

    def finish(self) -> None:
        self.end = time.monotonic()
        if self.reported:
            self.report(self.total, self.total, self.total, self.elapsed(), True)

    def elapsed(self) -> float:
        return (self.end or time.monotonic()) - self.start


def _start_workers(setup: WorkerSetup, pids: dict[int, int], startup: _Startup) -> None:
    """Fork one process per CPU from this fully imported process, into
    `pids` as they start (so that an interrupted start-up kills those)."""
    sys.stdout.flush()
    sys.stderr.flush()
    ready = setup.state.field(setup.state.control, "ready")
    for cpu_id in range(setup.state.ncpus):
        pid = os.fork()
        if pid == 0:  # the worker: never return into the coordinator's code
            code = EXIT_CRASHED
            try:
                code = cpu_main(setup, cpu_id)
            finally:
                sys.stderr.flush()
                os._exit(code)
        pids[cpu_id] = pid
        startup.tick(cpu_id + 1, int(ready[0]))


class _Watchdog:
    """Notices dead, crashed and silent workers."""

    def __init__(self, state: SharedState, pids: dict[int, int], stall_timeout_s: float):
        # the run's own dict: a reaped worker leaves it, so nobody signals its pid again
        self.state, self.pids, self.stall_timeout_s = state, pids, stall_timeout_s
        self.exit_codes: dict[int, int] = {}
        self.heartbeat = state.field(state.cpu, "heartbeat")
        self.last_beat = self.heartbeat.copy()
        self.last_change = [time.monotonic()] * state.ncpus

    def reap(self) -> str | None:
        """Collect exited workers; returns why the run must abort, if it must."""
        for cpu_id, pid in list(self.pids.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                del self.pids[cpu_id]
                code = os.waitstatus_to_exitcode(status)
                self.exit_codes[cpu_id] = code
                if code < 0:
                    return f"CPU {cpu_id} (pid {pid}) was killed by {signal.Signals(-code).name}"
                if code == EXIT_CRASHED:
                    return f"CPU {cpu_id} (pid {pid}) crashed (traceback above)"
                if code not in (EXIT_OK, EXIT_ABORTED, EXIT_ORPHANED):
                    return f"CPU {cpu_id} (pid {pid}) exited with code {code}"
        return None

    def silent(self) -> str | None:
        now = time.monotonic()
        beats = self.heartbeat.copy()
        for cpu_id in self.pids:
            if beats[cpu_id] != self.last_beat[cpu_id]:
                self.last_change[cpu_id] = now
            elif now - self.last_change[cpu_id] > self.stall_timeout_s:
                return f"CPU {cpu_id} (pid {self.pids[cpu_id]}) is stuck: no heartbeat for {self.stall_timeout_s:g} s"
        self.last_beat = beats
        return None

    def all_exited(self) -> bool:
        return not self.pids


def _signal_all(state: SharedState, field: str) -> None:
    """Set a control flag and interrupt every CPU so it sees it at once,
    waking those asleep (halted, or at the start barrier)."""
    state.field(state.control, field)[0] = 1
    for cpu_id in range(state.ncpus):
        _atomic.fetch_add(state.addr(state.cpu, cpu_id, "ipi_pending"), 1)
    _wake_all(state)


def _wake_all(state: SharedState) -> None:
    halted = state.field(state.halt, "halted")
    halted[:] = AWAKE
    for cpu_id in range(state.ncpus):
        _futex.futex_wake(state.addr(state.halt, cpu_id, "halted"), 1)
    _futex.futex_wake(state.addr(state.control, 0, "phase"), state.ncpus)


def _wait_for_boot(state: SharedState, params: RunParams, watch: _Watchdog, startup: _Startup) -> str | None:
    """Wait until every CPU is at the start barrier; returns why the run
    must abort, if it must."""
    ready = state.field(state.control, "ready")
    limit_s = 30 + 0.2 * params.cpus
    deadline = time.monotonic() + limit_s
    aborted = None
    while ready[0] < params.cpus and aborted is None:
        aborted = watch.reap()
        if time.monotonic() > deadline:
            aborted = f"CPUs did not boot within {limit_s:g} s"
        startup.tick(params.cpus, int(ready[0]))
        time.sleep(0.002)
    startup.finish()
    return aborted


def _supervise(state: SharedState, params: RunParams, watch: _Watchdog, progress, aborted: str | None):
    ops = state.field(state.cpu, "ops")
    samples: list[list[float]] = []
    start = time.monotonic()
    if aborted is None:
        state.field(state.control, "start_ns")[0] = time.monotonic_ns()
        state.field(state.control, "phase")[0] = PHASE_RUN
        _futex.futex_wake(state.addr(state.control, 0, "phase"), params.cpus)
        start = time.monotonic()
        interval = min(1.0, max(0.05, params.duration / 10))
        next_sample, last_ops, last_t = start + interval, ops.copy(), start
        stop_at = start + params.duration
        kill_at = start + params.kill_after_s if params.kill_after_s > 0 else None
        while aborted is None:
            if kill_at is not None and time.monotonic() >= kill_at:
                kill_at = None
                victim = params.seed % params.cpus
                if victim in watch.pids:  # the fault: one worker killed outright
                    os.kill(watch.pids[victim], signal.SIGKILL)
            time.sleep(min(0.05, max(0.0, min(next_sample, stop_at) - time.monotonic())))
            aborted = watch.reap() or watch.silent() or _aborted_by_cpu(state)
            now = time.monotonic()
            if now >= next_sample:
                current = ops.copy()
                samples.append([float(x) / (now - last_t) for x in (current - last_ops)])
                last_ops, last_t, next_sample = current, now, now + interval
                if progress:
                    progress(samples)
            if now >= stop_at:
                break
    elapsed = time.monotonic() - start
    if aborted is None:
        _signal_all(state, "stop")
        finish_deadline = time.monotonic() + 30 + 0.5 * params.cpus
        while not watch.all_exited() and aborted is None:
            time.sleep(0.005)
            aborted = watch.reap() or watch.silent() or _aborted_by_cpu(state)
            if time.monotonic() > finish_deadline:
                aborted = "CPUs did not finish: " + ", ".join(f"CPU {c}" for c in sorted(watch.pids))
    if aborted is not None:
        _abort_workers(state, watch.pids)
        watch.reap()
    # the span the CPUs' counters cover: from the start to their exit
    return samples, elapsed, time.monotonic() - start, aborted


def _aborted_by_cpu(state: SharedState) -> str | None:
    if not state.field(state.control, "abort")[0]:
        return None
    cpu_id = int(state.field(state.control, "abort_cpu")[0]) - 1
    _, violations = recorded_violations(state)
    for v in violations:
        if v["kind"] == KIND_NAMES[IPI_TIMEOUT]:
            return (f"CPU {v['cpu']} waited too long for CPU {v['other_cpu']}: {v['site']} "
                    f"(the kernel's CSD-lock warning)")
    return f"CPU {cpu_id} aborted the run"


def _abort_workers(state: SharedState, pids: dict[int, int]) -> None:
    """Tell every CPU to stop now; kill whoever does not within a second."""
    if not pids:
        return
    _signal_all(state, "abort")
    deadline = time.monotonic() + 1.0
    live = dict(pids)
    while live and time.monotonic() < deadline:
        for cpu_id, pid in list(live.items()):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    del live[cpu_id]
            except ChildProcessError:
                del live[cpu_id]
        time.sleep(0.005)
    _kill_all(live)


def _kill_all(pids: dict[int, int]) -> None:
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids.values():
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _collect(state, params, workload, pinning, usable, samples, elapsed, counted_s, aborted) -> dict:
    stats = {name: state.field(state.stats, name) for name in COUNTERS}
    published_ops = state.field(state.cpu, "ops")
    # An aborted run's CPUs never reported: only the ops they published
    # while running (at their heartbeats) are known.
    per_cpu = [
        {"cpu": c, "core": pinning[c],
         **{name: int(stats[name][c]) if aborted is None else None for name in COUNTERS},
         **({} if aborted is None else {"ops": int(published_ops[c])})}
        for c in range(params.cpus)
    ]
    hist = state.rows(state.hist)[:, : len(HISTOGRAMS) * HIST_BUCKETS].sum(axis=0)
    hists = {name: hist[i * HIST_BUCKETS:(i + 1) * HIST_BUCKETS] for i, name in enumerate(HISTOGRAMS)}
    violation_total, violations = recorded_violations(state)
    end_state = [] if aborted else check_end_state(state)
    parameters = asdict(params)
    parameters["duration"] = float(params.duration)
    doc = build_document(
        parameters=parameters,
        machine=machine_info(pinning, usable),
        workload_op=workload.op,
        elapsed_s=elapsed,
        counted_s=counted_s,
        samples=samples,
        per_cpu_counters=per_cpu,
        counters_reported=aborted is None,
        op_hist=hists["hist"],
        switch_hist=hists["switch_hist"],
        teardown_hist=hists["teardown_hist"],
        violation_total=violation_total,
        violations=violations,
        end_state_problems=end_state,
        aborted=aborted,
    )
    doc["final_state"] = final_state(state)
    if params.trace:
        written = [c["trace_written"] or 0 for c in per_cpu]  # None: aborted, the CPUs never said
        doc["trace"] = to_chrome_trace(
            read_rings(state, written),
            start_ns=int(state.field(state.control, "start_ns")[0]),
            pinning=pinning,
            title=f"percpu {params.strategy} / {params.workload}, {params.cpus} CPUs",
            ipi_names=IPI_NAMES,
            violation_kinds=KIND_NAMES,
            lost=[max(0, n - TRACE_EVENTS_PER_CPU) for n in written],
        )
    return doc

