"""The package's import structure: layers that import only downwards, and no import circle.

Every module of ``theseus`` belongs to one layer (by the longest matching name in
:data:`LAYERS`). A module may import from its own unit (``theseus.data`` from
``theseus.data``) and from any unit of a lower layer; units that share a layer are
independent and import nothing from each other. Imports inside functions (the lazy
imports that keep ``theseus --help`` fast) count like any other; imports under
``if TYPE_CHECKING:`` count for the layers (they still say what a module knows about)
but not for circles (they never run). :data:`ALLOWED` lists the exceptions, each with
its reason; it is empty, and should stay so.

Why each layer sits where it does, lowest first:

0. ``theseus`` (the version) and ``errors``: everything raises :class:`TheseusError`.
1. ``fsio`` (atomic writes), ``names`` (safe run names), ``interrupt`` (Ctrl-C handling) and
   ``progress`` (the progress display): small helpers over errors.
2. ``config`` (fields, schema, YAML), ``registry`` (name → class; built-in entries are
   imported by *name*, so the registry never imports what it lists) and ``request`` (the
   hardware section of a run YAML): what every job, model and tool is declared with.
3. ``base``: mesh axes, hardware, processes and the compile cache; configurable, knows no job.
4. ``rundir``: the paths and files of one run directory (the dashboard and dispatch read it
   without JAX).
5. ``checkpoint``: the one owner of the checkpoint layout (item names, ``latest``, checksums).
6. ``job``: the lifecycle of a job in its run directory (resume, preemption, status).
7. ``data``, ``model`` and ``runconfig``: tokenization jobs and data loading; models and
   their sharding; reading a run YAML for a job. Each stands on the job and config layers
   and none needs another.
8. ``trained_run``: the trained model in a run directory (config → model class, tokenizer,
   parameters of a checkpoint); it reads models, data identities and checkpoints.
9. ``inference``: generation, with a KV cache or by recomputation, from a model or a run.
10. ``evaluation``: evaluations score a model through the generator and a run's checkpoint.
11. ``training``: the loop; it hosts an evaluator at each validation.
12. ``recipes``, ``experiments``, ``export``, ``quick``, ``keys``: the built-in and the user's
    jobs, exporting a run, the notebook API, the key reference — all built from the layers below.
13. ``dispatch``: sends a run YAML for a job to other machines.
14. ``web``: the dashboard, which also lists submitted runs.
15. ``cli``: the thin shell over everything.
"""

from __future__ import annotations

import ast
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "theseus"

LAYERS: list[tuple[str, ...]] = [
    ("theseus", "theseus.errors"),
    ("theseus.fsio", "theseus.names", "theseus.interrupt", "theseus.progress"),
    ("theseus.config", "theseus.registry", "theseus.request"),
    ("theseus.base",),
    ("theseus.rundir",),
    ("theseus.checkpoint",),
    ("theseus.job",),
    ("theseus.data", "theseus.model", "theseus.runconfig"),
    ("theseus.trained_run",),
    ("theseus.inference",),
    ("theseus.evaluation",),
    ("theseus.training",),
    ("theseus.recipes", "theseus.experiments", "theseus.export", "theseus.quick", "theseus.keys"),
    ("theseus.dispatch",),
    ("theseus.web",),
    ("theseus.cli",),
]

#: (importer, imported) -> why the upward or sideways import is right; keep it empty
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    """One import statement: ``source`` imports ``target`` at ``line``."""

    source: str
    target: str
    line: int
    type_only: bool


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file of the package at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def imports(root: Path) -> list[Edge]:
    """Every import of a module of the package by another, at any depth of the code."""
    known = modules(root)
    edges: list[Edge] = []
    for name, path in known.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

        def visit(node: ast.AST, type_only: bool, name: str = name, package: list[str] = package) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Import):
                    targets = [alias.name for alias in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        anchor = package[: len(package) - (child.level - 1)]
                        base = ".".join([*anchor, base] if base else anchor)
                    targets = [base, *(f"{base}.{alias.name}" for alias in child.names)]
                else:
                    visit(child, type_only or (isinstance(child, ast.If) and _is_type_checking(child)))
                    continue
                for target in targets:
                    if target in known and target != name:
                        edges.append(Edge(name, target, child.lineno, type_only))

        visit(ast.parse(path.read_text()), False)
    return edges


def layer_of(module: str, layers: list[tuple[str, ...]]) -> tuple[int, str] | None:
    """``(rank, unit)`` of ``module``: the longest unit name it is or lies under (the root package: only itself)."""
    best: tuple[int, str] | None = None
    for rank, units in enumerate(layers):
        for unit in units:
            under = "." in unit and module.startswith(unit + ".")
            if (module == unit or under) and (best is None or len(unit) > len(best[1])):
                best = (rank, unit)
    return best


def layer_violations(
    root: Path, layers: list[tuple[str, ...]], allowed: dict[tuple[str, str], str]
) -> list[str]:
    """Modules outside every layer, and imports that go up or sideways between units."""
    problems = [f"{m} is in no layer: add it to LAYERS" for m in modules(root) if layer_of(m, layers) is None]
    for edge in imports(root):
        src, dst = layer_of(edge.source, layers), layer_of(edge.target, layers)
        if src is None or dst is None or src[1] == dst[1] or (edge.source, edge.target) in allowed:
            continue
        if dst[0] > src[0]:
            problems.append(f"{edge.source}:{edge.line} imports {edge.target} from a higher layer ({dst[1]})")
        elif dst[0] == src[0]:
            problems.append(f"{edge.source}:{edge.line} imports {edge.target}, an independent unit of its layer")
    return problems


def circles(root: Path) -> list[list[str]]:
    """Groups of modules that import each other (directly or around a circle) when the code runs."""
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in imports(root):
        if not edge.type_only:
            graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_every_import_goes_down_the_layers():
    assert layer_violations(PACKAGE, LAYERS, ALLOWED) == []


def test_the_package_has_no_import_circle():
    assert circles(PACKAGE) == []


def test_the_checker_finds_an_upward_import_a_sideways_one_a_circle_and_an_unplaced_module(tmp_path):
    pkg = tmp_path / "theseus"
    files = {
        "__init__.py": "",
        "errors.py": "",
        "low.py": "def f():\n    from theseus import high  # lazy, still upward\n",
        "high.py": "from theseus.low import f\n",
        "left.py": "from theseus.right import x\n",
        "right.py": "x = 1\n",
        "stray.py": "",
        "typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from theseus import high\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(textwrap.dedent(text))
    layers = [("theseus", "theseus.errors"), ("theseus.low", "theseus.typed"), ("theseus.left", "theseus.right"),
              ("theseus.high",)]
    found = layer_violations(pkg, layers, {})
    assert "theseus.stray is in no layer: add it to LAYERS" in found
    assert any(p.startswith("theseus.low:2 imports theseus.high from a higher layer") for p in found)
    assert any(p.startswith("theseus.typed:3 imports theseus.high from a higher layer") for p in found)
    assert any(p.startswith("theseus.left:1 imports theseus.right, an independent unit") for p in found)
    assert circles(pkg) == [["theseus.high", "theseus.low"]]  # the type-only import makes no circle
    allowed = layer_violations(pkg, layers, {("theseus.low", "theseus.high"): "a reason"})
    assert not any(p.startswith("theseus.low:") for p in allowed) and len(allowed) == len(found) - 1
