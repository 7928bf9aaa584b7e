"""`percpu litmus`: litmus tests in herd7's X86 syntax on the explorer's
x86-TSO machine (percpu/explore/litmus.py), every schedule explored, the
result on stdout in herd7's shape (diff it against `herd7 FILE`), what
was explored on stderr."""
from __future__ import annotations

import sys

import typer

from percpu.explore.litmus import LitmusError, explored_line, herd_output, load_test, run_test


def _say(text: str, err: bool = False) -> None:
    (sys.stderr if err else sys.stdout).write(text + "\n")


def litmus_command(
    files: list[str] = typer.Argument(..., metavar="FILE.litmus...", help="Tests in herd7's X86 syntax."),
    sc: bool = typer.Option(False, "--sc", help="Sequential consistency: no store buffers (default: x86-TSO)."),
    max_schedules: int = typer.Option(200000, min=1, help="Stop a test after this many schedules."),
):
    """Run litmus tests exhaustively on the explorer's x86-TSO machine and
    print herd7's output for each."""
    tests = []
    for path in files:
        try:
            tests.append(load_test(path))
        except LitmusError as exc:
            message = str(exc)
            _say(f"percpu: error: {message if message.startswith('cannot read') else f'{path}: {message}'}", err=True)
            raise typer.Exit(2)
    for test in tests:
        try:
            outcome = run_test(test, tso=not sc, max_schedules=max_schedules)
        except KeyboardInterrupt:
            _say(f"percpu: interrupted while running {test.name}", err=True)
            raise typer.Exit(130)
        for line in herd_output(outcome):
            _say(line)
        _say(explored_line(outcome), err=True)
    raise typer.Exit(0)
