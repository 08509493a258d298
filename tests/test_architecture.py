"""The layer order and the size limits the design keeps: operators -> priors -> recon, no import cycles,
short modules and functions.

Imports are read from the source with ``ast``, those inside functions included (a cycle hidden in a
function is still a cycle). ``from package import name`` counts as importing the submodule when
``name`` is one, else the package.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("operators", "priors", "recon")
MAX_FILE_LINES, MAX_FUNCTION_LINES, MAX_PARAMETERS = 450, 80, 12


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports, anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


@pytest.mark.parametrize("lower", ["operators", "priors"])
def test_lower_layers_never_import_the_application(lower):
    offenders = {name: sorted(t for t in targets if t.split(".")[0] == "recon")
                 for name, targets in GRAPH.items() if name.split(".")[0] == lower}
    assert not {k: v for k, v in offenders.items() if v}
    if lower == "operators":
        assert not any(t.split(".")[0] == "priors" for n, ts in GRAPH.items() if n.startswith("operators") for t in ts)


def test_no_import_cycles():
    """Tarjan's strongly connected components: every component must be a single module."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            visit(name)
    assert not cycles


def test_files_and_functions_stay_short():
    long_files, long_functions = [], []
    for name, path in MODULES.items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            long_files.append(name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                count = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
                count += (args.vararg is not None) + (args.kwarg is not None)
                count -= bool(args.args) and args.args[0].arg in ("self", "cls")
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES or count > MAX_PARAMETERS:
                    long_functions.append(f"{name}.{node.name}")
    assert not long_files and not long_functions
