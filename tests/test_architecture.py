"""The layout reads as the data flow: no import cycle, private internals in one module, record
keys spelled once (issue: "A layout that reads as the data flow")."""

import ast
import dataclasses
from pathlib import Path

import study.records as records
from study.config import StudyConfig

PACKAGE = Path(__file__).resolve().parents[1] / "study"
PRIVATE = ("._storage", "._trial_id", "._keras_history", "._inbound_nodes", "make_node_key", "._momentums",
           "._velocities", "keras.src")


def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): path
        for path in PACKAGE.rglob("*.py")
    }


def _imports(path: Path) -> set[str]:
    """Every study module a file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("study"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("study"))
    return found


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(name, path):
        state[name] = 1
        for nxt in sorted(graph[name]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, name, nxt]))
            if nxt not in state:
                visit(nxt, [*path, name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_private_internals_are_reached_from_compat_only():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {needle}"
        for name, path in _modules().items() if name != "study.compat"
        for needle in PRIVATE if needle in path.read_text()
    ]
    assert not offenders, offenders


def _string_constants(path: Path) -> set[str]:
    """The string literals of a file's code (docstrings left out: they may show a key in an example)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }


def test_every_record_key_is_spelled_once():
    keys = {value for name, value in vars(records).items() if name.isupper() and isinstance(value, str)}
    assert {"candidate", "final", "prune_reason", "config", "repeat_values", "tied_with_winner"} <= keys
    fields = {f.name for f in dataclasses.fields(StudyConfig)}  # a field may share a key's name
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {key!r}"
        for name, path in _modules().items() if name != "study.records"
        for key in (keys - (fields if name == "study.config" else set())) & _string_constants(path)
    ]
    assert not offenders, offenders
