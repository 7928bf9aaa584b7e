"""percpu: a multiprocess shared-memory emulator of Linux per-CPU lazy-TLB
mm state. `percpu/linux/` is the emulated kernel, `percpu/machine/` what it
runs on; `percpu.workers` (the tree's workers/) is a CPU; `percpu.cli`
(cli/) is the front door.

Two engines run the same modules. `compiled`, what `pip install .` builds:
every module with a `.pxd` beside its `.py` compiled by Cython (setup.py).
`interpreted`: the `.py` sources, run by CPython. PERCPU_ENGINE chooses
(default: compiled, where it was built). The explorer always runs
interpreted: it schedules every shared access from Python
(percpu/explore/machine.py).
"""

__version__ = "0.1.0"

import importlib as _importlib
import importlib.abc as _abc
import importlib.machinery as _machinery
import os as _os
import sys as _sys

# numpy's OpenBLAS would start a thread pool this emulator never uses; its
# threads would compete with the pinned CPU workers.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ENGINES = ("compiled", "interpreted")


class EngineError(RuntimeError):
    """An engine was asked for that this process cannot run."""


class _Sources(_abc.MetaPathFinder):
    """Finds percpu's modules as their .py sources, never as compiled
    extensions (the atomics, which have no .py, still load as built)."""

    def find_spec(self, fullname, path, target=None):
        if path is None or not fullname.startswith(__name__ + "."):
            return None
        for entry in path:
            finder = _machinery.FileFinder(entry, (_machinery.SourceFileLoader, _machinery.SOURCE_SUFFIXES))
            spec = finder.find_spec(fullname)
            if spec is not None:
                return spec
        return None


def use_engine(name: str) -> None:
    """Choose the engine for this process (and the CPUs it forks), before
    any engine module is imported."""
    if name not in ENGINES:
        raise EngineError(f"PERCPU_ENGINE={name!r} is not an engine: use one of {', '.join(ENGINES)}")
    interpreted = any(isinstance(finder, _Sources) for finder in _sys.meta_path)
    if interpreted == (name == "interpreted"):
        return
    if f"{__name__}.machine.context" in _sys.modules:
        raise EngineError(f"the {name} engine was asked for after the other one was loaded")
    if name == "interpreted":
        _sys.meta_path.insert(0, _Sources())
    else:
        _sys.meta_path[:] = [finder for finder in _sys.meta_path if not isinstance(finder, _Sources)]
    _os.environ["PERCPU_ENGINE"] = name  # for child processes that exec


def engine() -> str:
    """The engine this process runs (loaded now if it was not yet: it is
    imported by name because choosing comes first)."""
    context = _importlib.import_module(f"{__name__}.machine.context")
    return "compiled" if context.COMPILED else "interpreted"


def requested_engine() -> str:
    """What PERCPU_ENGINE asks for (the compiled engine by default)."""
    return _os.environ.get("PERCPU_ENGINE") or "compiled"


try:
    use_engine(requested_engine())
except EngineError:
    pass  # a bad PERCPU_ENGINE: the front door (cli/__init__.py) says so; a library user gets the default
