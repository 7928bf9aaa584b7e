"""`percpu clean`: remove shared-memory segments left by runs that are gone."""
from __future__ import annotations

import typer

from percpu.machine.segment import remove_stale_segments


def clean_command():
    """Remove /dev/shm segments whose owning run is gone; never a live run's."""
    removed, kept = remove_stale_segments()
    for name in removed:
        typer.echo(f"removed /dev/shm/{name}")
    for name in kept:
        typer.echo(f"kept /dev/shm/{name} (its run is alive)")
    typer.echo(f"{len(removed)} segment(s) removed, {len(kept)} in use")
