"""Benchmarks (installed as percpu.bench): `percpu bench` (roundtrip.py, the
emulator against a native C reference), fork_exit.py, startup.py,
oversubscribed.py, handoff.py, ab.py and explore.py (the explorer's
figures), each run as
`python -P -m percpu.bench.NAME`. Results of committed runs are in
bench/results/."""
import json


def write_document(path: str | None, doc: dict) -> None:
    """A benchmark's JSON document, when it was asked for (--out)."""
    if path:
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
