"""Harness: the machine the emulated kernel runs on. The shared segment and
its layout (segment), its address tables (addresses), the per-CPU context
and its atomics (context, _atomic.c), per-CPU statistics (stats), the
checker (checker) and per-CPU tracing (tracing). Imports nothing above it."""
