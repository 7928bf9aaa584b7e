"""percpu litmus: herd7's X86 litmus tests on the explorer's own x86-TSO
machine. Every test in tests/data/litmus must get the verdict recorded in
tests/data/litmus/verdicts.txt (herd7's, from herdtools7's kinds file, or
x86-TSO's where that file has none) and list the final states herd7
listed (herd7-states.txt); the reduced search must reach the final states
of the unreduced one; bad files are one line and exit 2."""
import glob
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import percpu_cli
from percpu.explore.litmus import LitmusError, LitmusRun, herd_output, load_test, parse, run_test

DATA = os.path.join(os.path.dirname(__file__), "data", "litmus")
TESTS = sorted(glob.glob(os.path.join(DATA, "*.litmus")))


def _verdicts():
    facts = {}
    with open(os.path.join(DATA, "verdicts.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, verdict, source = line.split(None, 2)
                facts[name] = (verdict, source.strip())
    return facts


VERDICTS = _verdicts()


def _herd_states():
    """tests/data/litmus/herd7-states.txt: (test, model) -> the state lines herd7 printed."""
    states, key = {}, None
    with open(os.path.join(DATA, "herd7-states.txt")) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            if not line:
                key = None
            elif key is None:
                key = tuple(line.split())
                states[key] = []
            else:
                states[key].append(line)
    return states


HERD_STATES = _herd_states()


def _verdict(outcome) -> str:
    """Allow when a final state satisfying the condition is reachable (for a
    forall: when one falsifying it is)."""
    if outcome.test.condition.quantifier == "forall":
        return "Forbid" if outcome.ok else "Allow"
    return outcome.verdict


def test_every_test_has_a_recorded_verdict_and_the_catalogue_is_covered():
    names = {load_test(p).name for p in TESTS}
    assert names == set(VERDICTS) == {name for name, _ in HERD_STATES}
    for family in ("SB", "MP", "LB", "IRIW", "2+2W", "R", "S", "WRC", "RWC"):
        variants = {n for n in names if n == family or n.startswith(family + "+")}
        assert family in variants and len(variants) > 1, family  # the test and a fenced or locked variant
    assert sum(source == "kinds" for _, source in VERDICTS.values()) >= 20


@pytest.mark.parametrize("path", TESTS, ids=os.path.basename)
def test_verdict_matches_herd(path):
    test = load_test(path)
    outcome = run_test(test, tso=True)
    assert outcome.report.exhaustive
    assert _verdict(outcome) == VERDICTS[test.name][0], herd_output(outcome)


@pytest.mark.parametrize("path", TESTS, ids=os.path.basename)
def test_sequential_consistency_forbids_every_relaxed_outcome(path):
    """Without store buffers only the lost unlocked update remains."""
    test = load_test(path)
    outcome = run_test(test, tso=False)
    assert _verdict(outcome) == ("Allow" if test.name == "INC+INC" else "Forbid")


@pytest.mark.parametrize("tso", [True, False], ids=["tso", "sc"])
@pytest.mark.parametrize("path", TESTS, ids=os.path.basename)
def test_reduced_search_reaches_the_unreduced_final_states(path, tso):
    test = load_test(path)
    reduced = run_test(test, tso=tso)
    full = run_test(test, tso=tso, reduced=False)
    assert full.report.exhaustive and reduced.report.exhaustive
    assert set(reduced.report.finals) == set(full.report.finals)
    assert reduced.report.schedules <= full.report.schedules


def test_store_buffering_survives_the_end_of_a_program(monkeypatch):
    """The drain fix: a store still buffered when its CPU's program ends
    reaches memory as a choice of its own. With the old drain at the end
    (put back here) SB's relaxed outcome disappears: the check can fail."""
    sb = load_test(os.path.join(DATA, "SB.litmus"))
    assert run_test(sb, tso=True).positive == 1
    assert run_test(load_test(os.path.join(DATA, "SB+mfences.litmus")), tso=True).positive == 0
    program = LitmusRun.program

    def program_then_drain(self, cpu):
        program(self, cpu)
        self.memory.drain(cpu.id)

    monkeypatch.setattr(LitmusRun, "program", program_then_drain)
    assert run_test(sb, tso=True).positive == 0


@pytest.mark.parametrize("model", ["tso", "sc"])
@pytest.mark.parametrize("path", TESTS, ids=os.path.basename)
def test_states_are_herds(path, model):
    """The final states, line for line as herd7 7.57 printed them for this
    file (recorded in herd7-states.txt), under x86-TSO and SC."""
    test = load_test(path)
    lines = herd_output(run_test(test, tso=model == "tso"))
    count = int(lines[1].split()[1])
    assert lines[2:2 + count] == HERD_STATES[(test.name, model)]


def test_herd_output_shape():
    outcome = run_test(load_test(os.path.join(DATA, "SB.litmus")), tso=True)
    lines = herd_output(outcome)
    assert lines[:-1] == [
        "Test SB Allowed",
        "States 4",
        "0:EAX=0; 1:EAX=0;",
        "0:EAX=0; 1:EAX=1;",
        "0:EAX=1; 1:EAX=0;",
        "0:EAX=1; 1:EAX=1;",
        "Ok",
        "Witnesses",
        "Positive: 1 Negative: 3",
        "Condition exists (0:EAX=0 /\\ 1:EAX=0)",
        "Observation SB Sometimes 1 3",
    ]
    assert re.fullmatch(r"Time SB \d+\.\d\d", lines[-1])


def test_conditions_forall_not_exists_and_memory_atoms(tmp_path):
    base = open(os.path.join(DATA, "2+2W.litmus")).read()
    for condition, kind, ok, shown in (
        ("~exists ([x]=2 /\\ [y]=2)", "Forbidden", "Ok", "Positive: 3 Negative: 0"),
        ("forall (x=1 \\/ y=1)", "Required", "Ok", "Positive: 3 Negative: 0"),
        ("forall (~(x=2) /\\ true)", "Required", "No", "Positive: 2 Negative: 1"),
    ):
        path = tmp_path / "t.litmus"
        path.write_text(base.replace("exists ([x]=2 /\\ [y]=2)", condition))
        lines = herd_output(run_test(load_test(str(path)), tso=True))
        assert lines[0] == f"Test 2+2W {kind}" and ok in lines and shown in lines, lines


def test_cli_runs_tests_like_herd():
    done = percpu_cli("litmus", os.path.join(DATA, "SB.litmus"), os.path.join(DATA, "MP.litmus"))
    assert done.returncode == 0, done.stderr
    assert "Observation SB Sometimes 1 3" in done.stdout and "Observation MP Never 0 3" in done.stdout
    assert done.stderr.count("exhaustive") == 2
    sc = percpu_cli("litmus", "--sc", os.path.join(DATA, "SB.litmus"))
    assert sc.returncode == 0 and "Observation SB Never 0 3" in sc.stdout and "(SC)" in sc.stderr


BAD = {
    "arch": ("AArch64 SB\n{}\n P0 ;\n NOP ;\nexists (0:X0=0)\n", 1),
    "no braces": ("X86 T\n P0 ;\n NOP ;\nexists (0:EAX=0)\n", 1),
    "init": ("X86 T\n{ x=one; }\n P0 ;\n NOP ;\nexists (0:EAX=0)\n", 2),
    "procs": ("X86 T\n{ }\n P0 | P2 ;\n NOP | NOP ;\nexists (0:EAX=0)\n", 3),
    "columns": ("X86 T\n{ }\n P0 | P1 ;\n NOP ;\nexists (0:EAX=0)\n", 4),
    "instruction": ("X86 T\n{ }\n P0 ;\n CMPXCHG [x],EBX ;\nexists (0:EAX=0)\n", 4),
    "operand": ("X86 T\n{ }\n P0 ;\n MOV EAX,[EBX] ;\nexists (0:EAX=0)\n", 4),
    "lock": ("X86 T\n{ }\n P0 ;\n LOCK MOV [x],$1 ;\nexists (0:EAX=0)\n", 4),
    "two memory operands": ("X86 T\n{ }\n P0 ;\n MOV [x],[y] ;\nexists (0:EAX=0)\n", 4),
    "condition": ("X86 T\n{ }\n P0 ;\n NOP ;\nexists (0:EAX=0 /\\)\n", 5),
    "register": ("X86 T\n{ }\n P0 ;\n NOP ;\nexists (0:RAX=0)\n", 5),
    "no condition": ("X86 T\n{ }\n P0 ;\n NOP ;\n", None),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_file_names_its_line(name):
    text, line = BAD[name]
    with pytest.raises(LitmusError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith(f"line {line}:" if line else "end of file:"), message


def test_cli_bad_file_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.litmus"
    path.write_text(BAD["instruction"][0])
    for args in ([str(path)], [str(tmp_path / "missing.litmus")], [os.path.join(DATA, "SB.litmus"), str(path)]):
        bad = percpu_cli("litmus", *args)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and not bad.stdout, (args, bad.stderr)
    assert "line 4" in percpu_cli("litmus", str(path)).stderr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_corruption_of_a_test_parses_or_names_its_line(data):
    """Whatever is cut, doubled or replaced in a test, parsing either gives a
    test or a LitmusError (never another exception)."""
    text = open(os.path.join(DATA, data.draw(st.sampled_from(["SB.litmus", "IRIW.litmus", "SB+lock-adds.litmus"])))).read()
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(i, min(len(text), i + 12)))
    insert = data.draw(st.text(alphabet="[]{}()|;:,$=~/\\ \nPXEAXMOVLOCK0123456789xy-", max_size=8))
    try:
        parse(text[:i] + insert + text[j:])
    except LitmusError as exc:
        assert re.match(r"(line \d+|end of file): ", str(exc)), str(exc)
