"""Benchmarks (installed as percpu.bench): `percpu bench` (roundtrip.py, the
emulator against a native C reference) and
`python bench/fork_exit.py`. Results of committed runs are in bench/results/."""
