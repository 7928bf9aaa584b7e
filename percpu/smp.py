"""IPIs: synchronous cross-CPU function calls (kernel/smp.c).

One call slot per (target, sender) pair, like the kernel's per-CPU
call_single_data: the sender fills `func` and `arg`, publishes a new `seq`
and bumps the target's `ipi_pending`; the target, at its next interrupt
point, runs every call whose `seq` it has not acknowledged and writes `ack`.
A sender waiting for acks keeps servicing its own IPIs.
"""
from __future__ import annotations

import time

from percpu import trace
from percpu.violations import site

IPI_FUNCTIONS: list = []
IPI_NAMES: list[str] = []


def ipi_function(func):
    """Register a function that may run on another CPU by IPI. Registration
    happens at import, before workers fork, so ids agree across CPUs."""
    func.ipi_id = len(IPI_FUNCTIONS)
    IPI_FUNCTIONS.append(func)
    IPI_NAMES.append(func.__name__)
    func.timeout_site = site(f"{func.__name__}: IPI not acknowledged")
    return func


def _send(cpu, target: int, func, arg: int) -> int:
    a_seq, a_func, a_arg, a_ack = cpu.ipi_out[target]
    while True:
        previous = cpu.ipi_out_seq[target]
        if cpu.load(a_ack) >= previous:
            break
        # csd_lock_wait: a call to this target is still in flight (this send
        # comes from a handler run while waiting for it); never overwrite it.
        # Waiting services IPIs, whose handlers may send to this target too:
        # look again before taking the slot.
        _wait(cpu, target, previous, func)
    seq = previous + 1
    cpu.ipi_out_seq[target] = seq
    cpu.store(a_func, func.ipi_id)
    cpu.store(a_arg, arg)
    cpu.store(a_seq, seq)  # release: func and arg are visible before seq
    cpu.fetch_add(cpu.cpu_ipi_pending[target], 1)
    cpu.ipis_sent += 1
    if cpu.trace_events is not None:
        cpu.trace_events.append((trace.now(), trace.IPI_SENT, target, func.ipi_id))
    return seq


def _wait(cpu, target: int, seq: int, func) -> None:
    a_ack = cpu.ipi_out[target][3]
    load = cpu.load
    start = time.perf_counter_ns()
    cpu.spin_until(
        lambda: load(a_ack) >= seq,  # a nested call's later ack also covers this one
        timeout_ns=cpu.ipi_timeout_ns,
        timeout_site=func.timeout_site,
        target=target,
    )
    cpu.wait_ns += time.perf_counter_ns() - start


def smp_call_function_single(cpu, target: int, func, arg: int) -> None:
    """Run func(target_cpu, arg) on `target` and wait for it to finish."""
    if target == cpu.id:
        func(cpu, arg)
        return
    _wait(cpu, target, _send(cpu, target, func, arg), func)


def on_each_cpu_mask(cpu, targets, func, arg: int) -> None:
    """Run func on every CPU in `targets` (this one included, locally) and
    wait for all of them: send everything first, then collect the acks."""
    sent = [(t, _send(cpu, t, func, arg)) for t in targets if t != cpu.id]
    if cpu.id in targets:
        func(cpu, arg)
    for target, seq in sent:
        _wait(cpu, target, seq, func)
