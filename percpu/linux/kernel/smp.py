"""kernel/smp.c: synchronous cross-CPU function calls (IPIs), as of Linux
6.12 and 6.18 (smp_call_function_many_cond's order of local and remote
work differs).

One call slot per (target, sender) pair, like the kernel's per-CPU
call_single_data: the sender fills `func` and `arg`, publishes a new `seq`
and bumps the target's `ipi_pending`; the target, at its next interrupt
point, runs every call whose `seq` it has not acknowledged and writes `ack`.
A sender waiting for acks keeps servicing its own IPIs. Only online CPUs
are called (masks are ANDed with cpu_online_mask; a single call to an
offline CPU fails with -ENXIO). A CPU going offline still runs calls that
were in flight (smpcfd_dying_cpu flushes them; stop_machine lets no new one
start in the kernel, while here a sender that read the CPU online just
before may still reach it).
"""
from __future__ import annotations

import time

from percpu.linux.include_.linux.cpumask import cpu_online, online_cpus
from percpu.machine import tracing
from percpu.machine.checker import site

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


def flush_smp_call_function_queue(cpu) -> None:
    """The CPU's IPI handler (__flush_smp_call_function_queue): run every
    call not yet acknowledged, then acknowledge it."""
    cpu.ipi_seen = cpu.load(cpu.a_ipi_pending)
    for sender, (a_seq, a_func, a_arg, a_ack) in enumerate(cpu.ipi_in):
        seq = cpu.load(a_seq)
        if seq != cpu.ipi_in_acked[sender]:
            # taken before it runs: a handler that waits services IPIs
            # itself and must not run this call again
            cpu.ipi_in_acked[sender] = seq
            cpu.stats.ipis_received += 1
            func = cpu.load(a_func)
            if cpu.trace_events is not None:
                cpu.trace_events.append((tracing.now(), tracing.KERNEL_BEGIN, tracing.KERNEL_IPI, func))
            IPI_FUNCTIONS[func](cpu, cpu.load(a_arg))
            if cpu.trace_events is not None:
                cpu.trace_events.append((tracing.now(), tracing.KERNEL_END, 0, 0))
            cpu.store(a_ack, seq)


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
        csd_lock_wait(cpu, target, previous, func)
    seq = previous + 1
    cpu.ipi_out_seq[target] = seq
    cpu.store(a_func, func.ipi_id)
    cpu.store(a_arg, arg)
    cpu.store(a_seq, seq)  # release: func and arg are visible before seq
    cpu.fetch_add(cpu.mem.cpu_ipi_pending[target], 1)
    cpu.stats.ipis_sent += 1
    if cpu.trace_events is not None:
        cpu.trace_events.append((tracing.now(), tracing.IPI_SENT, target, func.ipi_id))
    return seq


def csd_lock_wait(cpu, target: int, seq: int, func) -> None:
    """Wait until `target` has acknowledged call `seq` (a later ack covers it)."""
    a_ack = cpu.ipi_out[target][3]
    start = time.perf_counter_ns()
    cpu.spin_until(
        lambda: cpu.load(a_ack) >= seq,
        timeout_ns=cpu.ipi_timeout_ns,
        timeout_site=func.timeout_site,
        target=target,
    )
    cpu.stats.wait_ns += time.perf_counter_ns() - start


def smp_call_function_single(cpu, target: int, func, arg: int) -> bool:
    """Run func(target_cpu, arg) on `target` and wait for it to finish.
    False (-ENXIO) when `target` is offline: nothing ran."""
    if target == cpu.id:
        func(cpu, arg)
        return True
    if not cpu_online(cpu, target):
        return False
    csd_lock_wait(cpu, target, _send(cpu, target, func, arg), func)
    return True


def on_each_cpu_cond_mask(cpu, cond, targets, func, arg: int) -> None:
    """smp_call_function_many_cond with SCF_RUN_LOCAL | SCF_WAIT: run func
    on every online CPU in `targets` for which cond(cpu, other, arg) holds
    (cond None: all), this one included, locally, and wait for them: the
    remote calls are sent first, then the local one runs, then the acks are
    collected. 6.12 evaluates the local cond first; 6.18 after the sends."""
    local = cpu.id in targets
    later = cpu.kernel.local_cond_after_remote
    run_local = local and not later and (cond is None or cond(cpu, cpu.id, arg))
    remote = [t for t in targets if t != cpu.id]
    sent = []
    if remote:
        online = set(online_cpus(cpu))  # cpumask_and(mask, cpu_online_mask)
        for t in remote:
            if t in online and (cond is None or cond(cpu, t, arg)):
                sent.append((t, _send(cpu, t, func, arg)))
    if local and later:
        run_local = cond is None or cond(cpu, cpu.id, arg)
    if run_local:
        func(cpu, arg)
    for target, seq in sent:
        csd_lock_wait(cpu, target, seq, func)


def on_each_cpu_mask(cpu, targets, func, arg: int) -> None:
    on_each_cpu_cond_mask(cpu, None, targets, func, arg)
