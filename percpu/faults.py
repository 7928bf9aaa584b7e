"""Fault injection, for torture runs (in the spirit of the kernel's
fault-injection framework and rcutorture's stutter and CPU hotplug).

  ipi-delay  an IPI reaches its target late: the target leaves its pending
             calls alone for up to IPI_DELAY_MAX_NS
  stall      a CPU runs with interrupts off for up to STALL_MAX_NS: no IPI
             is serviced, so every CPU waiting on it waits
  hotplug    a CPU goes offline for a while (percpu/hotplug.py): its tasks
             migrate, it stops using any lazy mm; then it comes back

Each CPU draws from its own seeded RNG, so a seed names a fault schedule (up
to timing). A worker killed outright is the coordinator's fault to inject
(RunParams.kill_after_s): it must end the run in FAILURE, never a hang.
"""
from __future__ import annotations

import time

from percpu import trace

FAULTS = ("ipi-delay", "stall", "hotplug")

IPI_DELAY_PROBABILITY = 0.05  # per batch of pending IPIs
IPI_DELAY_MAX_NS = 200_000
STALL_PROBABILITY = 0.02  # per batch of scheduler quanta (about 1 ms)
STALL_MAX_NS = 5_000_000
HOTPLUG_PROBABILITY = 0.004
OFFLINE_MAX_NS = 20_000_000


def ipi_delivery_delayed(cpu) -> bool:
    """True while this CPU must not service its pending IPIs yet."""
    if "ipi-delay" not in cpu.faults:
        return False
    now = time.perf_counter_ns()
    if cpu.ipi_defer_until:
        if now < cpu.ipi_defer_until:
            return True
        cpu.ipi_defer_until = 0
        return False
    if cpu.rng.random() < IPI_DELAY_PROBABILITY:
        cpu.ipi_defer_until = now + cpu.rng.randrange(1, IPI_DELAY_MAX_NS)
        cpu.ipis_delayed += 1
        return True
    return False


def stall(cpu, duration_ns: int) -> None:
    """Interrupts off: spin without an interrupt point."""
    cpu.stalls += 1
    traced = cpu.trace_events is not None
    if traced:
        cpu.trace_events.append((trace.now(), trace.KERNEL_BEGIN, trace.KERNEL_STALL, 0))
    end = time.perf_counter_ns() + duration_ns
    while time.perf_counter_ns() < end:
        cpu.cpu_relax()
    if traced:
        cpu.trace_events.append((trace.now(), trace.KERNEL_END, 0, 0))


def inject_faults(cpu, workload) -> None:
    """Between batches of quanta: maybe stall, maybe go offline for a while."""
    from percpu.hotplug import cpu_down_up  # hotplug uses the scheduler, which uses this module

    rng = cpu.rng
    if "stall" in cpu.faults and rng.random() < STALL_PROBABILITY:
        stall(cpu, rng.randrange(1, STALL_MAX_NS))
    if "hotplug" in cpu.faults and rng.random() < HOTPLUG_PROBABILITY:
        cpu_down_up(cpu, rng.randrange(1, OFFLINE_MAX_NS))
