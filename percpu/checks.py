"""The verdict's evidence: violations recorded during the run, and the
end-of-run state check (every mm freed, counts at zero, no CPU or task
pointing at anything but init_mm).
"""
from __future__ import annotations

from percpu.state import INIT_MM, INIT_MM_SLOT, NULL, VIOLATION_CAPACITY, VIOLATION_FIELDS, SharedState
from percpu.violations import BAD_END_STATE, KIND_NAMES, LEAKED_MM, site_name


def recorded_violations(state: SharedState) -> tuple[int, list[dict]]:
    """(how many were recorded, the first VIOLATION_CAPACITY of them)."""
    total = int(state.field(state.control, "violations")[0])
    columns = {f: state.field(state.violation, f) for f in VIOLATION_FIELDS}
    found = []
    for i in range(min(total, VIOLATION_CAPACITY)):
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
