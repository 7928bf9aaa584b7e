"""Harness: the front door, `percpu` (cli/app.py has the commands).

The console script starts here to choose the engine before anything of the
kernel is imported: the model checker's commands run the interpreted engine
(it schedules every shared access from Python), every other command the one
PERCPU_ENGINE asks for (default: compiled).
"""
import sys

import percpu

INTERPRETED_COMMANDS = ("explore", "litmus")


def main() -> None:
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    try:
        percpu.use_engine("interpreted" if command in INTERPRETED_COMMANDS else percpu.requested_engine())
    except percpu.EngineError as exc:
        sys.stderr.write(f"percpu: error: {exc}\n")
        sys.exit(2)
    from percpu.cli.app import main as app_main  # after the engine is chosen

    app_main()
