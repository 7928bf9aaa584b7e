"""Scaling results: run documents grouped into cells (workload, tasks per
CPU, CPUs, strategy), their medians and spreads over repeats, the speedup
over refcount, the warnings, and the comparison of two result files.

Pure functions on JSON documents, shared by `percpu sweep` and
`percpu compare` (no running, no printing; `output_console` only makes the
console they print on).

Definitions (the README's "percpu sweep and percpu compare" says the same):
- throughput of a run: `rate.total_ops_per_s`;
- a cell's throughput: the median over its repeats; its spread: max - min;
- speedup of S over refcount in repeat i: ops(S, i) / ops(refcount, i) - 1.
  A sweep interleaves its repeats (repeat i of every strategy runs within
  seconds), so pairing by repeat cancels slow drifts of a shared machine. The
  cell's speedup is the median of those; its spread is their max - min.
"""
from __future__ import annotations

import json
import math
import os
import statistics

from rich.console import Console

from percpu.strategies import STRATEGIES

SWEEP_SCHEMA = "percpu.sweep/1"
RUN_SCHEMA = "percpu.run/1"
BASELINE = "refcount"
UNSTABLE_SPREAD = 0.10  # pyperf warns when the std dev exceeds 10% of the mean; we use the range

KEY_FIELDS = ("workload", "tasks_per_cpu", "cpus", "strategy")


def cell_key(cell_or_params: dict) -> tuple:
    return tuple(cell_or_params[f] for f in KEY_FIELDS)


def summarize_runs(runs: list[dict]) -> list[dict]:
    """Cells from run documents in the order they ran: the k-th document of a
    (workload, tasks_per_cpu, cpus, strategy) is that cell's repeat k."""
    grouped: dict[tuple, list[dict]] = {}
    for doc in runs:
        grouped.setdefault(cell_key(doc["parameters"]), []).append(doc)
    cells = {}
    for key, docs in grouped.items():
        ops = [float(d["rate"]["total_ops_per_s"]) for d in docs]
        median = statistics.median(ops)
        cells[key] = {
            **dict(zip(KEY_FIELDS, key)),
            "repeats": len(docs),
            "failed": sum(d["verdict"] != "SUCCESS" for d in docs),
            "oversubscribed": any(d["machine"]["oversubscribed"] for d in docs),
            "ops_per_s": ops,
            "ops_per_s_median": median,
            "ops_per_s_min": min(ops),
            "ops_per_s_max": max(ops),
            "spread_pct": 100.0 * (max(ops) - min(ops)) / median if median else None,
        }
    for key, cell in cells.items():
        _add_speedup(cell, cells.get(key[:3] + (BASELINE,)))
    for cell in cells.values():
        cell["unstable"] = cell["spread_pct"] is None or cell["spread_pct"] > 100 * UNSTABLE_SPREAD
    return sorted(cells.values(), key=_sort_key)


def _add_speedup(cell: dict, baseline: dict | None) -> None:
    cell["speedup_pct"] = None
    for end in ("median", "min", "max"):
        cell[f"speedup_pct_{end}"] = None
    if baseline is None or cell["strategy"] == BASELINE:
        return
    pairs = zip(cell["ops_per_s"], baseline["ops_per_s"])  # repeat i with repeat i
    speedups = [100.0 * (ops / base - 1.0) for ops, base in pairs if base > 0]
    if not speedups:
        return
    cell["speedup_pct"] = speedups
    cell["speedup_pct_median"] = statistics.median(speedups)
    cell["speedup_pct_min"] = min(speedups)
    cell["speedup_pct_max"] = max(speedups)


def _sort_key(cell: dict):
    order = list(STRATEGIES)  # their natural order: refcount first
    rank = order.index(cell["strategy"]) if cell["strategy"] in order else len(order)
    return (cell["workload"], cell["tasks_per_cpu"], cell["cpus"], rank, cell["strategy"])


# -- the table ---------------------------------------------------------------

def format_speedup(cell: dict | None) -> str:
    """'+12.3% ±4.5': median speedup, and half the range of the per-repeat
    speedups in percentage points (omitted with one repeat). FAIL when a
    repeat failed; '!' marks an unstable cell."""
    if cell is None or cell["speedup_pct_median"] is None:
        return "-"
    if cell["failed"]:
        return f"FAIL ({cell['failed']}/{cell['repeats']})"
    text = f"{cell['speedup_pct_median']:+.1f}%"
    if len(cell["speedup_pct"]) > 1:
        text += f" ±{(cell['speedup_pct_max'] - cell['speedup_pct_min']) / 2:.1f}"
    if cell["unstable"]:
        text += " !"
    return text


def format_ops(cell: dict | None) -> str:
    if cell is None:
        return "-"
    if cell["failed"]:
        return f"FAIL ({cell['failed']}/{cell['repeats']})"
    text = f"{cell['ops_per_s_median']:,.0f}"
    if cell["repeats"] > 1:
        text += f" ±{cell['spread_pct'] / 2:.1f}%"
    if cell["unstable"]:
        text += " !"
    return text


def table_groups(cells: list[dict]) -> list[tuple[str, int]]:
    """(workload, tasks_per_cpu) pairs present, in order: one table each."""
    return sorted({(c["workload"], c["tasks_per_cpu"]) for c in cells})


def speedup_table(cells: list[dict], workload: str, tasks_per_cpu: int) -> tuple[list[str], list[list[str]]]:
    """The published table's shape: rows are CPU counts, columns strategies,
    cells the speedup over refcount; the first column is refcount's own
    throughput, the baseline."""
    mine = [c for c in cells if c["workload"] == workload and c["tasks_per_cpu"] == tasks_per_cpu]
    by_key = {(c["cpus"], c["strategy"]): c for c in mine}
    strategies = [s for s in _ordered_strategies(mine) if s != BASELINE]
    header = ["CPUs", f"{BASELINE} ops/s"] + strategies
    rows = []
    for cpus in sorted({c["cpus"] for c in mine}):
        row = [str(cpus), format_ops(by_key.get((cpus, BASELINE)))]
        row += [format_speedup(by_key.get((cpus, s))) for s in strategies]
        rows.append(row)
    return header, rows


def _ordered_strategies(cells: list[dict]) -> list[str]:
    seen: list[str] = []
    for c in sorted(cells, key=_sort_key):
        if c["strategy"] not in seen:
            seen.append(c["strategy"])
    return seen


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# -- warnings ----------------------------------------------------------------

def _where(cell: dict) -> str:
    return f"{cell['strategy']} cpus={cell['cpus']} tasks-per-cpu={cell['tasks_per_cpu']}"


def warnings_for(cells: list[dict], usable_cores: int) -> list[str]:
    """pyperf-style warnings: unstable cells, oversubscribed CPUs, failures."""
    out = []
    unstable = [c for c in cells if c["unstable"] and c["repeats"] > 1]
    if unstable:
        out.append("WARNING: the result may be unstable")
        for c in unstable:
            out.append(f"* {_where(c)}: the spread over {c['repeats']} repeats "
                       f"({c['ops_per_s_max'] - c['ops_per_s_min']:,.0f} ops/s) is {c['spread_pct']:.1f}% "
                       f"of the median ({c['ops_per_s_median']:,.0f} ops/s)")
        out.append("Try more --repeat, a longer --duration, or a quieter machine.")
    if any(c["repeats"] == 1 for c in cells):
        out.append("WARNING: one repeat: no spread, so stability is unknown (use --repeat 3 or more)")
    over = sorted({c["cpus"] for c in cells if c["oversubscribed"]})
    if over:
        out.append(f"WARNING: CPUs were oversubscribed: {', '.join(map(str, over))} emulated CPUs on "
                   f"{usable_cores} usable cores; several share a core, so those rows measure the host's "
                   f"scheduler as much as the strategy")
    failed = [c for c in cells if c["failed"]]
    for c in failed:
        out.append(f"WARNING: {_where(c)}: {c['failed']} of {c['repeats']} repeats FAILED (see the run files)")
    return out


# -- loading and comparing result files --------------------------------------

class ResultFileError(ValueError):
    """A result file that cannot be read as a run or a sweep (one line)."""


def load_result(path: str) -> dict:
    """A run document, or a sweep summary (a file, or a sweep's directory),
    as {"kind", "path", "cells", "machine"}; any file that is not one, or
    is one with a field of the wrong kind, is a ResultFileError."""
    if os.path.isdir(path):
        path = os.path.join(path, "summary.json")
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ResultFileError(f"{path}: not a percpu result (nested too deeply)") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    try:
        if schema == RUN_SCHEMA:
            _check_run(doc)
            return {"kind": "run", "path": path, "cells": summarize_runs([doc]), "machine": doc["machine"]}
        if schema == SWEEP_SCHEMA:
            _check(doc, "cells", list)
            _check(doc, "machine", dict)
            for i, cell in enumerate(doc["cells"]):
                try:
                    _check_cell(cell)
                except _WrongField as exc:
                    raise _WrongField(f"cell {i} holding {exc}") from None
            return {"kind": "sweep", "path": path, "cells": doc["cells"], "machine": doc["machine"]}
    except KeyError as exc:
        raise ResultFileError(f"{path}: a {schema} document missing {exc}") from None
    except _WrongField as exc:
        raise ResultFileError(f"{path}: a {schema} document with {exc}") from None
    raise ResultFileError(f"{path}: not a percpu result (schema {schema!r:.60}; expected {RUN_SCHEMA} or "
                          f"{SWEEP_SCHEMA})")


class _WrongField(Exception):
    pass


_KINDS = {str: "a string", dict: "an object", list: "a list", int: "a positive integer", float: "a number >= 0",
          bool: "true or false"}


def _check(record, name: str, kind: type):
    """record[name], which must be of `kind` (int: a positive integer;
    float: a finite number >= 0); KeyError when missing, _WrongField when not."""
    if not isinstance(record, dict):
        raise _WrongField(f"{_short(record)} where an object with {name!r} belongs")
    return _check_value(record[name], name, kind)


def _check_value(value, name: str, kind: type):
    if kind is int:
        good = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    elif kind is float:
        good = isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value) and value >= 0
    else:
        good = isinstance(value, kind)
    if not good:
        raise _WrongField(f"{name!r} = {_short(value)}, not {_KINDS[kind]}")
    return value


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer no float can hold
        return False


def _short(value) -> str:
    text = json.dumps(value)  # NaN and Infinity as JSON would have them
    return text if len(text) <= 40 else text[:37] + "..."


def _check_key(record: dict) -> None:
    for name, kind in (("workload", str), ("tasks_per_cpu", int), ("cpus", int), ("strategy", str)):
        _check(record, name, kind)


def _check_run(doc: dict) -> None:
    _check_key(_check(doc, "parameters", dict))
    _check(_check(doc, "rate", dict), "total_ops_per_s", float)
    _check(doc, "verdict", str)
    _check(_check(doc, "machine", dict), "oversubscribed", bool)


def _check_cell(cell) -> None:
    _check_key(cell)
    ops = _check(cell, "ops_per_s", list)
    if not ops:
        raise _WrongField("'ops_per_s' = [], not one number per repeat")
    for i, value in enumerate(ops):
        _check_value(value, f"ops_per_s[{i}]", float)
    if "failed" in cell and cell["failed"] != 0:  # a sweep's count of failed repeats
        _check(cell, "failed", int)


def compare_cells(a_cells: list[dict], b_cells: list[dict]) -> tuple[list[dict], int, int]:
    """Per cell present in both: B's median throughput over A's, and whether
    the two ranges over repeats are disjoint (None: a side has one repeat, so
    there is no spread to judge by). Cells match on (workload, tasks per
    CPU, CPUs, strategy); then, where one cell of A and one of B are left
    with the same (workload, tasks per CPU, CPUs), those two (two
    strategies' runs or sweeps, compared). Returns (rows, only in A, only in B)."""
    a = {cell_key(c): c for c in a_cells}
    b = {cell_key(c): c for c in b_cells}
    pairs = [(a[k], b[k]) for k in a.keys() & b.keys()]
    left_a, left_b = {}, {}
    for left, cells, other in ((left_a, a, b), (left_b, b, a)):
        for key, cell in cells.items():
            if key not in other:
                left.setdefault(key[:3], []).append(cell)
    for where in left_a.keys() & left_b.keys():
        if len(left_a[where]) == len(left_b[where]) == 1:
            pairs.append((left_a.pop(where)[0], left_b.pop(where)[0]))
    rows = [_compare_pair(ca, cb) for ca, cb in sorted(pairs, key=lambda pair: _sort_key(pair[0]))]
    return rows, sum(map(len, left_a.values())), sum(map(len, left_b.values()))


def _compare_pair(ca: dict, cb: dict) -> dict:
    if min(len(ca["ops_per_s"]), len(cb["ops_per_s"])) < 2:
        beyond = None
    else:
        beyond = min(cb["ops_per_s"]) > max(ca["ops_per_s"]) or max(cb["ops_per_s"]) < min(ca["ops_per_s"])
    a_med, b_med = statistics.median(ca["ops_per_s"]), statistics.median(cb["ops_per_s"])
    return {
        **dict(zip(KEY_FIELDS, cell_key(ca))),
        "b_strategy": cb["strategy"],
        "a_ops_per_s": a_med,
        "b_ops_per_s": b_med,
        "ratio": b_med / a_med if a_med else None,
        "beyond_spread": beyond,
        "failed": bool(ca.get("failed") or cb.get("failed")),
    }


def describe_machine(machine: dict) -> str:
    cores = machine.get("usable_core_count")
    if not isinstance(cores, int):
        usable = machine.get("usable_cores")
        cores = len(usable) if isinstance(usable, list) and usable else "?"
    text = lambda name, default="?": str(machine.get(name) or default)[:80]  # noqa: E731
    return (f"{text('cpu_model', 'unknown CPU')}, {cores} usable cores, host {text('hostname')}, "
            f"Linux {text('kernel')}, Python {text('python')}")


def output_console() -> Console:
    """stdout; when it is a file or a pipe, wide enough that a table is not
    wrapped at Rich's default of 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)
