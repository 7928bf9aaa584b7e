"""Rich rendering of a run's result document."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from percpu.cli.output import size_text


def _n(x, digits=0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _param(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    return str(value)


def _width(percentiles: dict) -> str:
    """The histogram's resolution: a percentile is its bucket's middle."""
    return f"buckets {percentiles['bucket_width_pct']:g}% wide"


def verdict_line(doc: dict) -> str:
    p = doc["parameters"]
    params = " ".join(f"{k}={_param(v)}" for k, v in p.items())
    line = f"{doc['verdict']}: {params}"
    if doc["failure_reasons"]:
        line += " -- " + "; ".join(doc["failure_reasons"])
    warnings = doc.get("warnings") or []
    if warnings:
        sites = sorted({w["site"] for w in warnings})
        line += f" -- {len(warnings)} kernel WARN(s), not violations: {'; '.join(sites)}"
    return line


def render_run(console: Console, doc: dict) -> None:
    p, m, t = doc["parameters"], doc["machine"], doc["totals"]
    cores = len(m["usable_cores"])
    where = f"{p['cpus']} CPUs on {cores} cores"
    if m["oversubscribed"]:
        where += f" (OVERSUBSCRIBED x{m['oversubscription']:g}: several emulated CPUs share a core)"
    console.print(f"[bold]percpu[/] {p['strategy']} / {p['workload']}: {where}; one op = {doc['op']}")

    rate = Table(title="Throughput (per sample, median over samples; ops/s)", title_justify="left")
    for col in ("min per CPU", "max per CPU", "total", "samples"):
        rate.add_column(col, justify="right")
    r = doc["rate"]
    rate.add_row(_n(r["min_cpu_ops_per_s"]), _n(r["max_cpu_ops_per_s"]), _n(r["total_ops_per_s"]), str(r["samples"]))
    console.print(rate)

    if not doc["counters_reported"]:
        console.print("The run was aborted before its CPUs reported: only the ops they published while running "
                      "are known; every other counter is '-'.", markup=False, highlight=False)
    lat = doc["ns_per_op"]
    ops = t["ops"]
    summary = Table(title="Costs", title_justify="left", show_header=True)
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    summary.add_row(f"ns per op, p50 / p90 / p99 (per CPU; {_width(lat)})",
                    " / ".join(_n(lat[k]) for k in ("p50", "p90", "p99")))
    sw = doc["ns_per_switch"]
    summary.add_row(f"ns per context switch, p50 / p90 / p99, mean (1 in 64 timed; {_width(sw)})",
                    " / ".join(_n(sw[k]) for k in ("p50", "p90", "p99")) + f", {_n(sw['mean'])}")
    summary.add_row("ops", _n(ops))
    summary.add_row("context switches (lazy: user -> kernel thread)", f"{_n(t['switches'])} ({_n(t['lazy_switches'])})")
    summary.add_row("shared atomics (per op)", f"{_n(t['shared_atomics'])} ({_n(doc['per_op']['shared_atomics'], 2)})")
    summary.add_row("IPIs sent / received", f"{_n(t['ipis_sent'])} / {_n(t['ipis_received'])}")
    td = doc["teardown"]
    summary.add_row("mm teardowns; ns p50 / p99", f"{_n(td['count'])}; {_n(td['ns']['p50'])} / {_n(td['ns']['p99'])}")
    if td["count"]:
        summary.add_row("per teardown: IPIs, ns waiting for other CPUs",
                        f"{_n(td['ipis_per_teardown'], 2)}, {_n(td['wait_ns_per_teardown'])}")
        summary.add_row("per teardown: hazard slots scanned, lazy fix-ups",
                        f"{_n(td['hazard_slots_scanned_per_teardown'], 2)}, {_n(td['fixups_per_teardown'], 2)}")
    if t["forks"]:
        summary.add_row("processes forked", _n(t["forks"]))
    summary.add_row("lazy page-walk probes (the checker)", _n(t["probes"]))
    blocking = doc["blocking"]
    if m["oversubscribed"]:
        share = blocking["halted_share"]
        summary.add_row("oversubscribed: halts (share of CPU time asleep), woken by timeout",
                        f"{_n(blocking['halts'])} ({'-' if share is None else f'{100 * share:.0f}%'}), "
                        f"{_n(blocking['halt_timeouts'])}")
        summary.add_row("oversubscribed: halted CPUs woken, core yields", f"{_n(blocking['kicks'])}, {_n(blocking['yields'])}")
    summary.add_row("violations", _n(doc["violation_count"]))
    summary.add_row("kernel WARN_ONs fired (not violations)", _n(len(doc.get("warnings") or [])))
    console.print(summary)

    if len(doc["per_cpu"]) <= 16:
        per_cpu = Table(title="Per CPU", title_justify="left")
        for col in ("cpu", "core", "ops", "lazy switches", "atomics", "IPIs in", "violations"):
            per_cpu.add_column(col, justify="right")
        for c in doc["per_cpu"]:
            per_cpu.add_row(str(c["cpu"]), str(c["core"]), _n(c["ops"]), _n(c["lazy_switches"]),
                            _n(c["shared_atomics"]), _n(c["ipis_received"]), _n(c["violations"]))
        console.print(per_cpu)

    if doc["violations"]:
        v_table = Table(title="Violations (first 10)", title_justify="left")
        for col in ("kind", "cpu", "mm", "where"):
            v_table.add_column(col)
        for v in doc["violations"][:10]:
            mm = f"slot {v['mm_slot']} gen {v['ref_gen']} (now {v['found_gen']})" if "mm_slot" in v and "ref_gen" in v else ""
            where = v.get("message") or v["site"]
            if v.get("other_cpu") and "loaded" in v["site"]:
                where += f" (CPU {v['other_cpu']})"
            v_table.add_row(v["kind"], str(v.get("cpu", "")), mm, where)
        console.print(v_table)


def trace_summary(path: str, size: int, chrome: dict) -> str:
    """One line for stderr: where the trace went, its size, what the rings lost."""
    lost = chrome["otherData"]["events_lost_to_ring_wrap"]
    line = f"percpu: trace: wrote {path} ({size_text(size)}, {len(chrome['traceEvents']):,} events)"
    losing = [n for n in lost if n]
    if losing:
        line += (f"; {sum(losing):,} older events lost to ring wrap on {len(losing)} of {len(lost)} CPUs "
                 f"(up to {max(losing):,} on one; each CPU keeps its last {chrome['otherData']['ring_events']:,}: "
                 f"trace a shorter run to see all)")
    return line
