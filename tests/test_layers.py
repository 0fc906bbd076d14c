"""The package's layers (docs/architecture.md): imports go only downwards, never in a circle, and
never from inside a function.  Read from the source with ``ast`` (no import, no Orthanc)."""

import ast
import os

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "pythanc")

# Bottom to top.  A module may import modules of its own layer or of a lower one.
LAYERS = [
    ("core", ["pythanc.core"]),
    ("generated", ["pythanc._generated"]),
    ("hand-written SDK", ["pythanc.sdk"]),
    ("workers", ["pythanc.workers"]),
    ("callbacks", ["pythanc.callbacks"]),
    ("life cycle", ["pythanc.lifecycle"]),
    ("CLI and testing", ["pythanc.cli", "pythanc.testing"]),
]
BUILD_TIME = "pythanc._build"


def layer_of(module):
    if module == "pythanc":
        return -1  # the package's __init__: imports nothing of pythanc, imported by anyone
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    if module == BUILD_TIME or module.startswith(BUILD_TIME + "."):
        return "build"
    return None


def source_modules():
    """``{module name: path}`` of every hand-written Python module of the package."""
    found = {}
    for folder, dirs, files in os.walk(SRC):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "_generated", "lib", "_cffi_build")]
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), os.path.dirname(SRC))[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                found[".".join(rel)] = os.path.join(folder, f)
    return found


def _is_package(path):
    return os.path.basename(path) == "__init__.py"


def imports_of(module, path):
    """``[(imported pythanc module, line, inside a function)]`` of one source file."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = module if _is_package(path) else module.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((alias.name, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module
                for alias in child.names:
                    # "from . import x" / "from .pkg import mod": the module itself when it is one
                    candidate = target + "." + alias.name
                    found.append((candidate if candidate in MODULES else target, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return [(m, line, f) for m, line, f in found if m == "pythanc" or m.startswith("pythanc.")]


MODULES = source_modules()


def test_every_module_belongs_to_a_layer():
    assert len(MODULES) > 20
    assert [m for m in MODULES if layer_of(m) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_only_downwards(module):
    source = layer_of(module)
    wrong = []
    for target, line, in_function in imports_of(module, MODULES[module]):
        t = layer_of(target)
        if in_function:
            wrong.append("line %d: %s imported inside a function" % (line, target))
        elif source == "build" or t == "build":
            if source != t and module != "pythanc.cli":
                wrong.append("line %d: %s crosses between build time and run time" % (line, target))
        elif t is None or t > source:
            wrong.append("line %d: %s (layer %s) is above %s (layer %s)"
                         % (line, target, LAYERS[t][0] if t is not None else "?", module, LAYERS[source][0]))
    assert wrong == []


def test_no_import_cycle():
    graph = {m: {t for t, _, _ in imports_of(m, p) if t in MODULES and t != m} for m, p in MODULES.items()}
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return None
        if state.get(m) == "visiting":
            return path[path.index(m):] + [m]
        state[m] = "visiting"
        for t in sorted(graph[m]):
            cycle = visit(t, path + [m])
            if cycle:
                return cycle
        state[m] = "done"
        return None

    for m in sorted(graph):
        cycle = visit(m, [])
        assert cycle is None, " -> ".join(cycle)


# The core modules that are pure Python (no cffi): the worker processes may import them.
PURE_CORE = {"pythanc.core.errors", "pythanc.core.tracebacks", "pythanc.core.logbridge", "pythanc.core.script_env"}


def test_worker_side_needs_no_plugin_library():
    """The worker processes run outside Orthanc: their side imports nothing that needs cffi's
    plugin library (only the pure-Python modules of the core, which import no other)."""
    for module in ("pythanc.workers.worker", "pythanc.workers.child.orthanc"):
        targets = {t for t, _, _ in imports_of(module, MODULES[module])}
        assert targets <= PURE_CORE | {"pythanc.workers.worker"}, (module, targets)
    for module in PURE_CORE:
        targets = {t for t, _, _ in imports_of(module, MODULES[module])}
        assert targets <= PURE_CORE, (module, targets)


def test_generated_module_imports_only_the_core():
    """The generated layer (``_generated/api.py``, written at build time) sits on the core only:
    the hand-written names it lists are bound from above (``lifecycle.module``)."""
    from pythanc._build import generate, sdkmodel
    tree = ast.parse(generate.python_module(sdkmodel.parse()))
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            targets.add(node.module)
        elif isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
    assert targets and all(layer_of(t) == 0 for t in targets), targets
