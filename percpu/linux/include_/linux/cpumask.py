"""include/linux/cpumask.h: cpumask_set_cpu, cpumask_clear_cpu,
cpumask_test_cpu, cpumask_any_but and for_each_cpu on mm_cpumask
(include/linux/mm_types.h), and cpu_online_mask (set_cpu_online,
cpu_online). A mask is 4 words of 64 bits; setting and clearing a bit are
locked ops (x86 `lock bts`/`lock btr`: set_bit, clear_bit), testing it a load.
"""
from __future__ import annotations

from percpu.machine.checker import deref, site

SITE_CPUMASK = site("mm_cpumask(mm): mm_struct dereference")
BIT_63 = -(1 << 63)  # the words are int64
# compiled, an int64 (a bare `1 << b` in C shifts a 32-bit int: CPUs >= 32 lost their bits)
ONE = 1


def _word(cpu_id: int) -> int:
    return cpu_id >> 6


def _bit(cpu_id: int) -> int:
    b = cpu_id & 63
    return (ONE << b) if b < 63 else BIT_63


def _words(cpu, mm: int, site_id: int = SITE_CPUMASK) -> list[int]:
    return cpu.mem.mm_cpumask[deref(cpu, mm, site_id)]


def cpumask_set_cpu(cpu, mm: int, cpu_id: int) -> None:
    cpu.fetch_or(_words(cpu, mm)[_word(cpu_id)], _bit(cpu_id))  # set_bit: lock bts


def cpumask_clear_cpu(cpu, mm: int, cpu_id: int) -> None:
    cpu.fetch_and(_words(cpu, mm)[_word(cpu_id)], ~_bit(cpu_id))  # clear_bit: lock btr


def cpumask_test_cpu(cpu, mm: int, cpu_id: int) -> bool:
    return bool(cpu.load(_words(cpu, mm)[_word(cpu_id)]) & _bit(cpu_id))


def _cpus(cpu, words: list[int]) -> list[int]:
    cpus = []
    for w in range((cpu.ncpus + 63) >> 6):
        value = cpu.load(words[w]) & 0xFFFFFFFFFFFFFFFF
        while value:
            low = value & -value
            cpus.append((w << 6) + low.bit_length() - 1)
            value ^= low
    return cpus


def mm_cpumask_cpus(cpu, mm: int, site_id: int = SITE_CPUMASK) -> list[int]:
    """for_each_cpu(cpu, mm_cpumask(mm)): the CPUs whose bit is set."""
    return _cpus(cpu, _words(cpu, mm, site_id))


def cpumask_any_but(cpu, mm: int, cpu_id: int) -> bool:
    """cpumask_any_but(mm_cpumask(mm), cpu) < nr_cpu_ids: another CPU is set."""
    return any(c != cpu_id for c in mm_cpumask_cpus(cpu, mm))


def online_cpus(cpu) -> list[int]:
    """for_each_online_cpu: the CPUs set in cpu_online_mask."""
    return _cpus(cpu, cpu.mem.cpu_online_mask)


def cpu_online(cpu, cpu_id: int) -> bool:
    return bool(cpu.load(cpu.mem.cpu_online_mask[_word(cpu_id)]) & _bit(cpu_id))


def set_cpu_online(cpu, cpu_id: int, online: bool) -> None:
    a_word = cpu.mem.cpu_online_mask[_word(cpu_id)]
    if online:
        cpu.fetch_or(a_word, _bit(cpu_id))
    else:
        cpu.fetch_and(a_word, ~_bit(cpu_id))
