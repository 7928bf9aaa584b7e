"""Harness: the model checker. A deterministic interleaving explorer of the
emulated kernel: `machine` (the CPUs as threads, one at a time, with x86-TSO
store buffers), `search` (exhaustive with preemption bounds, random,
replay), `scenarios` (the programs explored) and `schedule` (listings and
schedule files)."""
