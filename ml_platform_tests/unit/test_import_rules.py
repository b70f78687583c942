"""The import rules of docs/design.md, read off the package's own import graph: every import of every
module, at its top and inside its functions (an import inside a function still ties two modules).

- Layers. Every module of the package belongs to exactly one layer of ``LAYERS`` (the longest
  entry that names it or a package above it), and imports only modules of its own layer or of the
  layers below. docs/design.md shows the same table (``layers_markdown``), checked here.
- No cycle. Importing ``a.b.c`` runs the package ``a.b`` first, so it counts as importing ``a.b``
  too (how a backend module importing its package's ``__init__`` closed a circle); the root package
  ``ml_platform`` is left out of that, its lazy ``defs`` / ``load_production_model`` being the users'
  entry points.
- The two bottom layers (the leaves, the rules and the ML) are free of Dagster: neither they nor
  any module of the package they import imports ``dagster`` (or a ``dagster_*`` library).
"""

from __future__ import annotations

import ast
from pathlib import Path

from ml_platform_tests.support.constants import ROOT

PACKAGE = "ml_platform"
# From the bottom up: (what the layer is, the modules and packages in it, relative to ml_platform;
# "" is the root package).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("leaves", ("constants", "errors", "paths", "storage", "memory", "settings", "clock")),
    (
        "the rules and the ML, free of Dagster",
        (
            "quality",
            "encoding",
            "signature",
            "row_plan",
            "compiled",
            "drift",
            "user_code",
            "metrics",
            "estimators",
            "intervals",
            "decision",
            "slices",
            "ml",
            "tracking",
            "day_work",
            "recipe",
            "version_record",
            "pointer",
            "model_metrics",
            "traffic",
            "outcomes",
            "estimate",
            "rollout",
            "asset_records",
        ),
    ),
    ("the pipelines file", ("spec", "reference", "loading")),
    ("the contracts and their backends", ("resources", "backends", "retries", "checked_model")),
    (
        "a pipeline at run time and its Dagster definitions",
        (
            "runtime",
            "partitions",
            "timeouts",
            "metadata",
            "instance_queries",
            "tracked",
            "checks",
            "assets",
            "jobs",
            "schedules",
            "sensors",
            "factory",
        ),
    ),
    ("the entry points", ("", "definitions", "cli", "serving", "demo")),
)
FREE_OF_DAGSTER_LAYERS = 2  # the bottom two


def _dotted(entry: str) -> str:
    return f"{PACKAGE}.{entry}" if entry else PACKAGE


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the longest entry naming ``module`` or a package above it."""
    best, best_length = None, -1
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            name = _dotted(entry)  # the root package is an entry of its own, not all the package
            if (module == name or (entry and module.startswith(name + "."))) and len(name) > best_length:
                best, best_length = index, len(name)
    return best


def layers_markdown() -> str:
    """LAYERS as docs/design.md lists them."""
    lines = []
    for number, (title, entries) in enumerate(LAYERS, start=1):
        names = ", ".join(
            "the root package" if not e else (f"`{e}/`" if (ROOT / PACKAGE / e).is_dir() else f"`{e}.py`")
            for e in entries
        )
        lines.append(f"{number}. {title}: {names};")
    return "\n".join(lines)


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """{dotted module name: file} of every module of the package (a package is its __init__)."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported_names(name: str, path: Path) -> set[str]:
    """Every module name ``name``'s file imports, anywhere in it (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def import_graph(root: Path = ROOT) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({module: the package's modules it imports}, {module: the outside top-level packages it imports})."""
    files = module_files(root)
    inside: dict[str, set[str]] = {}
    outside: dict[str, set[str]] = {}
    for name, path in files.items():
        targets, others = set(), set()
        for imported in imported_names(name, path):
            if imported.split(".")[0] != PACKAGE:
                others.add(imported.split(".")[0])
                continue
            parts = imported.split(".")
            # The module itself when it is one (``from pkg import name`` may name an attribute), and
            # every package above it but the root, which Python runs first.
            for end in range(2, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if candidate in files and candidate != name:
                    targets.add(candidate)
        inside[name], outside[name] = targets, others
    return inside, outside


class _Tarjan:
    """Tarjan's strongly connected components of ``graph``."""

    def __init__(self, graph: dict[str, set[str]]) -> None:
        self.graph = graph
        self.index: dict[str, int] = {}
        self.low: dict[str, int] = {}
        self.stack: list[str] = []
        self.on_stack: set[str] = set()
        self.found: list[list[str]] = []

    def visit(self, node: str) -> None:
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)
        for target in sorted(self.graph.get(node, ())):
            if target not in self.index:
                self.visit(target)
                self.low[node] = min(self.low[node], self.low[target])
            elif target in self.on_stack:
                self.low[node] = min(self.low[node], self.index[target])
        if self.low[node] == self.index[node]:
            self._pop_component(node)

    def _pop_component(self, node: str) -> None:
        component = []
        while True:
            member = self.stack.pop()
            self.on_stack.discard(member)
            component.append(member)
            if member == node:
                break
        if len(component) > 1:
            self.found.append(sorted(component))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a path."""
    tarjan = _Tarjan(graph)
    for node in sorted(graph):
        if node not in tarjan.index:
            tarjan.visit(node)
    return tarjan.found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def dagster_paths(graph: dict[str, set[str]], outside: dict[str, set[str]], start: str) -> list[str]:
    """Each module reachable from ``start`` that imports dagster, as 'a -> b -> c (imports dagster)'."""
    paths = []
    for module in sorted(reachable(graph, start)):
        if any(p == "dagster" or p.startswith("dagster_") for p in outside.get(module, ())):
            paths.append(f"{start} ... {module} (imports dagster)")
    return paths


def test_the_package_has_no_import_cycle():
    graph, _ = import_graph()
    found = cycles(graph)
    assert not found, f"modules that import each other (maybe inside a function), in circles: {found}"


def test_the_rules_and_the_ml_never_import_dagster():
    graph, outside = import_graph()
    free = [m for m in graph if (layer_of(m) or 0) < FREE_OF_DAGSTER_LAYERS]
    assert "ml_platform.ml" in free and "ml_platform.quality.rules" in free
    assert [path for module in sorted(free) for path in dagster_paths(graph, outside, module)] == []


def test_every_module_is_in_a_layer():
    graph, _ = import_graph()
    assert [m for m in sorted(graph) if layer_of(m) is None] == [], "add them to LAYERS (and docs/design.md)"
    named = [_dotted(e) for _, entries in LAYERS for e in entries]
    assert [n for n in named if n not in graph] == [], "LAYERS names modules that are gone"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a module from a layer above its own, as 'a (layer) -> b (layer)'."""
    found = []
    for module in sorted(graph):
        for target in sorted(graph[module]):
            here, there = layer_of(module), layer_of(target)
            if here is not None and there is not None and there > here:
                found.append(f"{module} ({LAYERS[here][0]}) -> {target} ({LAYERS[there][0]})")
    return found


def test_each_layer_imports_only_its_own_and_the_layers_below():
    graph, _ = import_graph()
    assert upward_imports(graph) == []


def test_docs_design_lists_the_layers_of_the_test():
    text = (ROOT / "docs" / "design.md").read_text()
    assert layers_markdown() in text, f"docs/design.md's list of layers should read:\n{layers_markdown()}"


def test_the_checks_see_what_they_are_meant_to(tmp_path):
    """The checks themselves, on a small package written here: a cycle closed inside a function and
    through a package's __init__ is found, so is dagster imported two modules away, and so is a
    leaf importing an entry point inside a function."""
    package = tmp_path / PACKAGE
    (package / "backends").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "backends" / "__init__.py").write_text("def chosen():\n    from . import local\n")
    (package / "backends" / "local.py").write_text("from ml_platform.backends import base\n")
    (package / "backends" / "base.py").write_text("X = 1\n")
    (package / "ml.py").write_text("def fit():\n    from ml_platform import helpers\n")
    (package / "helpers.py").write_text("import dagster as dg\n")
    (package / "errors.py").write_text("def hint():\n    from ml_platform.cli import main\n")
    (package / "cli.py").write_text("def main():\n    pass\n")
    graph, outside = import_graph(tmp_path)
    assert upward_imports(graph) == ["ml_platform.errors (leaves) -> ml_platform.cli (the entry points)"]
    assert cycles(graph) == [["ml_platform.backends", "ml_platform.backends.local"]]
    assert dagster_paths(graph, outside, "ml_platform.ml") == [
        "ml_platform.ml ... ml_platform.helpers (imports dagster)"
    ]
