"""Benchmarks (installed as percpu.bench): `percpu bench` (roundtrip.py, the
emulator against a minimal Python loop and a native C reference) and
`python bench/fork_exit.py`. Results of committed runs are in bench/results/."""
