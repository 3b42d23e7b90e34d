"""The package's shape: small modules, imports one way, one error family, thin notebooks."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest

import latentshift
from latentshift import errors

PACKAGE = Path(latentshift.__file__).parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 120
#: The role subpackages, bottom first: a module imports only from its own subpackage, from one
#: below it, or from the top-level config and errors — never from one above.
LAYERS = ("data", "design", "perturb", "model", "readings", "figures", "report", "record", "run")
#: The modules that may sit at the top of the package (``config`` is a package: its modules,
#: ``config.*``, sit at the top level too).
TOP_LEVEL = {"__init__", "__main__", "config", "errors"}
#: Builtin exceptions a module may raise: programming errors only. Anything a user can cause
#: (bad params, files, gene sets, missing steps) raises a LatentshiftError subclass instead.
BUILTINS_FOR_BUGS = {
    "RuntimeError",
    "TypeError",
    "AssertionError",
    "NotImplementedError",
    "SystemExit",
}


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name below ``latentshift`` (``readings.classify``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        if rel.name == "__init__" and len(rel.parts) == 1:
            continue
        out[".".join(rel.parts)] = path
    return out


def _resolve(name: str, modules: set[str]) -> str | None:
    """The module a dotted name (below ``latentshift``) refers to: itself, or its package."""
    while name:
        if name in modules:
            return name
        if f"{name}.__init__" in modules:
            return f"{name}.__init__"
        name = name.rpartition(".")[0]
    return None


def _imports(path: Path) -> set[str]:
    """The latentshift modules a file imports, at the top or inside functions."""
    modules = set(_modules())
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "latentshift":
                names = [a.name for a in node.names]
            elif node.module.startswith("latentshift."):
                base = node.module.removeprefix("latentshift.")
                names = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            names = [
                a.name.removeprefix("latentshift.")
                for a in node.names
                if a.name.startswith("latentshift.")
            ]
        for name in names:
            target = _resolve(name, modules)
            if target:
                found.add(target)
    return found


def _layer(module: str) -> int:
    """The module's place in :data:`LAYERS` (-1: the top-level config, ``config.*``, errors)."""
    head = module.split(".")[0]
    return LAYERS.index(head) if head in LAYERS else -1


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_module_sits_in_a_role_subpackage():
    loose = {m for m in _modules() if "." not in m} - TOP_LEVEL
    assert loose == set(), f"modules outside a role subpackage: {sorted(loose)}"
    packages = {m.split(".")[0] for m in _modules() if "." in m} - TOP_LEVEL
    assert packages == set(LAYERS)
    for pkg in LAYERS:  # each subpackage names its modules
        init = importlib.import_module(f"latentshift.{pkg}")
        here = {m.split(".")[1] for m in _modules() if m.startswith(f"{pkg}.")} - {"__init__"}
        assert set(init.__all__) == here, pkg


def test_no_module_is_over_600_lines():
    long = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    assert {n: k for n, k in long.items() if k > MAX_MODULE_LINES} == {}


def test_no_function_is_over_120_lines():
    long = {}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = size
    assert long == {}


def test_folds_and_label_nulls_each_live_in_one_module():
    """One engine over units: every grouped or cell-level fold is built in ``folds``, every label
    relabelling in ``nulls``; no module is the donor twin of another."""
    fold_makers = {"StratifiedGroupKFold", "GroupKFold", "StratifiedKFold", "train_test_split"}
    makers, nulls = {}, {}
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = ast.unparse(node.func).split(".")[-1]
                if called in fold_makers:
                    makers.setdefault(called, set()).add(name)
            if isinstance(node, ast.FunctionDef) and any(
                word in node.name for word in ("relabel", "permut", "shuffle")
            ):
                nulls.setdefault(name, set()).add(node.name)
    assert all(where == {"design.folds"} for where in makers.values()), makers
    assert set(nulls) <= {"design.nulls"}, nulls
    names = {m.split(".")[-1] for m in _modules()}
    assert not {"donor_eval", "donor_shift", "case_control_findings"} & names


def test_the_import_graph_has_no_cycle_and_no_upward_import():
    graph = {name: _imports(path) - {name} for name, path in _modules().items()}
    assert _cycle(graph) is None, f"import cycle: {' → '.join(_cycle(graph) or [])}"
    upward = sorted(
        f"{name} → {dep}"
        for name, deps in graph.items()
        if name.split(".")[0] not in TOP_LEVEL
        for dep in deps
        if _layer(dep) > _layer(name)
    )
    assert upward == [], upward
    top = [deps for name, deps in graph.items() if name.split(".")[0] in {"config", "errors"}]
    assert all(_layer(dep) == -1 for dep in set().union(*top))
    # the runner never imports the CLI or the sweep; the sweep uses the runner
    assert "run.cli" not in set().union(*(v for k, v in graph.items() if k != "__main__"))
    assert "run.sweep" not in graph["run.runner"] and "run.runner" in graph["run.sweep"]


def test_no_module_imports_another_modules_private_name():
    private = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("latentshift"):
                private += [
                    f"{name}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and a.name != "__version__"
                ]
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                base = ast.unparse(node.value)
                if base in {m.split(".")[-1] for m in _modules()} - {name.split(".")[-1]}:
                    private.append(f"{name}: {base}.{node.attr}")
    assert private == []


def test_the_layer_check_finds_an_upward_import():
    assert _layer("data.load") < _layer("run.cli")
    assert _layer("config") == -1
    assert _layer("config.defaults") == -1


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_every_error_class_derives_from_the_one_base():
    for name in _modules():
        if name == "__main__":
            continue
        module = importlib.import_module(f"latentshift.{name.removesuffix('.__init__')}")
        for name, obj in inspect.getmembers(module, inspect.isclass):
            private = name.startswith("_")  # internal control flow, never reaches a user
            if (
                issubclass(obj, Exception)
                and obj.__module__.startswith("latentshift")
                and not private
            ):
                assert issubclass(obj, errors.LatentshiftError), f"{module.__name__}.{name}"


def test_user_facing_code_raises_no_bare_builtin_errors():
    bad = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                called = func.id if isinstance(func, ast.Name) else None
                if (
                    called
                    and called
                    in dir(
                        __builtins__ if isinstance(__builtins__, dict) else __import__("builtins")
                    )
                    and called not in BUILTINS_FOR_BUGS
                ):
                    bad.append(f"{name}.py:{node.lineno} raises {called}")
    assert bad == []


def test_the_cli_catches_only_the_base_error():
    tree = ast.parse((PACKAGE / "run" / "cli.py").read_text())
    caught = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            caught.update(ast.unparse(node.type).replace("(", "").replace(")", "").split(", "))
    assert caught == {"LatentshiftError", "ValueError"}  # ValueError: parsing --levels only


def test_a_bug_in_the_cli_keeps_its_traceback(monkeypatch):
    from latentshift import config
    from latentshift.run import cli

    def broken(path):
        raise KeyError("a bug")

    monkeypatch.setattr(config, "load_params", broken)
    with pytest.raises(KeyError):
        cli.main(["check", "params/demo.yaml"])


def test_a_user_error_in_the_cli_is_one_message(tmp_path):
    from latentshift.run import cli

    assert cli.main(["check", str(tmp_path / "missing.yaml")]) == 2


def _code_cells(root: Path):
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "code":
                yield path.name, i, "".join(cell["source"])


def test_notebook_code_cells_define_no_function_and_hold_no_threshold(root):
    for name, i, source in _code_cells(root):
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        tree = ast.parse("\n".join(lines))
        for node in ast.walk(tree):
            assert not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda), (
                f"{name} cell {i} defines a function: move it into latentshift"
            )
            if isinstance(node, ast.Compare):
                numbers = [
                    n
                    for n in ast.walk(node)
                    if isinstance(n, ast.Constant)
                    and isinstance(n.value, int | float)
                    and not isinstance(n.value, bool)
                ]
                assert not numbers, (
                    f"{name} cell {i} compares with a number: name the threshold in latentshift"
                )
