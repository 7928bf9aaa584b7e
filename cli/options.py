"""Option checks shared by the commands: each raises typer.BadParameter, which
`main()` turns into one line on stderr and exit 2."""
from __future__ import annotations

import math
import os

import typer


def positive_finite(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"must be a positive finite number, not {value}")
    return value


def line_size(value: int) -> int:
    if value < 64 or value & (value - 1):
        raise typer.BadParameter(f"must be a power of two of at least 64 bytes, not {value}")
    return value


def writable_file(value: str | None) -> str | None:
    """An output file we can create or overwrite, checked before any run
    starts (so a long run never ends in a failed write)."""
    if value is None:
        return None
    if os.path.isdir(value):
        raise typer.BadParameter(f"{value} is a directory")
    existed = os.path.exists(value)
    try:
        with open(value, "a"):
            pass
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {value}: {exc.strerror}") from None
    if not existed:
        os.unlink(value)
    return value


def fault_list(value: str) -> tuple[str, ...]:
    """'all', 'none', or a comma-separated list of percpu.faults.FAULTS."""
    from percpu.faults import FAULTS

    if value == "all":
        return FAULTS
    if value in ("none", ""):
        return ()
    names = tuple(name.strip() for name in value.split(","))
    unknown = [name for name in names if name not in FAULTS]
    if unknown:
        raise typer.BadParameter(f"unknown fault {unknown[0]!r}: use all, none, or some of {', '.join(FAULTS)}")
    return names
