"""Harness: the checker. What it can find (kinds), where in the emulated
kernel it was found (sites), how a CPU records it (a few stores into the
segment's violation table), the checked dereference every mm pointer goes
through, the hardware's page-table walk, and the end-of-run check of the
state the CPUs left.

Two lifetimes are checked apart. The mm_struct (and its pgd, freed with it
by __mmdrop) is dereferenced by kernel code: a stale pointer dereferenced
is a `use-after-free`. The page tables below the pgd are freed by
exit_mmap, after the TLB flush that comes with freeing them: a CPU whose
hardware may still walk them (it has the mm loaded and its paging-structure
caches were not flushed since) is a `page-table-use-after-free`, and so is
one walking a pgd freed with its mm_struct. A lazy CPU's probe is such a
walk: the hardware may walk the tables behind CR3 at any time.

Kinds and sites are small integers; both registries are filled at import
time, before the workers fork, so every CPU agrees on the numbers.
"""
from __future__ import annotations

import time

from percpu.machine import tracing
from percpu.machine.segment import (INIT_MM, INIT_MM_SLOT, LOADED_MM_SWITCHING, NULL, SLOT_MASK, VIOLATION_CAPACITY,
                                    VIOLATION_FIELDS, SharedState)

USE_AFTER_FREE = 1  # a stale mm reference was dereferenced
FREED_WHILE_LOADED = 2  # __mmdrop freed an mm some CPU still had as loaded_mm
REFCOUNT_UNDERFLOW = 3  # mm_users or mm_count went below zero
IPI_TIMEOUT = 4  # a synchronous IPI was not acknowledged (the CSD-lock warning)
LEAKED_MM = 5  # found by the end-of-run check: an mm never freed
BAD_END_STATE = 6  # found by the end-of-run check: counts or pointers left behind
STALE_TLB = 7  # a CPU ran an mm's user code with a TLB older than a completed flush
PAGE_TABLE_USE_AFTER_FREE = 8  # a CPU's hardware may walk page tables already freed
# Not a violation: a WARN_ON of the emulated kernel fired (the kernel's own
# assertion; it says a scheme breaks an invariant the kernel expects, while
# the verdict is about memory safety). Recorded and reported beside them.
WARN = 9

KIND_NAMES = {
    USE_AFTER_FREE: "use-after-free",
    FREED_WHILE_LOADED: "freed-while-loaded",
    REFCOUNT_UNDERFLOW: "refcount-underflow",
    IPI_TIMEOUT: "ipi-timeout",
    LEAKED_MM: "leaked-mm",
    BAD_END_STATE: "bad-end-state",
    STALE_TLB: "stale-tlb",
    PAGE_TABLE_USE_AFTER_FREE: "page-table-use-after-free",
    WARN: "warn",
}

_SITES: list[str] = ["?"]


def site(description: str) -> int:
    """Register a code path that can observe a violation; returns its id."""
    if description in _SITES:
        return _SITES.index(description)
    _SITES.append(description)
    return len(_SITES) - 1


def site_name(site_id: int) -> str:
    return _SITES[site_id] if 0 <= site_id < len(_SITES) else f"site {site_id}"


# --- on a CPU, while running ---------------------------------------------------
def violation(cpu, kind: int, mm: int, found_gen: int, site_id: int, other: int = 0) -> None:
    """Record a violation (or a WARN) in the shared table, once per kind, mm
    and site on a CPU: a lazy CPU would report the same probe forever."""
    key = (kind, mm, site_id)
    if key in cpu.reported:
        return
    cpu.reported.add(key)
    if kind != WARN:
        cpu.stats.violations += 1
        cpu.fetch_add(cpu.mem.violations, 1)
    if cpu.trace_events is not None:
        cpu.trace_events.append((tracing.now(), tracing.VIOLATION, kind, mm & SLOT_MASK))
    index = cpu.fetch_add(cpu.mem.records, 1)
    if index < VIOLATION_CAPACITY:
        base = cpu.mem.violation_base + index * cpu.mem.violation_stride
        values = (kind, cpu.id, mm & SLOT_MASK, mm >> 32, found_gen, site_id, time.perf_counter_ns(), other)
        for i, value in enumerate(values):
            cpu.store(base + 8 * i, value)


def deref(cpu, mm: int, site_id: int) -> int:
    """Return the slot of `mm`, recording a use-after-free if it is stale."""
    slot = mm & SLOT_MASK
    gen = cpu.load(cpu.mem.mm_gen[slot])
    if gen != mm >> 32:
        violation(cpu, USE_AFTER_FREE, mm, gen, site_id)
    return slot


def use_after_free(cpu, mm: int, site_id: int) -> None:
    """For hot paths that inline deref's generation check."""
    violation(cpu, USE_AFTER_FREE, mm, cpu.load(cpu.mem.mm_gen[mm & SLOT_MASK]), site_id)


def warn(cpu, site_id: int, mm: int = NULL) -> None:
    """WARN_ON(...) / WARN_ON_ONCE(...) of the emulated kernel fired."""
    violation(cpu, WARN, mm, 0, site_id)


def probe(cpu, site_id: int) -> None:
    """A lazy CPU's hardware may walk the page tables behind CR3 at any time:
    its pgd (freed with the mm_struct), and the tables below it unless its
    paging-structure caches were flushed since they were freed."""
    mm = cpu.loaded_mm
    if mm != INIT_MM and mm != NULL and mm != LOADED_MM_SWITCHING:
        cpu.stats.probes += 1
        walk_page_tables(cpu, mm, site_id)


def walk_page_tables(cpu, mm: int, site_id: int) -> None:
    mem, slot = cpu.mem, mm & SLOT_MASK
    gen = cpu.load(mem.mm_gen[slot])
    if gen != mm >> 32:
        violation(cpu, PAGE_TABLE_USE_AFTER_FREE, mm, gen, site_id)
        return
    freed = cpu.load(mem.mm_freed_tables_gen[slot])
    if freed and tlb_gen_seen(cpu, slot) < freed:
        violation(cpu, PAGE_TABLE_USE_AFTER_FREE, mm, gen, site_id)


def tlb_gen_seen(cpu, slot: int) -> int:
    """The newest flush this CPU's TLB (and paging-structure caches) for the
    mm in `slot` has taken: its own (cpu_tlbstate's tlb_gen, when the mm is
    loaded), or a broadcast one (INVLPGB reaches every CPU)."""
    seen = cpu.loaded_tlb_gen
    if cpu.kernel.invlpgb:
        seen = max(seen, cpu.load(cpu.mem.mm_invlpgb_gen[slot]))
    return seen


# --- on the coordinator, after the run -------------------------------------------
def recorded_violations(state: SharedState) -> tuple[int, list[dict]]:
    """(how many violations were recorded, the first VIOLATION_CAPACITY
    records: violations and kernel WARNs, told apart by their kind)."""
    total = int(state.field(state.control, "violations")[0])
    records = int(state.field(state.control, "records")[0])
    columns = {f: state.field(state.violation, f) for f in VIOLATION_FIELDS}
    found = []
    for i in range(min(records, VIOLATION_CAPACITY)):
        v = {f: int(columns[f][i]) for f in VIOLATION_FIELDS}
        found.append(
            {
                "kind": KIND_NAMES.get(v["kind"], str(v["kind"])),
                "cpu": v["cpu"],
                "mm_slot": v["slot"],
                "ref_gen": v["ref_gen"],
                "found_gen": v["found_gen"],
                "site": site_name(v["site"]),
                "other_cpu": v["other"],
            }
        )
    return total, found


def _problem(kind: int, message: str, **fields) -> dict:
    return {"kind": KIND_NAMES[kind], "site": "end-of-run check", "message": message, **fields}


def check_end_state(state: SharedState) -> list[dict]:
    """Problems left after every CPU went offline; empty when all is clean."""
    problems = []
    mm = {f: state.field(state.mm, f) for f in ("gen", "mm_users", "mm_count")}
    for slot in range(state.mm.count):
        gen, users, count = (int(mm[f][slot]) for f in ("gen", "mm_users", "mm_count"))
        if slot == INIT_MM_SLOT:
            expected_count = 1
            if (gen, users, count) != (1, 1, expected_count):
                problems.append(_problem(BAD_END_STATE, f"init_mm: gen={gen} mm_users={users} mm_count={count}, "
                                         f"expected gen=1 mm_users=1 mm_count={expected_count}", mm_slot=slot))
        elif gen % 2 == 1:
            problems.append(_problem(LEAKED_MM, f"mm slot {slot} (gen {gen}) never freed: "
                                     f"mm_users={users} mm_count={count}", mm_slot=slot))
        elif users != 0 or count != 0:
            problems.append(_problem(BAD_END_STATE, f"freed mm slot {slot} has mm_users={users} mm_count={count}",
                                     mm_slot=slot))
    cpu = {f: state.field(state.cpu, f) for f in ("loaded_mm", "hazard", "lazy_mm", "mm_to_mmdrop")}
    for c in range(state.ncpus):
        if int(cpu["loaded_mm"][c]) != INIT_MM:
            problems.append(_problem(BAD_END_STATE, f"CPU {c} went offline with loaded_mm {_ref(int(cpu['loaded_mm'][c]))}",
                                     cpu=c))
        for f in ("hazard", "lazy_mm", "mm_to_mmdrop"):
            if int(cpu[f][c]) != NULL:
                problems.append(_problem(BAD_END_STATE, f"CPU {c} went offline with {f} {_ref(int(cpu[f][c]))}", cpu=c))
    task = {f: state.field(state.task, f) for f in ("mm", "active_mm")}
    for t in range(state.task.count):
        if int(task["mm"][t]) != NULL:
            problems.append(_problem(BAD_END_STATE, f"task {t} still has mm {_ref(int(task['mm'][t]))}"))
        if int(task["active_mm"][t]) not in (NULL, INIT_MM):
            problems.append(_problem(BAD_END_STATE, f"task {t} still has active_mm {_ref(int(task['active_mm'][t]))}"))
    return problems


def final_state(state: SharedState) -> dict:
    """The raw end state, for readers (and tests) who check it themselves."""
    mm = {f: state.field(state.mm, f) for f in ("gen", "mm_users", "mm_count")}
    cpu = {f: state.field(state.cpu, f) for f in ("loaded_mm", "is_lazy", "hazard", "lazy_mm", "mm_to_mmdrop")}
    return {
        "mm": [{"slot": s, **{f: int(mm[f][s]) for f in mm}} for s in range(state.mm.count)],
        "cpus": [{"cpu": c, **{f: int(cpu[f][c]) for f in cpu}} for c in range(state.ncpus)],
    }


def _ref(ref: int) -> str:
    return "NULL" if ref == NULL else f"slot {ref & 0xFFFFFFFF} gen {ref >> 32}"
