"""Every import inside tunelab points down a fixed order of layers, and nothing imports in a circle.

The source is parsed (nothing is imported), so imports inside functions count as much as those at
the top of a module: a lazy import still ties the two modules together. Each check collects every
violation and compares the list with [], so a failure names all of them at once.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "tunelab"

# Lowest first. A unit is a top-level module or package of tunelab; it may import units of lower
# layers only. The foundation modules of the first layer may also use each other.
LAYERS: list[tuple[str, ...]] = [
    ("tunelab", "tunelab.console", "tunelab.errors", "tunelab.fsutil", "tunelab.home", "tunelab.netserve",
     "tunelab.runtime", "tunelab.textwidth"),
    ("tunelab.store",),
    ("tunelab.data",),
    ("tunelab.models",),
    ("tunelab.inference",),
    ("tunelab.training",),
    ("tunelab.evaluation",),
    ("tunelab.monitoring",),
    ("tunelab.jobs",),
    ("tunelab.server", "tunelab.cli"),
    ("tunelab.__main__",),
]
FOUNDATION = 0

# (importing module, imported unit): why this upward or sideways import is allowed.
ALLOWED = {
    ("tunelab", "tunelab.jobs"): "the package root re-exports the notebook API (tunelab.jobs.api) on first "
                                 "attribute access; below it, only __version__ is read from the root",
}


# --- reading the import graph -------------------------------------------------------------------


def find_modules(src: Path = SRC) -> dict[str, Path]:
    """{dotted module name: file} for every module of the package; packages by their __init__."""
    modules = {}
    for path in sorted((src / ROOT).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def resolve(target: str, modules) -> str:
    """The module an import loads: the longest known module that `target` starts with."""
    parts = target.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, name: str, is_package: bool, modules) -> list[tuple[str, int, tuple[str, ...]]]:
    """(imported module, line, names imported from it) for every tunelab import in `source`,
    wherever it is (module level, functions, `if TYPE_CHECKING:` blocks). `from pkg import sub`
    counts as importing the submodule when there is one."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    found.append((resolve(alias.name, modules), node.lineno, ()))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            if base != ROOT and not base.startswith(ROOT + "."):
                continue
            plain = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    found.append((sub, node.lineno, (alias.name,)))
                else:
                    plain.append(alias.name)
            if plain:
                found.append((resolve(base, modules), node.lineno, tuple(plain)))
    return found


def import_graph(src: Path = SRC) -> list[tuple[str, str, int, tuple[str, ...]]]:
    """(importer, imported, line, names) for every import between two tunelab modules."""
    modules = find_modules(src)
    edges = []
    for name, path in modules.items():
        for target, line, names in imports_of(path.read_text(encoding="utf-8"), name,
                                              path.name == "__init__.py", modules):
            if target and target != name:
                edges.append((name, target, line, names))
    return edges


def unit(module: str) -> str:
    """The top-level module or package of tunelab that `module` belongs to."""
    return ".".join(module.split(".")[:2])


def layer_of(module: str) -> int | None:
    for i, units in enumerate(LAYERS):
        if unit(module) in units:
            return i
    return None


def where(importer: str, line: int) -> str:
    return f"{importer}:{line}"


def strongly_connected(nodes, edges) -> list[list[str]]:
    """Groups of nodes that reach each other (Tarjan), only those with more than one node."""
    succ = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)
    index, low, on_stack, stack, groups = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return groups


# --- the checks -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def cycles(edges) -> list[str]:
    """Import cycles between modules, and between packages at every depth (a package whose
    modules import another package that imports it back). Each cycle is reported once, at the
    coarsest level where it shows."""
    modules = {m for e in edges for m in e[:2]}
    depth = max(m.count(".") for m in modules)
    seen, out = set(), []
    for level in range(1, depth + 1):
        def node(m):
            return ".".join(m.split(".")[: level + 1])
        collapsed = {(node(a), node(b)) for a, b, *_ in edges if node(a) != node(b)}
        for group in strongly_connected({node(m) for m in modules}, collapsed):
            members = frozenset(m for m in modules if node(m) in group)
            if not any(members >= s for s in seen):
                seen.add(members)
                out.append(" <-> ".join(group))
    return out


def upward_imports(edges) -> list[str]:
    out = []
    for importer, imported, line, _ in edges:
        a, b = layer_of(importer), layer_of(imported)
        if unit(importer) == unit(imported) or (importer, unit(imported)) in ALLOWED:
            continue
        if a is None or b is None:
            continue  # reported by test_every_module_has_a_layer
        if b < a or (a == b == FOUNDATION):
            continue
        out.append(f"{where(importer, line)} imports {imported} (layer {b} {unit(imported)} "
                   f"from layer {a} {unit(importer)})")
    return out


def cli_imports_of_server(edges) -> list[str]:
    return [f"{where(importer, line)} imports {imported}" for importer, imported, line, _ in edges
            if unit(importer) == "tunelab.cli" and unit(imported) == "tunelab.server"]


def private_imports(edges) -> list[str]:
    out = []
    for importer, imported, line, names in edges:
        for name in names:
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                out.append(f"{where(importer, line)} imports {name} from {imported}")
    return out


def test_every_module_has_a_layer():
    missing = sorted({unit(m) for m in find_modules() if layer_of(m) is None})
    assert missing == [], "place these in LAYERS (tests/test_layering.py)"


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_imports_point_down_the_layers(graph):
    assert upward_imports(graph) == []


def test_cli_imports_the_server_only_to_serve(graph):
    assert cli_imports_of_server(graph) == []


def test_no_private_names_imported_across_modules(graph):
    assert private_imports(graph) == []


def test_allowed_exceptions_are_still_needed(graph):
    used = {(importer, unit(imported)) for importer, imported, *_ in graph}
    assert sorted(set(ALLOWED) - used) == []


# --- the checks themselves, on made-up modules --------------------------------------------------


def _fake(tmp_path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_graph_sees_lazy_relative_and_submodule_imports(tmp_path):
    src = _fake(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "data/__init__.py": "",
        "data/labels.py": "from ..errors import X\n",
        "cli/__init__.py": "",
        "cli/tool.py": ("import tunelab.data.labels\n"
                        "def run():\n    from tunelab.data import labels, thing\n    from . import other\n"),
        "cli/other.py": "from tunelab.cli.tool import _helper\n",
    })
    edges = {(a, b, names) for a, b, _, names in import_graph(src)}
    assert edges == {
        ("tunelab.data.labels", "tunelab.errors", ("X",)),
        ("tunelab.cli.tool", "tunelab.data.labels", ()),
        ("tunelab.cli.tool", "tunelab.data.labels", ("labels",)),
        ("tunelab.cli.tool", "tunelab.data", ("thing",)),
        ("tunelab.cli.tool", "tunelab.cli.other", ("other",)),
        ("tunelab.cli.other", "tunelab.cli.tool", ("_helper",)),
    }
    graph = import_graph(src)
    assert cycles(graph) == ["tunelab.cli.other <-> tunelab.cli.tool"]
    assert private_imports(graph) == ["tunelab.cli.other:1 imports _helper from tunelab.cli.tool"]
    assert upward_imports(graph) == []


def test_checks_catch_upward_imports_and_package_cycles(tmp_path):
    src = _fake(tmp_path, {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/a.py": "def f():\n    from tunelab.training.b import g\n",
        "training/__init__.py": "",
        "training/b.py": "from tunelab.data.c import h\n",
        "data/c.py": "",
        "cli/__init__.py": "",
        "cli/x.py": "from tunelab.server import app\n",
        "server/__init__.py": "",
        "server/app.py": "",
    })
    graph = import_graph(src)
    assert cycles(graph) == ["tunelab.data <-> tunelab.training"]
    assert upward_imports(graph) == [
        "tunelab.cli.x:1 imports tunelab.server.app (layer 9 tunelab.server from layer 9 tunelab.cli)",
        "tunelab.data.a:2 imports tunelab.training.b (layer 5 tunelab.training from layer 2 tunelab.data)",
    ]
    assert cli_imports_of_server(graph) == ["tunelab.cli.x:1 imports tunelab.server.app"]
