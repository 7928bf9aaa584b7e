"""include/linux/cpumask.h: cpumask_set_cpu, cpumask_clear_cpu and
for_each_cpu, on mm_cpumask (include/linux/mm_types.h): which CPUs may have
TLB state for an mm. The mask is 4 words of 64 bits in the mm's
record; setting and clearing a bit are locked ops (x86 `lock bts`/`btr`)."""
from __future__ import annotations

from percpu.machine.checker import deref, site

SITE_CPUMASK = site("switch_mm_irqs_off: mm_cpumask update")


def _bit(cpu_id: int) -> tuple[int, int]:
    b = cpu_id & 63
    return cpu_id >> 6, (1 << b) if b < 63 else -(1 << 63)  # int64 words


def cpumask_set_cpu(cpu, mm: int, cpu_id: int) -> None:
    word, bit = _bit(cpu_id)
    a_word = cpu.mem.mm_cpumask[deref(cpu, mm, SITE_CPUMASK)][word]
    old = cpu.load(a_word)
    while not old & bit:  # lock bts
        found = cpu.cmpxchg(a_word, old, old | bit)
        if found == old:
            break
        old = found


def cpumask_clear_cpu(cpu, mm: int, cpu_id: int) -> None:
    word, bit = _bit(cpu_id)
    a_word = cpu.mem.mm_cpumask[deref(cpu, mm, SITE_CPUMASK)][word]
    old = cpu.load(a_word)
    while old & bit:  # lock btr
        found = cpu.cmpxchg(a_word, old, old & ~bit)
        if found == old:
            break
        old = found


def mm_cpumask_cpus(cpu, mm: int, site_id: int) -> list[int]:
    """for_each_cpu(cpu, mm_cpumask(mm)): the CPUs whose bit is set."""
    words = cpu.mem.mm_cpumask[deref(cpu, mm, site_id)]
    cpus = []
    for w in range((cpu.ncpus + 63) >> 6):
        value = cpu.load(words[w]) & 0xFFFFFFFFFFFFFFFF
        while value:
            low = value & -value
            cpus.append((w << 6) + low.bit_length() - 1)
            value ^= low
    return cpus
