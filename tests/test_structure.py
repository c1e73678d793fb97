"""The package's structure (issue #14): building the CLI parser stays cheap, every module imports alone, search/
knows nothing of argparse, and no lower layer imports a higher one.

The layers, from the bottom up (a module may import its own layer and those below it, never one above, not even
inside a function; an entry such as "text.embedder" would place one module apart from its package):

0. foundation: the package root (`__version__`) and the single-module helpers that every layer uses and that
   import only each other: devices (device choice), faults (fault injection points), processes (pid checks),
   progress (progress bars), io (atomic files, checkpoints: devices, faults, processes), distributed (process
   groups: devices; `losses.distributed` needs it), optim (parameter groups, torch only; eval and train use it),
   serving (HTTP protocol guards, shared by search's server and the dashboard's) and rundir (the run directory's
   layout, beside io: train writes through it, the layers above read through it) with probefile (the format of its
   probe file, which rundir writes and reads).
1. losses
2. views, models, data
3. methods; eval (probes and metrics over models and data, used by train); text (text embedders and hard-negative
   mining over models, data and eval, used by train's text tasks; where `text.embedder` loads a run it reaches
   up today: see EXCEPTIONS)
4. train
5. runs
6. search, dashboard; demo (the `losses --demo` program over losses and data, imported only by the CLI); export
   (a run's encoders as sentence-transformers, safetensors or ONNX files: over runs, models and text)
7. cli and `__main__`
"""
from __future__ import annotations

import ast
import json
import pkgutil
import re
import subprocess
import sys
from multiprocessing.pool import ThreadPool
from pathlib import Path

import pytest

import contrastlab

PACKAGE = Path(contrastlab.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[1]

LAYERS = [
    ("<root>", "devices", "faults", "processes", "progress", "io", "distributed", "optim", "serving", "rundir", "probefile"),
    ("losses",),
    ("views", "models", "data"),
    ("methods", "eval", "text"),
    ("train",),
    ("runs",),
    ("search", "dashboard", "demo", "export"),
    ("cli", "__main__"),
]
LAYER = {part: level for level, parts in enumerate(LAYERS) for part in parts}

#: Imports that break the layers today and are another change's to remove: (importer module, the part of
#: contrastlab it imports from a higher layer) -> reason. Delete an entry with the imports it excuses (a test
#: fails while an entry excuses nothing).
EXCEPTIONS: dict[tuple[str, str], str] = {}

#: Heavy modules that building the `contrastlab` parser must not load.
HEAVY = ("faiss", "contrastlab.dashboard", "transformers", "torch.distributed.run")


def package_modules() -> list[str]:
    """Every module of the package, found with pkgutil over the source folders (nothing is imported)."""
    names = ["contrastlab"]

    def walk(folder: Path, prefix: str) -> None:
        for info in pkgutil.iter_modules([str(folder)]):
            names.append(prefix + info.name)
            if info.ispkg:
                walk(folder / info.name, f"{prefix}{info.name}.")
    walk(PACKAGE, "contrastlab.")
    return sorted(names)


def module_file(name: str) -> Path:
    parts = name.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports_of(name: str, known: set[str]) -> list[tuple[str, int]]:
    """The contrastlab modules that module `name` imports anywhere: see `imports_in`."""
    path = module_file(name)
    return imports_in(path.read_text(encoding="utf-8"), name, is_package=path.name == "__init__.py", known=known)


def imports_in(source: str, name: str, *, is_package: bool, known: set[str]) -> list[tuple[str, int]]:
    """The contrastlab modules that the source of module `name` imports anywhere (top level, functions,
    branches), relative imports resolved: [(module, line)]; `from pkg import sub` names the submodule when
    there is one."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "contrastlab"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "contrastlab":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.append((sub if sub in known else target, node.lineno))
    return found


def layer_part(module: str) -> str:
    """The entry of LAYERS that places `module`: the most specific one ("text.embedder" before "text"), else its
    part of contrastlab ("<root>" for the package itself)."""
    parts = module.split(".")[1:]
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in LAYER:
            return ".".join(parts[:n])
    return parts[0] if parts else "<root>"


def layer_breaks() -> dict[tuple[str, str], list[str]]:
    """Every import of a higher layer by a lower one: (importer, imported part) -> ["imported at file:line", ...]."""
    modules = package_modules()
    known = set(modules)
    unplaced = sorted({layer_part(m) for m in modules} - set(LAYER))
    assert not unplaced, f"put these parts of contrastlab into a layer of LAYERS (and say why above): {unplaced}"
    breaks: dict[tuple[str, str], list[str]] = {}
    for module in modules:
        for target, line in imports_of(module, known):
            if target.split(".")[0] == "contrastlab" and LAYER[layer_part(target)] > LAYER[layer_part(module)]:
                where = f"{target} at {module_file(module).relative_to(REPO)}:{line}"
                breaks.setdefault((module, layer_part(target)), []).append(where)
    return breaks


def import_time_graph() -> dict[str, set[str]]:
    """module -> the contrastlab modules it imports when it is imported (statements at its top level, in `if` and
    `try` blocks too; not inside functions), leaving out its own parent packages (Python imports those first)."""
    modules = package_modules()
    known = set(modules)
    graph = {}
    for name in modules:
        path = module_file(name)
        nodes: list = []

        def collect(body):
            for node in body:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    nodes.append(node)
                elif isinstance(node, ast.If):
                    collect(node.body)
                    collect(node.orelse)
                elif isinstance(node, ast.Try):
                    collect(node.body)
        collect(ast.parse(path.read_text(encoding="utf-8")).body)
        source = ast.unparse(ast.Module(body=nodes, type_ignores=[]))
        targets = set()
        for target, _ in imports_in(source, name, is_package=path.name == "__init__.py", known=known):
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    return graph


def test_no_import_cycles():
    """No two modules need each other at import time (a cycle works or breaks by import order). Checked as the
    strongly connected components of the import-time graph."""
    graph = import_time_graph()
    order, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        order[v] = low[v] = len(order)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))
    for v in sorted(graph):
        if v not in order:
            visit(v)
    assert not cycles, f"modules that import each other at import time: {cycles}"


def test_the_cycle_check_sees_a_cycle(monkeypatch):
    """The check above is not vacuous: a graph with a cycle fails it."""
    graph = import_time_graph()
    a, b = "contrastlab.train.tasks", "contrastlab.train.task_base"
    assert b in graph[a]
    monkeypatch.setattr(sys.modules[__name__], "import_time_graph", lambda: {**graph, b: graph[b] | {a}})
    with pytest.raises(AssertionError, match="modules that import each other at import time"):
        test_no_import_cycles()


def test_building_the_parser_loads_no_heavy_modules():
    code = ("import json, sys; from contrastlab.cli import build_parser; build_parser(); "
            f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    """One interpreter per module (two at a time): an import that works only after another module's is a bug."""
    modules = package_modules()
    assert {"contrastlab.cli", "contrastlab.cli.types", "contrastlab.search.indexing", "contrastlab.losses"} <= set(
        modules)

    def load(name: str):
        p = subprocess.run([sys.executable, "-c", "import importlib, sys; importlib.import_module(sys.argv[1])", name],
                           capture_output=True, text=True, timeout=600, cwd=REPO)
        return name, p.returncode, p.stderr

    with ThreadPool(2) as pool:
        results = pool.map(load, modules)
    failed, absent = [], []
    for name, code, err in results:
        if code == 0:
            continue
        missing = re.search(r"ModuleNotFoundError: No module named '([^']+)'", err)
        if missing and missing.group(1).split(".")[0] != "contrastlab":
            absent.append(f"{name} (needs {missing.group(1)})")
        else:
            failed.append(f"{name}:\n{err.strip().splitlines()[-1] if err.strip() else f'exit code {code}'}")
    assert not failed, "these modules do not import alone:\n" + "\n".join(failed)
    if absent:
        pytest.skip(f"{len(modules) - len(absent)} modules import alone; these need optional packages that are not "
                    f"installed: {', '.join(absent)}")


def test_search_knows_nothing_of_argparse():
    users = [str(p.relative_to(REPO)) for p in sorted((PACKAGE / "search").rglob("*.py"))
             if re.search(r"\bargparse\b", p.read_text(encoding="utf-8"))]
    assert users == [], f"argparse belongs to contrastlab.cli; these search modules name it: {users}"


def test_no_lower_layer_imports_a_higher_one():
    breaks = {pair: where for pair, where in layer_breaks().items() if pair not in EXCEPTIONS}
    assert not breaks, "lower layers import higher ones:\n" + "\n".join(
        f"{a} (layer {LAYER[layer_part(a)]}) -> {b} (layer {LAYER[b]}): {', '.join(w)}"
        for (a, b), w in sorted(breaks.items()))


def test_every_layer_exception_still_excuses_an_import():
    stale = sorted(set(EXCEPTIONS) - set(layer_breaks()))
    assert not stale, f"these imports are gone: delete their entries from EXCEPTIONS: {stale}"


def test_the_import_resolver_sees_relative_and_function_level_imports():
    """The static check on hand-made sources, every form of import resolved by hand."""
    known = {"contrastlab", "contrastlab.devices", "contrastlab.train", "contrastlab.train.config",
             "contrastlab.losses", "contrastlab.search.index"}
    source = ("import os\nfrom .. import devices\nfrom ..train import config, Trainer\nimport contrastlab.losses\n"
              "def f():\n    from ..search.index import VectorIndex\n    from ... import beyond_the_top\n")
    got = imports_in(source, "contrastlab.methods.probe", is_package=False, known=known)
    assert sorted(got) == [("contrastlab.devices", 2), ("contrastlab.losses", 4), ("contrastlab.search.index", 6),
                           ("contrastlab.train", 3), ("contrastlab.train.config", 3)]
    got = imports_in("from . import devices\nfrom .train import x\n", "contrastlab", is_package=True, known=known)
    assert sorted(got) == [("contrastlab.devices", 1), ("contrastlab.train", 2)]
    assert layer_part("contrastlab") == "<root>" and layer_part("contrastlab.search.index") == "search"
    LAYER["search.index"] = LAYER["search"]
    try:
        assert layer_part("contrastlab.search.index.deeper") == "search.index"
    finally:
        del LAYER["search.index"]
