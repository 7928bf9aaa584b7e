"""The layout rules: imports run one way (import-linter's contracts in
pyproject.toml), no import circle anywhere, no class or function over 150
lines, no import hidden in a function, and every module of percpu/ names
the kernel file it stands for or says it is harness. Each checker is also
shown to catch a deliberately broken case."""
import ast
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import percpu

REPO = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
SOURCES = [REPO / d for d in ("percpu", "workers", "cli", "bench")]
MAX_LINES = 150
# Imports inside a function, each with the reason it is not at the top.
FUNCTION_IMPORTS_ALLOWED = {
    ("sweep.py", "sweep_command"): "matplotlib costs a second: only when a sweep draws",
    ("__init__.py", "main"): "the console script chooses the engine before the kernel is imported",
}

FIND_CYCLES = """
import sys, grimp
graph = grimp.build_graph("percpu")
for importer in sorted(graph.modules):
    for imported in sorted(graph.find_modules_directly_imported_by(importer)):
        if graph.chain_exists(importer=imported, imported=importer):
            print(importer, "->", imported)
"""


def _run(args, pythonpath, cwd):
    # cwd and PYTHONPATH decide which percpu is analysed: the installed one
    # (the source tree lacks cli/ and workers/ under percpu/) or a copy
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def lint_imports(pythonpath, cwd):
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    return _run([lint, "--config", str(PYPROJECT), "--no-cache"], pythonpath, cwd)


def import_cycles(pythonpath, cwd):
    return _run([sys.executable, "-c", FIND_CYCLES], pythonpath, cwd)


INSTALLED = pathlib.Path(percpu.__file__).resolve().parent.parent


def test_imports_run_one_way(tmp_path):
    done = lint_imports(INSTALLED, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_no_import_circle_anywhere(tmp_path):
    done = import_cycles(INSTALLED, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "", f"import circles:\n{done.stdout}"


def _children(package: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in package.iterdir() if (p.suffix == ".py" and p.name != "__init__.py")
            or (p / "__init__.py").exists()]


def test_every_module_with_siblings_is_ordered_by_a_contract():
    """The top contract orders percpu's own children; a circle deeper down is
    caught only where a contract orders that package's modules: every module
    with siblings must be named by one."""
    import tomllib

    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    named = set()
    for contract in contracts[1:]:
        prefixes = [f"{c}." for c in contract.get("containers", [])] or [""]
        for layer in contract.get("layers", contract.get("modules", [])):
            named.update(prefix + name.strip() for name in layer.split("|") for prefix in prefixes)
    top = INSTALLED / "percpu"
    missing = []
    for path in top.rglob("*.py"):
        if path.name == "__init__.py" or path.parent == top or len(_children(path.parent)) < 2:
            continue
        module = ".".join(path.relative_to(INSTALLED).with_suffix("").parts)
        if not any(module == n or module.startswith(n + ".") for n in named):
            missing.append(module)
    assert not missing, f"modules no contract orders: {missing}"


def test_a_circle_is_caught(tmp_path):
    """The deliberately broken case: the machine importing the kernel."""
    copy = tmp_path / "site"
    shutil.copytree(INSTALLED / "percpu", copy / "percpu", ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "percpu" / "machine" / "segment.py", "a") as f:
        f.write("\nimport percpu.linux.kernel.fork  # a circle: machine -> kernel -> machine\n")
    lint = lint_imports(copy, copy)
    assert lint.returncode != 0 and "percpu.machine is not allowed to import percpu.linux" in lint.stdout, lint.stdout
    cycles = import_cycles(copy, copy)
    assert "percpu.machine.segment -> percpu.linux.kernel.fork" in cycles.stdout, cycles.stdout + cycles.stderr


def _definitions(source: str):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node


def long_definitions(source: str) -> list[str]:
    return [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in _definitions(source)
            if node.end_lineno - node.lineno + 1 > MAX_LINES]


def function_imports(source: str) -> list[str]:
    return [node.name for node in _definitions(source) if not isinstance(node, ast.ClassDef)
            and any(isinstance(sub, (ast.Import, ast.ImportFrom)) for sub in ast.walk(node))]


def _sources():
    return [p for root in SOURCES for p in sorted(root.rglob("*.py"))]


def test_no_class_or_function_over_150_lines():
    found = {str(p.relative_to(REPO)): long_definitions(p.read_text()) for p in _sources()}
    assert not {p: d for p, d in found.items() if d}


def test_no_import_inside_a_function():
    found = [(p.name, name) for p in _sources() for name in function_imports(p.read_text())]
    assert set(found) <= set(FUNCTION_IMPORTS_ALLOWED), found


def test_the_source_checks_catch_broken_cases():
    body = "".join(f"    x = {i}\n" for i in range(MAX_LINES))
    assert long_definitions(f"def f():\n{body}") == [f"f ({MAX_LINES + 1} lines)"]
    assert long_definitions(f"def f():\n{body[:-len('    x = 149')-1]}") == []
    assert function_imports("def f():\n    import os\n") == ["f"]


def expected_first_line(path: pathlib.Path) -> str:
    """percpu/linux/kernel/fork.py stands for kernel/fork.c, .../include_/...
    for a .h in include/ (`include` is a keyword of Cython's .pxd files), a
    package's __init__.py for the header of its name"""
    rel = path.relative_to(REPO / "percpu" / "linux").with_suffix("")
    if rel.name == "__init__":
        rel = rel.parent
    if rel.parts[0] == "include_":
        return f"{pathlib.PurePath('include', *rel.parts[1:])}.h"
    return f"{rel}.c"


@pytest.mark.parametrize("path", sorted((REPO / "percpu").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_each_module_names_its_kernel_file_or_says_harness(path):
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, "no docstring"
    first = docstring.splitlines()[0]
    # include/linux/sched.h beside include/linux/sched/: a package standing for a header
    header_package = path.name == "__init__.py" and "include_" in path.parts and path.parent.name == "sched"
    if path.parent.name == "strategies" or (path.name == "__init__.py" and not header_package):
        return  # packages describe their room; a strategy names its scheme and source
    if (REPO / "percpu" / "linux") in path.parents:
        assert first.startswith(expected_first_line(path) + ":"), first
    else:
        assert first.startswith("Harness:"), first


def test_the_kernel_file_rule_reads_paths_right():
    linux = REPO / "percpu" / "linux"
    assert expected_first_line(linux / "kernel" / "fork.py") == "kernel/fork.c"
    assert expected_first_line(linux / "include_" / "linux" / "sched" / "__init__.py") == "include/linux/sched.h"
    assert expected_first_line(linux / "include_" / "linux" / "sched" / "mm.py") == "include/linux/sched/mm.h"
    assert expected_first_line(linux / "arch" / "x86" / "mm" / "tlb.py") == "arch/x86/mm/tlb.c"
