"""percpu: a multiprocess shared-memory emulator of Linux per-CPU lazy-TLB
mm state. `percpu/` is the emulated kernel; `percpu.workers` (the tree's
workers/) is a CPU; `percpu.cli` (cli/) is the front door."""

__version__ = "0.1.0"
