"""Harness: litmus tests in herd7's X86 syntax, run on the explorer's own
x86-TSO machine (percpu/explore/machine.py: the Memory, store buffers,
fences and locked atomics the kernel scenarios use), exhaustively, with the
result printed in herd7's shape so that the two can be diffed.

A test: a name line (`X86 SB`), optional lines herd ignores (a quoted
comment, `key=value` lines), the initial state in braces (`x=1; 0:EAX=2;`),
the program in columns (`P0 | P1 ;` then one instruction per column per
line), an optional `locations [x; 0:EAX;]` and the condition (`exists`,
`~exists` or `forall`, with `/\\`, `\\/`, `~` or `not`, parentheses, `true`,
`false` and atoms `P:REG=V`, `x=V` or `[x]=V`). Instructions: `MOV` between
registers, memory and immediates (`$1`), `ADD`, `XOR`, `OR`, `INC`, `DEC`
on registers or memory (on memory, a load and a store), `XCHG` (locked, as
on x86), the `LOCK` prefix on `ADD`, `INC`, `DEC`, `XCHG` (herd's set
without XOR/OR), `MFENCE`, `LFENCE`/`SFENCE` (no effect under TSO) and
`NOP`. Like herd's X86, no CMPXCHG or XADD.

Each test runs every schedule of the reduced search (sleep sets, no state
caching: one schedule per class of equivalent interleavings), and each
schedule that ends names its execution: which write every load read from
and the order in which the writes to each location reached memory. The
witnesses are executions, as herd counts them; the states are the final
values of the observed locations.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from percpu.explore.machine import DONE, Execution, Interleaving, Memory, Result, install_atomics
from percpu.explore.search import Report, search

REGISTERS = ("EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP", "ESP")
LOCKABLE = ("ADD", "INC", "DEC", "XCHG")
MAX_STEPS = 10000


class LitmusError(ValueError):
    """A file that is not a test this runner can run (message names the line)."""


@dataclass(frozen=True)
class Instr:
    op: str  # MOV, ADD, XOR, OR, INC, DEC, XCHG, MFENCE, NOP
    dst: tuple | None  # ("reg", name) | ("mem", location)
    src: tuple | None  # the above or ("imm", value)
    locked: bool
    text: str
    line: int


@dataclass
class Condition:
    quantifier: str  # "exists", "~exists", "forall"
    prop: tuple  # ("atom", loc, value) | ("not", p) | ("and", [p...]) | ("or", [p...]) | ("true",) | ("false",)


@dataclass
class LitmusTest:
    arch: str
    name: str
    init: dict  # location or (proc, register) -> value
    programs: list  # per processor, its instructions
    condition: Condition
    locations: list = field(default_factory=list)  # extra observed locations (`locations [...]`)

    @property
    def memory_locations(self) -> list[str]:
        names = {k for k in self.init if isinstance(k, str)}
        for program in self.programs:
            for ins in program:
                for operand in (ins.dst, ins.src):
                    if operand and operand[0] == "mem":
                        names.add(operand[1])
        names.update(loc for loc in _atoms_of(self.condition.prop) if isinstance(loc, str))
        names.update(loc for loc in self.locations if isinstance(loc, str))
        return sorted(names)

    def observed(self) -> list:
        """The locations a final state shows: the condition's and `locations`, registers first (herd's order)."""
        locs = set(_atoms_of(self.condition.prop)) | set(self.locations)
        regs = sorted(loc for loc in locs if not isinstance(loc, str))
        return regs + sorted(loc for loc in locs if isinstance(loc, str))


def _atoms_of(prop):
    if prop[0] == "atom":
        yield prop[1]
    elif prop[0] == "not":
        yield from _atoms_of(prop[1])
    elif prop[0] in ("and", "or"):
        for p in prop[1]:
            yield from _atoms_of(p)


# --- parsing ---------------------------------------------------------------------
def parse(text: str) -> LitmusTest:
    """A test from its text; LitmusError names the offending line."""
    text = _strip_comments(text)
    lines = [(i + 1, line) for i, line in enumerate(text.split("\n"))]
    lines = [(n, line) for n, line in lines if line.strip()]
    if not lines:
        raise LitmusError("line 1: empty file")
    n, head = lines[0]
    words = head.split()
    if len(words) < 2 or words[0].upper() != "X86":
        raise LitmusError(f"line {n}: expected 'X86 NAME' (only herd's X86 tests are supported), got {head.strip()!r}")
    arch, name = words[0], words[1]
    init, after = _parse_init(lines)
    programs, cond_lines = _parse_programs(after)
    locations, condition = _parse_condition(cond_lines)
    test = LitmusTest(arch, name, init, programs, condition, locations)
    for loc in list(init) + list(_atoms_of(condition.prop)) + locations:
        if not isinstance(loc, str) and loc[0] >= len(programs):
            raise LitmusError(f"line {n}: {loc[0]}:{loc[1]} names processor {loc[0]}, "
                              f"the test has {len(programs)}")
    return test


def _strip_comments(text: str) -> str:
    """herd's (* ... *) comments, kept as blank lines so line numbers stay."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r"\(\*.*?\*\)", blank, text, flags=re.S)


def _parse_init(lines):
    """The `{ ... }` block: returns (init, the numbered lines after it)."""
    start = next((k for k, (_, line) in enumerate(lines) if "{" in line), None)
    if start is None:
        raise LitmusError(f"line {lines[0][0]}: no initial state '{{ ... }}'")
    opened = lines[start][1].index("{") + 1

    def closing(k):  # where line k closes the block (-1: it does not); a '}' before the '{' does not
        return lines[k][1].find("}", opened if k == start else 0)

    end = next((k for k in range(start, len(lines)) if closing(k) >= 0), None)
    if end is None:
        raise LitmusError(f"line {lines[start][0]}: the initial state '{{' is never closed")
    closed = closing(end)
    init = {}
    for k in range(start, end + 1):
        n, line = lines[k]
        part = line[opened if k == start else 0:closed if k == end else len(line)]
        for item in part.split(";"):
            item = item.strip()
            if not item:
                continue
            m = re.fullmatch(r"(?:(\d+):)?\s*(\[?\w+\]?)\s*=\s*(-?(?:0x[0-9a-fA-F]+|\d+))", item)
            if not m:
                raise LitmusError(f"line {n}: cannot read initial value {item!r} (expected x=1 or 0:EAX=1)")
            proc, loc, value = m.groups()
            init[_location(proc, loc, n)] = int(value, 0)
    tail = lines[end][1][closed + 1:]
    after = ([(lines[end][0], tail)] if tail.strip() else []) + lines[end + 1:]
    return init, after


def _location(proc, loc, n):
    loc = loc.strip()
    if proc is not None:
        reg = loc.upper()
        if reg not in REGISTERS:
            raise LitmusError(f"line {n}: unknown register {loc!r} (use one of {', '.join(REGISTERS)})")
        return (int(proc), reg)
    if loc.startswith("["):
        loc = loc.strip("[]")
    if not re.fullmatch(r"[A-Za-z_]\w*", loc) or loc.upper() in REGISTERS:
        raise LitmusError(f"line {n}: {loc!r} is not a memory location")
    return loc


def _parse_programs(lines):
    if not lines:
        raise LitmusError("end of file: no program ('P0 | P1 ;')")
    n, header = lines[0]
    procs = [c.strip() for c in header.strip().rstrip(";").split("|")]
    if not procs or any(p != f"P{i}" for i, p in enumerate(procs)):
        raise LitmusError(f"line {n}: expected the processors 'P0 | P1 | ... ;', got {header.strip()!r}")
    programs = [[] for _ in procs]
    k = 1
    while k < len(lines):
        n, line = lines[k]
        stripped = line.strip()
        if not stripped.endswith(";") or re.match(r"(~?exists|forall|locations|filter)\b", stripped):
            break
        columns = stripped[:-1].split("|")
        if len(columns) != len(procs):
            raise LitmusError(f"line {n}: {len(columns)} columns, expected {len(procs)}")
        for p, column in enumerate(columns):
            if column.strip():
                programs[p].append(_instruction(column.strip(), n))
        k += 1
    return programs, lines[k:]


def _operand(text, n, what):
    text = text.strip()
    m = re.fullmatch(r"\[\s*([A-Za-z_]\w*)\s*\]", text)
    if m:
        if m.group(1).upper() in REGISTERS:
            raise LitmusError(f"line {n}: indirect addressing {text!r} is not supported")
        return ("mem", m.group(1))
    m = re.fullmatch(r"\$?(-?(?:0x[0-9a-fA-F]+|\d+))", text)
    if m:
        return ("imm", int(m.group(1), 0))
    if text.upper() in REGISTERS:
        return ("reg", text.upper())
    raise LitmusError(f"line {n}: cannot read {what} {text!r} (a register, [location] or $value)")


def _instruction(text, n) -> Instr:
    words = text.replace(";", " ").split(None, 1)
    op = words[0].upper()
    locked = op == "LOCK"
    if locked:
        if len(words) < 2:
            raise LitmusError(f"line {n}: LOCK needs an instruction")
        words = words[1].split(None, 1)
        op = words[0].upper()
        if op not in LOCKABLE:
            raise LitmusError(f"line {n}: LOCK {op}: the lock prefix works here on {', '.join(LOCKABLE)}")
    args = [a for a in words[1].split(",")] if len(words) > 1 else []
    if op in ("MFENCE", "LFENCE", "SFENCE", "NOP"):
        if args:
            raise LitmusError(f"line {n}: {op} takes no operands")
        return Instr("MFENCE" if op == "MFENCE" else "NOP", None, None, False, text, n)
    arity = {"MOV": 2, "ADD": 2, "XOR": 2, "OR": 2, "XCHG": 2, "INC": 1, "DEC": 1}
    if op not in arity:
        raise LitmusError(f"line {n}: unsupported instruction {op!r} (supported: {', '.join(arity)}, LOCK, MFENCE, "
                          f"LFENCE, SFENCE, NOP)")
    if len(args) != arity[op]:
        raise LitmusError(f"line {n}: {op} takes {arity[op]} operand{'s' * (arity[op] > 1)}, got {len(args)}")
    dst = _operand(args[0], n, "destination")
    src = _operand(args[1], n, "source") if arity[op] == 2 else None
    if dst[0] == "imm":
        raise LitmusError(f"line {n}: the destination cannot be an immediate")
    if src is not None and dst[0] == "mem" and src[0] == "mem":
        raise LitmusError(f"line {n}: at most one memory operand")
    if op == "XCHG" and "imm" in (dst[0], src[0]):
        raise LitmusError(f"line {n}: XCHG exchanges registers and memory, not an immediate")
    if op == "XCHG" and dst[0] == "reg" and src[0] == "mem":
        dst, src = src, dst  # XCHG EAX,[x] is XCHG [x],EAX
    if locked and dst[0] != "mem":
        raise LitmusError(f"line {n}: LOCK {op} needs a memory destination")
    return Instr(op, dst, src, locked or (op == "XCHG" and dst[0] == "mem"), text, n)


_TOKEN = re.compile(r"\s*(/\\|\\/|~|\(|\)|\[?\w+\]?(?::\w+)?\s*=\s*-?(?:0x[0-9a-fA-F]+|\d+)|\w+)")


def _parse_condition(lines):
    locations = []
    k = 0
    while k < len(lines) and lines[k][1].strip().startswith("locations"):
        n, line = lines[k]
        m = re.fullmatch(r"\s*locations\s*\[(.*)\]\s*;?\s*", line)
        if not m:
            raise LitmusError(f"line {n}: expected 'locations [x; 0:EAX;]'")
        for item in m.group(1).split(";"):
            if item.strip():
                proc, _, loc = item.strip().rpartition(":")
                locations.append(_location(proc or None, loc, n))
        k += 1
    if k >= len(lines):
        raise LitmusError("end of file: no condition (exists, ~exists or forall)")
    n0 = lines[k][0]
    text = " ".join(line for _, line in lines[k:])
    m = re.match(r"\s*(~\s*exists|exists|forall)\b(.*)$", text, flags=re.S)
    if not m:
        raise LitmusError(f"line {n0}: expected a condition (exists, ~exists or forall), got {lines[k][1].strip()!r}")
    quantifier = re.sub(r"\s+", "", m.group(1))
    tokens, pos, body = [], 0, m.group(2).strip()
    while pos < len(body):
        t = _TOKEN.match(body, pos)
        if not t:
            raise LitmusError(f"line {n0}: cannot read the condition at {body[pos:pos + 20]!r}")
        tokens.append(t.group(1))
        pos = t.end()
        while pos < len(body) and body[pos].isspace():
            pos += 1
    prop, rest = _disjunction(tokens, n0)
    if rest:
        raise LitmusError(f"line {n0}: unexpected {rest[0]!r} in the condition")
    return locations, Condition(quantifier, prop)


def _disjunction(tokens, n):
    p, tokens = _conjunction(tokens, n)
    ps = [p]
    while tokens[:1] == ["\\/"]:
        p, tokens = _conjunction(tokens[1:], n)
        ps.append(p)
    return (ps[0] if len(ps) == 1 else ("or", ps)), tokens


def _conjunction(tokens, n):
    p, tokens = _unary(tokens, n)
    ps = [p]
    while tokens[:1] == ["/\\"]:
        p, tokens = _unary(tokens[1:], n)
        ps.append(p)
    return (ps[0] if len(ps) == 1 else ("and", ps)), tokens


def _unary(tokens, n):
    if not tokens:
        raise LitmusError(f"line {n}: the condition ends too early")
    t = tokens[0]
    if t in ("~", "not"):
        p, rest = _unary(tokens[1:], n)
        return ("not", p), rest
    if t == "(":
        p, rest = _disjunction(tokens[1:], n)
        if rest[:1] != [")"]:
            raise LitmusError(f"line {n}: missing ')' in the condition")
        return p, rest[1:]
    if t in ("true", "false"):
        return (t,), tokens[1:]
    m = re.fullmatch(r"(?:(\d+):)?(\[?\w+\]?)\s*=\s*(-?(?:0x[0-9a-fA-F]+|\d+))", t)
    if not m:
        raise LitmusError(f"line {n}: cannot read {t!r} in the condition (expected 0:EAX=1 or x=1)")
    proc, loc, value = m.groups()
    return ("atom", _location(proc, loc, n), int(value, 0)), tokens[1:]


# --- running -------------------------------------------------------------------
class LitmusCPU:
    """A processor of a litmus test: its registers, and the atomics that
    install_atomics gives every explorer CPU."""

    def __init__(self, cpu_id: int, program, registers):
        self.id, self.program, self.registers = cpu_id, program, registers


class LitmusRun(Execution):
    """One schedule of a litmus test."""

    def __init__(self, test: LitmusTest, words: np.ndarray, tso: bool, prefix, **options):
        self.test, self.words = test, words  # the same words every schedule: transitions name raw addresses
        self.names = test.memory_locations
        self.addr = {name: self.words.ctypes.data + 8 * i for i, name in enumerate(self.names)}
        n = len(test.programs)
        memory = Memory(self.words.view(np.uint8), self.words.ctypes.data, 0, 8 * len(self.names), n, tso)
        super().__init__(n, memory, Interleaving(n, MAX_STEPS, memory, prefix, **options))

    def execute(self) -> Result:
        test, sched = self.test, self.sched
        for i, name in enumerate(self.names):
            self.words[i] = test.init.get(name, 0)
        cpus = []
        for p, program in enumerate(test.programs):
            registers = {reg: 0 for reg in REGISTERS}
            registers.update({reg: v for (q, reg), v in ((k, v) for k, v in test.init.items()
                                                           if not isinstance(k, str)) if q == p})
            cpu = LitmusCPU(p, program, registers)
            install_atomics(cpu, self.memory, sched.point, "")
            cpus.append(cpu)
        self.cpus = cpus
        self.run_threads(cpus)
        violations = list(sched.extra_violations)
        ended = sched.outcome == "ok" and not violations and all(s == DONE for s in sched.status)
        final = self.final_state() if ended else None
        execution = execution_of(self.memory.steps, self.n, self.memory.tso) if ended else None
        return Result(sched.outcome if not violations else "violation", [d[2] for d in sched.decisions],
                      sched.decisions, self.memory.steps, violations, sched.preemptions, 0, final, execution)

    def final_state(self) -> tuple:
        regs = tuple((p, reg, cpu.registers[reg]) for p, cpu in enumerate(self.cpus) for reg in REGISTERS)
        return regs + tuple((name, int(self.words[i])) for i, name in enumerate(self.names))

    def program(self, cpu):
        for ins in cpu.program:
            self.step(cpu, ins)

    def value(self, cpu, operand):
        kind, what = operand
        if kind == "imm":
            return what
        if kind == "reg":
            return cpu.registers[what]
        return cpu.load(self.addr[what])

    def put(self, cpu, operand, value):
        if operand[0] == "reg":
            cpu.registers[operand[1]] = value
        else:
            cpu.store(self.addr[operand[1]], value)

    def step(self, cpu, ins: Instr) -> None:
        op, dst, src = ins.op, ins.dst, ins.src
        if op == "NOP":
            return
        if op == "MFENCE":
            cpu.smp_mb()
        elif op == "MOV":
            self.put(cpu, dst, self.value(cpu, src))
        elif op == "XCHG":
            if dst[0] == "mem":
                cpu.registers[src[1]] = cpu.xchg(self.addr[dst[1]], cpu.registers[src[1]])
            else:
                cpu.registers[dst[1]], cpu.registers[src[1]] = cpu.registers[src[1]], cpu.registers[dst[1]]
        elif ins.locked:  # LOCK ADD/INC/DEC [x]
            delta = self.value(cpu, src) if op == "ADD" else (1 if op == "INC" else -1)
            cpu.fetch_add(self.addr[dst[1]], delta)
        else:
            a = self.value(cpu, dst)
            b = {"INC": 1, "DEC": 1}.get(op) if src is None else self.value(cpu, src)
            result = {"ADD": a + b, "INC": a + b, "DEC": a - b, "XOR": a ^ b, "OR": a | b}[op]
            self.put(cpu, dst, result)


def execution_of(steps, n: int, tso: bool) -> tuple:
    """The schedule's execution, named by program position (every processor
    runs straight-line code, so its k-th load or write is the same
    instruction in every schedule): for each load, the write it read (or
    the initial value), and per location the order in which writes
    reached memory."""
    buffered = [[] for _ in range(n)]  # per CPU, (addr, write) still in its store buffer
    in_memory: dict = {}
    coherence: dict = {}
    loads, writes = [0] * n, [0] * n
    rf = []

    def reach(addr, w):
        in_memory[addr] = w
        coherence.setdefault(addr, []).append(w)

    for s in steps:
        c = s.actor if s.actor < n else s.actor - n
        op = s.op.split(" ")[0]
        if s.op == "flush":
            reach(*buffered[c].pop(0))
            continue
        if "drains" in s.op:
            while buffered[c]:
                reach(*buffered[c].pop(0))
        if op == "load":
            own = [w for a, w in buffered[c] if a == s.addr]
            rf.append(((c, loads[c]), own[-1] if own else in_memory.get(s.addr, "init")))
            loads[c] += 1
        elif op == "store":
            w = (c, writes[c])
            writes[c] += 1
            if tso:
                buffered[c].append((s.addr, w))
            else:
                reach(s.addr, w)
        elif op != "smp_mb":  # a locked read-modify-write: reads memory, then writes
            rf.append(((c, loads[c]), in_memory.get(s.addr, "init")))
            loads[c] += 1
            reach(s.addr, (c, writes[c]))
            writes[c] += 1
    return tuple(sorted(rf)), tuple(sorted((a, tuple(ws)) for a, ws in coherence.items()))


@dataclass
class Outcome:
    """A test's result: final states (projected on the observed locations)
    and the executions that satisfy the condition or not."""

    test: LitmusTest
    tso: bool
    states: list  # sorted projected states, each a tuple of values in `observed` order
    positive: int
    negative: int
    report: Report

    @property
    def ok(self) -> bool:
        q = self.test.condition.quantifier
        return self.positive > 0 if q == "exists" else (self.positive == 0 if q == "~exists" else self.negative == 0)

    @property
    def verdict(self) -> str:
        """herd's kind for the test's state: Allow when a state satisfying the condition is reachable."""
        return "Allow" if self.positive > 0 else "Forbid"


def holds(prop, state: dict) -> bool:
    kind = prop[0]
    if kind == "atom":
        return state[prop[1]] == prop[2]
    if kind == "not":
        return not holds(prop[1], state)
    if kind == "and":
        return all(holds(p, state) for p in prop[1])
    if kind == "or":
        return any(holds(p, state) for p in prop[1])
    return kind == "true"


def run_test(test: LitmusTest, tso: bool = True, max_schedules: int = 200000, reduced: bool = True,
             progress=None) -> Outcome:
    """Every schedule of the test (reduced: one per class of equivalent
    interleavings; else the unbounded search with state caching, which
    reaches the same final states but not every execution)."""
    report = Report(test, "reduced" if reduced else "unbounded", None)
    words = np.zeros(max(1, len(test.memory_locations)), dtype=np.int64)

    def run(prefix, **options):
        return LitmusRun(test, words, tso, prefix, **options).execute()

    search(run, report, None, max_schedules, progress, por=reduced, cache=not reduced)
    observed = test.observed()
    states, positive, negative = set(), 0, 0
    for final, executions in report.finals.items():
        values = {(p, reg): v for p, reg, v in final[:len(REGISTERS) * len(test.programs)]}
        values.update(dict(final[len(REGISTERS) * len(test.programs):]))
        shown = tuple(values[loc] for loc in observed)
        states.add(shown)
        count = max(1, len(executions))
        if holds(test.condition.prop, values):
            positive += count
        else:
            negative += count
    return Outcome(test, tso, sorted(states), positive, negative, report)


# --- herd's output ---------------------------------------------------------------
def _loc_name(loc) -> str:
    return f"{loc[0]}:{loc[1]}" if not isinstance(loc, str) else f"[{loc}]"


def _prop_text(prop, above: str = "top") -> str:
    kind = prop[0]
    if kind == "atom":
        return f"{_loc_name(prop[1])}={prop[2]}"
    if kind == "not":
        return f"not ({_prop_text(prop[1])})"
    if kind in ("true", "false"):
        return kind
    joined = (" /\\ " if kind == "and" else " \\/ ").join(_prop_text(p, kind) for p in prop[1])
    return f"({joined})" if above == "and" and kind == "or" else joined


def condition_text(cond: Condition) -> str:
    return f"{cond.quantifier} ({_prop_text(cond.prop)})"


def herd_output(outcome: Outcome) -> list[str]:
    """herd7's result block for the test."""
    test, report = outcome.test, outcome.report
    q = test.condition.quantifier
    kind = {"exists": "Allowed", "~exists": "Forbidden", "forall": "Required"}[q]
    observed = test.observed()
    lines = [f"Test {test.name} {kind}", f"States {len(outcome.states)}"]
    for state in outcome.states:
        lines.append(" ".join(f"{_loc_name(loc)}={v};" for loc, v in zip(observed, state)))
    lines.append("Ok" if outcome.ok else "No")
    pos, neg = outcome.positive, outcome.negative
    lines += ["Witnesses", f"Positive: {neg if q == '~exists' else pos} Negative: {pos if q == '~exists' else neg}"]
    lines.append(f"Condition {condition_text(test.condition)}")
    observation = "Never" if pos == 0 else ("Always" if neg == 0 else "Sometimes")
    lines.append(f"Observation {test.name} {observation} {pos} {neg}")
    lines.append(f"Time {test.name} {report.seconds:.2f}")
    return lines


def explored_line(outcome: Outcome) -> str:
    r = outcome.report
    how = ("exhaustive: every schedule (no choice cut by a bound)" if r.exhaustive
           else f"NOT exhaustive: stopped after {r.schedules} schedules")
    return (f"Explored {outcome.test.name} ({'x86-TSO' if outcome.tso else 'SC'}): {r.schedules} schedules, "
            f"{r.complete} ran to the end, {r.blocked} cut with every actor asleep; {how}")


def load_test(path: str) -> LitmusTest:
    try:
        with open(path) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise LitmusError(f"cannot read {path}: {exc}") from None
    return parse(text)
