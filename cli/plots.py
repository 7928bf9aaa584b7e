"""The sweep's two figures, as PNG and SVG: throughput vs CPUs per strategy
with the linear-scaling line, and speedup over refcount vs CPUs. One panel
per tasks-per-CPU value; error bars span the repeats (min to max)."""
from __future__ import annotations

import io
import os

import matplotlib

matplotlib.use("Agg")  # files only: no display needed (and sweep imports this module only when it plots)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import EngFormatter, PercentFormatter  # noqa: E402

from percpu.cli.output import write_bytes  # noqa: E402
from percpu.cli.scaling import BASELINE, describe_machine, table_groups  # noqa: E402
from percpu.strategies import STRATEGIES  # noqa: E402


def _tasks_label(tasks_per_cpu: int) -> str:
    return f"{tasks_per_cpu} task{'s' if tasks_per_cpu != 1 else ''} per CPU"


def _errorbar(ax, xs, medians, lows, highs, slot, slots, **style):
    """Strategy `slot` of `slots`, nudged sideways (the x axis is log 2) so
    that error bars at the same CPU count do not hide each other."""
    nudge = 2 ** (0.03 * (slot - (slots - 1) / 2))
    yerr = [[m - lo for m, lo in zip(medians, lows)], [hi - m for m, hi in zip(medians, highs)]]
    ax.errorbar([x * nudge for x in xs], medians, yerr=yerr, capsize=3, marker="o", **style)


def _cpu_axis(ax, cpu_counts):
    ax.set_xscale("log", base=2)
    ax.set_xticks(cpu_counts)
    ax.set_xticklabels([str(c) for c in cpu_counts])
    ax.minorticks_off()
    ax.set_xlabel("emulated CPUs (one pinned process each)")
    ax.grid(True, alpha=0.3)


def write_plots(cells: list[dict], machine: dict, op: str, out_dir: str) -> list[str]:
    """Writes throughput.{png,svg} and speedup.{png,svg}; returns the paths."""
    groups = table_groups(cells)
    workloads = sorted({w for w, _ in groups})
    where = describe_machine(machine)
    paths = []
    for name, draw in (("throughput", _draw_throughput), ("speedup", _draw_speedup)):
        fig, axes = plt.subplots(1, len(groups), figsize=(6.4 * len(groups), 5.0), squeeze=False)
        for ax, (workload, tasks_per_cpu) in zip(axes[0], groups):
            mine = [c for c in cells if c["workload"] == workload and c["tasks_per_cpu"] == tasks_per_cpu]
            draw(ax, mine)
            ax.set_title(f"{workload}, {_tasks_label(tasks_per_cpu)}", fontsize=10)
        what = "Throughput" if name == "throughput" else f"Speedup over {BASELINE}"
        fig.suptitle(f"{what}: {', '.join(workloads)}\n{where}", fontsize=10)
        fig.text(0.5, 0.01, f"one op = {op}; points: median over repeats (nudged sideways), bars: min to max",
                 ha="center", fontsize=8, color="dimgray")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        try:
            for ext in ("png", "svg"):
                path = os.path.join(out_dir, f"{name}.{ext}")
                image = io.BytesIO()
                fig.savefig(image, format=ext, dpi=120)
                write_bytes(path, image.getvalue())  # whole or not at all
                paths.append(path)
        finally:
            plt.close(fig)
    return paths


def _strategies(cells):
    return list(dict.fromkeys(c["strategy"] for c in cells))  # cells come sorted: refcount first


def _color(strategy: str) -> str:
    """The same colour for a strategy in every panel and figure."""
    names = list(STRATEGIES)
    return f"C{names.index(strategy) % 10}" if strategy in names else "black"


def _draw_throughput(ax, cells):
    cpu_counts = sorted({c["cpus"] for c in cells})
    strategies = _strategies(cells)
    for slot, strategy in enumerate(strategies):
        mine = sorted((c for c in cells if c["strategy"] == strategy), key=lambda c: c["cpus"])
        _errorbar(ax, [c["cpus"] for c in mine], [c["ops_per_s_median"] for c in mine],
                  [c["ops_per_s_min"] for c in mine], [c["ops_per_s_max"] for c in mine],
                  slot, len(strategies), label=strategy, color=_color(strategy))
    # Perfect scaling from the baseline's smallest CPU count: what a
    # contention-free scheme would reach if each CPU ran as fast as alone.
    base = sorted((c for c in cells if c["strategy"] == BASELINE), key=lambda c: c["cpus"])
    if base:
        first = base[0]
        per_cpu = first["ops_per_s_median"] / first["cpus"]
        ax.plot(cpu_counts, [per_cpu * n for n in cpu_counts], linestyle="--", color="gray",
                label=f"linear scaling ({BASELINE} at {first['cpus']} CPU{'s' if first['cpus'] > 1 else ''} x N)")
    _cpu_axis(ax, cpu_counts)
    ax.set_ylabel("throughput (ops/s, all CPUs together)")
    ax.yaxis.set_major_formatter(EngFormatter(sep=" "))  # 1.5 M, not an offset "1e6"
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)


def _draw_speedup(ax, cells):
    cpu_counts = sorted({c["cpus"] for c in cells})
    ax.axhline(0, color="black", linewidth=1, label=f"{BASELINE} (0%)")
    strategies = _strategies(cells)
    for slot, strategy in enumerate(strategies):
        mine = sorted((c for c in cells if c["strategy"] == strategy and c["speedup_pct_median"] is not None),
                      key=lambda c: c["cpus"])
        if mine:
            _errorbar(ax, [c["cpus"] for c in mine], [c["speedup_pct_median"] for c in mine],
                      [c["speedup_pct_min"] for c in mine], [c["speedup_pct_max"] for c in mine],
                      slot, len(strategies), label=strategy, color=_color(strategy))
    _cpu_axis(ax, cpu_counts)
    ax.set_ylabel(f"speedup over {BASELINE} (% more ops/s)")
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.legend(fontsize=8)
