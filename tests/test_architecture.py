"""The layout reads as the data flow, checked from the source of the package (module-level imports and
those inside functions alike):

- imports point back along the data flow only: config -> inputs -> candidates -> training -> search ->
  final -> report -> cli, plus the shared runtime, stats and storage; no cycle;
- every private name of Keras, TensorFlow or Optuna the package uses (an `_name` attribute, an
  overridden `_name` method, a private module, and the keys Optuna keeps in a trial's system attrs)
  is used in that library's one compat module only;
- every record key, at any depth, is spelled in the schema module only;
- TensorFlow is imported by the backend seam only, and validating a configuration loads no storage.
"""

import ast
import dataclasses
import functools
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from study.config import StudyConfig

PACKAGE = Path(__file__).resolve().parents[1] / "study"
SCHEMA = "study.storage._schema"
BACKEND = "study.runtime._backend"

# The stages in data-flow order: a stage imports itself and earlier stages (and the shared packages).
STAGES = ("config", "inputs", "candidates", "training", "search", "final", "report", "cli")
# Shared by every stage, each importing only what is listed (runtime and stats: nothing of the package).
SHARED = {"runtime": {"runtime"}, "stats": {"stats"}, "storage": {"runtime", "storage"}}
# The libraries whose private names live in one compat module each.
COMPAT = {"keras": "study.runtime._keras_compat", "tensorflow": "study.runtime._keras_compat",
          "optuna": "study.storage._optuna_compat"}


def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): path
        for path in PACKAGE.rglob("*.py")
    }


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _imports(path: Path) -> set[str]:
    """Every study module a file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("study"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("study"))
    return found


def _package(module: str) -> str:
    """The layer a module belongs to: `study.search._objective` -> search; the entry points are cli."""
    parts = module.split(".")
    if module in ("study", "study.run", "study.report.__main__"):
        return "cli"
    return parts[1]


def _allowed(package: str) -> set[str]:
    if package in SHARED:
        return SHARED[package]
    if package == "config":  # validating a configuration loads no storage, statistics or model
        return {"config", "runtime"}
    earlier = STAGES[: STAGES.index(package) + 1]
    return {*earlier, *SHARED}


def layering_violations() -> list[str]:
    modules = _modules()
    found = []
    for name, path in sorted(modules.items()):
        mine = _package(name)
        for imported in sorted(_imports(path)):
            if imported not in modules or imported == "study":
                continue
            theirs = _package(imported)
            if theirs not in _allowed(mine):
                found.append(f"{name} ({mine}) imports {imported} ({theirs})")
    return found


def test_imports_follow_the_data_flow():
    assert not layering_violations(), "\n".join(layering_violations())


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


# --- private internals --------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def library_privates(library: str) -> frozenset[str]:
    """Every private name a library defines: functions, classes, attributes it sets, names it assigns."""
    folder = Path(importlib.util.find_spec(library).origin).parent
    pattern = re.compile(r"(?:def|class)\s+(_[A-Za-z]\w*)|\.(_[A-Za-z]\w*)\s*(?::[^=\n]*)?=(?!=)|^\s*(_[A-Za-z]\w*)\s*[:=]"
                         r"|attr\(\s*\w+\s*,\s*[\"'](_[A-Za-z]\w*)[\"']", re.M)
    names = set()
    for path in folder.rglob("*.py"):
        for match in pattern.finditer(path.read_text(errors="replace")):
            names.add(next(group for group in match.groups() if group))
    return frozenset(name for name in names if not name.endswith("__"))


@functools.lru_cache(maxsize=None)
def optuna_system_attr_keys() -> frozenset[str]:
    """The keys Optuna itself keeps in a trial's system attrs (`fixed_params`, `grid_id`, ...)."""
    folder = Path(importlib.util.find_spec("optuna").origin).parent
    pattern = re.compile(r"system_attrs\[\"(\w+)\"\]|\"(\w+)\" in \w+\.system_attrs|set_trial_system_attr\([^,]+,\s*\"(\w+)\"")
    keys = set()
    for path in folder.rglob("*.py"):
        for match in pattern.finditer(path.read_text(errors="replace")):
            keys.add(next(group for group in match.groups() if group))
    return frozenset(keys)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def private_uses(path: Path) -> tuple[set[str], set[str]]:
    """(private names a module reaches, private modules it imports). A name the package defines itself
    (a function, a class, an attribute set on self, a module-level name) is its own, unless reached
    through `super()` or defined as an override in a class with bases (a library's hook)."""
    tree = _tree(path)
    own, reached, modules = set(), set(), set()
    other_modules = set()  # names bound to modules of other libraries (os, sys, ...): their privates are theirs
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] not in COMPAT and parts[0] != "study":
                    other_modules.add(alias.asname or parts[0])
                if any(_private(p) for p in parts) or parts[:2] in (["keras", "src"], ["tensorflow", "python"]):
                    modules.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] in COMPAT and (any(_private(p) for p in parts) or parts[1:2] in (["src"], ["python"])):
                modules.add(node.module)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(item.name):
                    (reached if node.bases else own).add(item.name)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
            own.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Attribute) and _private(target.attr):
                    own.add(target.attr)
                elif isinstance(target, ast.Name) and _private(target.id):
                    own.add(target.id)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            through_super = isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "super"
            if through_super or (node.attr not in own and getattr(node.value, "id", None) not in other_modules):
                reached.add(node.attr)
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _private(node.args[1].value)):
            reached.add(node.args[1].value)
    return reached, modules


def private_violations() -> list[str]:
    found = []
    optuna_keys = optuna_system_attr_keys()
    for name, path in sorted(_modules().items()):
        reached, modules = private_uses(path)
        for attr in sorted(reached):
            owners = [lib for lib in COMPAT if attr in library_privates(lib)]
            allowed = sorted({COMPAT[lib] for lib in owners})
            if owners and name not in allowed:
                found.append(f"{name}: {'/'.join(owners)} private {attr} (allowed in {' or '.join(allowed)} only)")
        for module in sorted(modules):
            library = module.split(".")[0]
            if COMPAT.get(library) != name:
                found.append(f"{name}: private module {module} (allowed in {COMPAT.get(library)} only)")
        if name != COMPAT["optuna"]:
            for key in sorted(optuna_keys & _string_constants(path)):
                found.append(f"{name}: Optuna's own system attr key {key!r} (allowed in {COMPAT['optuna']} only)")
    return found


def test_private_internals_are_reached_from_their_compat_module_only():
    assert not private_violations(), "\n".join(private_violations())


def test_the_private_check_sees_what_the_compat_modules_use():
    """Not vacuous: the names each compat module needs are found as the libraries' privates."""
    keras_reached, keras_modules = private_uses(PACKAGE / "runtime" / "_keras_compat.py")
    optuna_reached, _ = private_uses(PACKAGE / "storage" / "_optuna_compat.py")
    privates = library_privates("keras") | library_privates("tensorflow")
    assert {"_run_through_graph", "_nodes_by_depth", "_get_variable_index", "_all_reduce_sum_gradients",
            "_inbound_nodes", "_keras_history", "_momentums", "_velocities"} <= keras_reached & privates
    assert keras_modules == {"keras.src.ops.function"}
    assert {"_create_new_trial", "_storage", "_trial_id"} <= optuna_reached & library_privates("optuna")
    assert "fixed_params" in optuna_system_attr_keys()


# --- record keys --------------------------------------------------------------------------------


def _string_constants(path: Path) -> set[str]:
    """The string literals of a file's code: docstrings (they may show a key in an example) and `__all__`
    (names of the module's functions) left out."""
    tree = _tree(path)
    skipped = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            skipped.update(id(inner) for inner in ast.walk(node.value))
    return {
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped
    }


def record_keys() -> set[str]:
    """Every key of the schema module: its upper-case string constants (top level and nested keys alike)."""
    tree = _tree(_modules()[SCHEMA])
    return {
        node.value.value for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)
    }


def record_key_violations() -> list[str]:
    keys = record_keys()
    fields = {f.name for f in dataclasses.fields(StudyConfig)}  # the config record's keys are its fields
    return [
        f"{name}: {key!r}"
        for name, path in sorted(_modules().items()) if name != SCHEMA
        for key in sorted((keys - (fields if name == "study.config" else set())) & _string_constants(path))
    ]


def test_every_record_key_is_spelled_in_the_schema_only():
    keys = record_keys()
    assert {"candidate", "final", "prune_reason", "config", "repeat_values", "tied_with_winner",  # top level
            "runs", "test_accuracy", "artifact_id", "mean", "variance", "counts", "fingerprint", "pid"} <= keys  # nested
    assert not record_key_violations(), "\n".join(record_key_violations())


# --- the backend seam and a light configuration -------------------------------------------------


def tensorflow_importers() -> list[str]:
    found = []
    for name, path in sorted(_modules().items()):
        for node in ast.walk(_tree(path)):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(n == "tensorflow" or n.startswith("tensorflow.") for n in names) and name != BACKEND:
                found.append(f"{name} imports {names[0]}")
    return found


def test_tensorflow_is_imported_by_the_backend_seam_only():
    assert not tensorflow_importers(), "\n".join(tensorflow_importers())


def test_validating_a_configuration_loads_neither_storage_nor_tensorflow():
    code = ("import sys\n"
            "from study.config import StudyConfig\n"
            "StudyConfig(dataset='synthetic', strategy='layer').validate()\n"
            "from study.cli import parse_args\n"
            "parse_args(['--dataset', 'synthetic'])\n"
            "loaded = [m for m in ('optuna', 'sqlalchemy', 'study.storage', 'tensorflow', 'keras') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert run.returncode == 0, run.stderr
