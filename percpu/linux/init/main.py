"""init/main.c: what holds before any CPU runs (start_kernel; init_mm and
each CPU's cpu_tlbstate are static initialisers in mm/init-mm.c and
arch/x86/mm/init.c): init_mm live with one user and one reference, every CPU
on init_mm and in cpu_online_mask."""
from __future__ import annotations

from percpu.machine.segment import INIT_MM, INIT_MM_SLOT, SharedState


def start_kernel(state: SharedState) -> None:
    state.field(state.mm, "gen")[INIT_MM_SLOT] = INIT_MM >> 32
    state.field(state.mm, "mm_users")[INIT_MM_SLOT] = 1
    state.field(state.mm, "mm_count")[INIT_MM_SLOT] = 1
    state.field(state.cpu, "loaded_mm")[:] = INIT_MM
    state.field(state.control, "online_count")[0] = state.ncpus
    for cpu in range(state.ncpus):
        word, bit = divmod(cpu, 64)
        state.field(state.control, f"cpu_online_mask{word}")[0] |= (1 << bit) if bit < 63 else -(1 << 63)
