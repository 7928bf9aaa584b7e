"""`percpu compare A B`: two result files (runs or sweeps), cell by cell:
B's median throughput over A's, and whether the difference is beyond the
spread of the repeats (the two min..max ranges do not overlap). Two
strategies' results are compared with the cells matched on everything but
the strategy (cli/scaling.py's compare_cells)."""
from __future__ import annotations

import typer
from rich.table import Table

from percpu.cli.scaling import ResultFileError, compare_cells, describe_machine, load_result, output_console


def _load(path: str, option: str) -> dict:
    try:
        return load_result(path)
    except ResultFileError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def compare_command(
    a: str = typer.Argument(..., metavar="A", help="Run JSON (percpu run --json), sweep summary.json, or sweep dir."),
    b: str = typer.Argument(..., metavar="B", help="The same kinds; ratios are B over A."),
):
    """Compare two results cell by cell: ratio of throughputs and whether it is beyond the spread."""
    first, second = _load(a, "A"), _load(b, "B")
    rows, only_a, only_b = compare_cells(first["cells"], second["cells"])
    if not rows:
        raise typer.BadParameter(
            "no cell (workload, tasks per CPU, CPUs, strategy) is in both files, nor one strategy's cell against "
            "another's with the same workload, tasks per CPU and CPUs; nothing to compare"
        )
    out = output_console()
    for label, result in (("A", first), ("B", second)):
        out.print(f"{label}: {result['path']} ({result['kind']}): {describe_machine(result['machine'])}",
                  markup=False, highlight=False, soft_wrap=True)
    # Two strategies' results match on everything but the strategy: then
    # each side's strategy has its own column.
    across = any(row["strategy"] != row["b_strategy"] for row in rows)
    strategies = ("A strategy", "B strategy") if across else ("strategy",)
    table = Table(title="B / A, per cell (median ops/s over repeats)", title_justify="left")
    for name in ("workload", "tasks/CPU", "CPUs", *strategies, "A ops/s", "B ops/s", "B / A", "beyond spread"):
        table.add_column(name, justify="left" if name in ("workload", *strategies, "beyond spread") else "right")
    for row in rows:
        table.add_row(
            row["workload"], str(row["tasks_per_cpu"]), str(row["cpus"]),
            *((row["strategy"], row["b_strategy"]) if across else (row["strategy"],)),
            f"{row['a_ops_per_s']:,.0f}", f"{row['b_ops_per_s']:,.0f}",
            "-" if row["ratio"] is None else f"{row['ratio']:.3f}x ({100 * (row['ratio'] - 1):+.1f}%)",
            _beyond(row),
        )
    out.print(table)
    if only_a or only_b:
        out.print(f"not compared: {only_a} cell(s) only in A, {only_b} only in B", markup=False, highlight=False)


def _beyond(row: dict) -> str:
    if row["failed"]:
        return "a run FAILED"
    if row["beyond_spread"] is None:
        return "unknown (one repeat)"
    return "yes" if row["beyond_spread"] else "no (ranges overlap)"
