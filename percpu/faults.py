"""Harness: fault injection, for torture runs (in the spirit of the kernel's
fault-injection framework and rcutorture's stutter and CPU hotplug).

  ipi-delay  an IPI reaches its target late: the target leaves its pending
             calls alone for up to IPI_DELAY_MAX_NS
  stall      a CPU runs with interrupts off for up to STALL_MAX_NS: no IPI
             is serviced, so every CPU waiting on it waits
  hotplug    a CPU goes offline for a while (linux/kernel/cpu.py): its tasks
             migrate, it stops using any lazy mm; then it comes back

Each CPU draws from its own seeded RNG, so a seed names a fault schedule (up
to timing). A worker killed outright is the coordinator's fault to inject
(RunParams.kill_after_s): it must end the run in FAILURE, never a hang.
"""
from __future__ import annotations

import random
import time

from percpu.linux.kernel.cpu import cpu_down, cpu_up
from percpu.machine import tracing

FAULTS = ("ipi-delay", "stall", "hotplug")

IPI_DELAY_PROBABILITY = 0.05  # per batch of pending IPIs
IPI_DELAY_MAX_NS = 200_000
STALL_PROBABILITY = 0.02  # per batch of scheduler quanta (about 1 ms)
STALL_MAX_NS = 5_000_000
HOTPLUG_PROBABILITY = 0.004
OFFLINE_MAX_NS = 20_000_000


class FaultInjector:
    """One CPU's faults: which ones, its RNG, an IPI delivery held back."""

    __slots__ = ("faults", "rng", "ipi_defer_until")

    def __init__(self, faults: frozenset, seed: int, cpu_id: int):
        self.faults = faults
        self.rng = random.Random(seed * 7919 + cpu_id)
        self.ipi_defer_until = 0


def install(cpu, faults: frozenset, seed: int) -> None:
    """Arm `faults` on this CPU: ipi-delay wraps the kernel's IPI handler;
    stall and hotplug are injected between batches (inject_faults)."""
    cpu.fault = FaultInjector(faults, seed, cpu.id)
    if "ipi-delay" in faults:
        handler = cpu.ipi_handler

        def delayed_ipi_handler(cpu):
            if not ipi_delivery_delayed(cpu):
                handler(cpu)  # else seen again at the next interrupt point

        cpu.ipi_handler = delayed_ipi_handler


def ipi_delivery_delayed(cpu) -> bool:
    """True while this CPU must not service its pending IPIs yet."""
    fault = cpu.fault
    now = time.perf_counter_ns()
    if fault.ipi_defer_until:
        if now < fault.ipi_defer_until:
            return True
        fault.ipi_defer_until = 0
        return False
    if fault.rng.random() < IPI_DELAY_PROBABILITY:
        fault.ipi_defer_until = now + fault.rng.randrange(1, IPI_DELAY_MAX_NS)
        cpu.stats.ipis_delayed += 1
        return True
    return False


def stall(cpu, duration_ns: int) -> None:
    """Interrupts off: spin without an interrupt point."""
    cpu.stats.stalls += 1
    traced = cpu.trace_events is not None
    if traced:
        cpu.trace_events.append((tracing.now(), tracing.KERNEL_BEGIN, tracing.KERNEL_STALL, 0))
    end = time.perf_counter_ns() + duration_ns
    while time.perf_counter_ns() < end:
        cpu.cpu_relax()
    if traced:
        cpu.trace_events.append((tracing.now(), tracing.KERNEL_END, 0, 0))


def cpu_down_up(cpu, offline_ns: int) -> None:
    """Offline for offline_ns (or until the run stops), then online again."""
    if not cpu_down(cpu):
        return
    traced = cpu.trace_events is not None
    if traced:  # after the switch to idle and the migrations: it nests in idle's slice
        cpu.trace_events.append((tracing.now(), tracing.KERNEL_BEGIN, tracing.KERNEL_OFFLINE, 0))
    end = time.perf_counter_ns() + offline_ns
    spins = 0
    while time.perf_counter_ns() < end and not cpu.stopping:
        cpu.interrupt_point()
        spins += 1
        if not spins % 64:
            cpu.heartbeat()
            cpu.share_core()
    if traced:
        cpu.trace_events.append((tracing.now(), tracing.KERNEL_END, 0, 0))
    cpu_up(cpu)


def inject_faults(cpu, workload) -> None:
    """Between batches of quanta: maybe stall, maybe go offline for a while."""
    fault = cpu.fault
    rng = fault.rng
    if "stall" in fault.faults and rng.random() < STALL_PROBABILITY:
        stall(cpu, rng.randrange(1, STALL_MAX_NS))
    if "hotplug" in fault.faults and rng.random() < HOTPLUG_PROBABILITY:
        cpu_down_up(cpu, rng.randrange(1, OFFLINE_MAX_NS))
