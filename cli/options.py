"""Option checks shared by the commands: each raises typer.BadParameter, which
`main()` turns into one line on stderr and exit 2."""
from __future__ import annotations

import math
import os

import typer

from percpu.faults import FAULTS
from percpu.linux.include_.linux.version import FLUSHES, KERNELS, kernel_for
from percpu.workers.pool import RunParams
from percpu.workloads import WORKLOADS


MAX_SWITCH_COST_NS = 1_000_000  # a switch that costs more than 1 ms is no model of a machine
MAX_DURATION_S = 86_400.0  # a day: a longer run is a typo, not a measurement
DEFAULT_FORK_RATE = RunParams.fork_rate
MAX_FORK_RATE = 1_000_000.0  # per second per CPU: one fork a microsecond, more than an emulated CPU can run
MAX_LINE_SIZE = 4096  # a page: no cache has longer lines


def switch_cost_option():
    """--switch-cost-ns, shared by run and sweep."""
    return typer.Option(
        0, "--switch-cost-ns", min=0, max=MAX_SWITCH_COST_NS,
        help="Modelled rest of each context switch, in ns spent busy (registers, scheduler, the pipe syscall): "
             "sets the lazy-mm work's share of a switch, e.g. 3600 for a VM's user->user switch.",
    )


def positive_finite(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"must be a positive finite number, not {value}")
    return value


def duration(value: float) -> float:
    """Seconds: positive, finite, at most MAX_DURATION_S."""
    positive_finite(value)
    if value > MAX_DURATION_S:
        raise typer.BadParameter(f"must be at most {MAX_DURATION_S:g} seconds (a day), not {value:g}")
    return value


def fork_rate(value: float) -> float:
    positive_finite(value)
    if value > MAX_FORK_RATE:
        raise typer.BadParameter(f"must be at most {MAX_FORK_RATE:g} forks per second per CPU, not {value:g}")
    return value


def line_size(value: int) -> int:
    if value < 64 or value > MAX_LINE_SIZE or value & (value - 1):
        raise typer.BadParameter(
            f"must be a power of two from 64 to {MAX_LINE_SIZE} bytes, not {value}")
    return value


def same_file(a: str, b: str) -> bool:
    """Do two output paths name one file (it may not exist yet)?"""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def writable_file(value: str | None) -> str | None:
    """An output file we can create or overwrite, checked before any run
    starts (so a long run never ends in a failed write)."""
    if value is None:
        return None
    if os.path.isdir(value):
        raise typer.BadParameter(f"{value} is a directory")
    existed = os.path.exists(value)
    try:
        with open(value, "a"):
            pass
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {value}: {exc.strerror}") from None
    if not existed:
        os.unlink(value)
    return value


def fault_list(value: str) -> tuple[str, ...]:
    """'all', 'none', or a comma-separated list of percpu.faults.FAULTS."""
    if value == "all":
        return FAULTS
    if value in ("none", ""):
        return ()
    names = tuple(name.strip() for name in value.split(","))
    unknown = [name for name in names if name not in FAULTS]
    if unknown:
        raise typer.BadParameter(f"unknown fault {unknown[0]!r}: use all, none, or some of {', '.join(FAULTS)}")
    return names


def parse_counts(text: str, what: str, highest: int) -> list[int]:
    """'1,2,4' or '1-8' or both ('1,2,4-6'): sorted distinct counts in
    1..highest. Raises typer.BadParameter with one line."""
    counts: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        first, dash, last = item.partition("-")
        try:
            low = int(first)
            high = int(last) if dash else low
        except ValueError:
            raise typer.BadParameter(
                f"{item!r} is not a {what} or a range like 1-{highest} (expected e.g. 1,2,4 or 1-4)"
            ) from None
        if low > high:
            raise typer.BadParameter(f"range {item!r} is empty: its start is above its end")
        if low < 1 or high > highest:
            raise typer.BadParameter(f"{item!r}: each {what} must be from 1 to {highest}")
        counts.update(range(low, high + 1))
    return sorted(counts)


def kernel_option():
    """--kernel, shared by run, sweep and explore."""
    return typer.Option("6.18", help=f"The Linux version emulated: {' or '.join(KERNELS)}.")


def flush_option():
    """--flush, shared by run, sweep and explore."""
    return typer.Option("ipi", help=f"x86 TLB flushes: {FLUSHES[0]} (lazy CPUs IPI'd when page tables are freed) "
                                    f"or {FLUSHES[1]} (AMD INVLPGB, global ASIDs: no IPIs; needs --kernel 6.18).")


def kernel_model(kernel: str, flush: str) -> None:
    """The --kernel and --flush pair must name a kernel the emulator models."""
    try:
        kernel_for(kernel, flush)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--kernel'/'--flush'") from None


def workload_reads(workload: str, tasks_per_cpu: list[int], fork_rate: float | None = None) -> None:
    """An option the workload does not read is refused, not ignored
    (fork_rate None: not an option of the command)."""
    chosen = WORKLOADS[workload]
    if tasks_per_cpu != [1] and not chosen.uses_tasks_per_cpu:
        readers = ", ".join(w.name for w in WORKLOADS.values() if w.uses_tasks_per_cpu)
        raise typer.BadParameter(f"the {workload} workload has one task per CPU; only {readers} take more",
                                 param_hint="'--tasks-per-cpu'")
    if fork_rate is not None and fork_rate != DEFAULT_FORK_RATE and not chosen.uses_fork_rate:
        raise typer.BadParameter(f"the {workload} workload forks nothing (only fork-exit does)",
                                 param_hint="'--fork-rate'")
