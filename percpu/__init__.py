"""percpu: a multiprocess shared-memory emulator of Linux per-CPU lazy-TLB
mm state. `percpu/` is the emulated kernel; `percpu.workers` (the tree's
workers/) is a CPU; `percpu.cli` (cli/) is the front door."""

__version__ = "0.1.0"

import os as _os

# numpy's OpenBLAS would start a thread pool this emulator never uses; its
# threads would compete with the pinned CPU workers.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
