"""Every package bsopt imports is declared in pyproject.toml: core imports as dependencies, optional
ones in an extra. (A fresh venv with only the README's extras is CI's other check of the same.)"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: modules imported only inside functions that need an extra, with the extra that provides them
OPTIONAL = {"torch": "models", "brevitas": "models", "ray": "ray", "optuna_dashboard": "dashboard",
            "pandas": "dev", "psycopg2": "postgres"}


def _requirement_names(reqs: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, imported at module level unguarded) for each absolute import in a file."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, top: bool):
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Try | ast.If)
            if isinstance(child, ast.Import):
                out.extend((a.name.split(".")[0], top) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                out.append((child.module.split(".")[0], top))
            visit(child, inner)

    visit(tree, True)
    return out


def test_every_third_party_import_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    extras = {k: _requirement_names(v) for k, v in project["optional-dependencies"].items()}
    dists = md.packages_distributions()
    problems = []
    for path in sorted((ROOT / "bsopt").rglob("*.py")):
        for module, top in _imports(path):
            if module == "bsopt" or module in sys.stdlib_module_names or module == "__future__":
                continue
            names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
            where = path.relative_to(ROOT)
            if names & core:
                continue
            extra = OPTIONAL.get(module)
            if extra is None:
                problems.append(f"{where}: imports {module} ({'/'.join(sorted(names))}), not a dependency")
            elif not names & extras[extra]:
                problems.append(f"{where}: imports {module}, not in the '{extra}' extra")
            elif top and not path.name.startswith("_nets") and "models" not in path.parts:
                problems.append(f"{where}: imports optional {module} at module level")
    assert not problems, "\n".join(problems)


def test_the_cli_needs_no_click_of_its_own():
    """typer >= 0.29 vendors click and no longer installs it: bsopt must not import click itself."""
    for path in (ROOT / "bsopt").rglob("*.py"):
        assert "click" not in {m for m, _ in _imports(path)}, path


def _bsopt_import_graph() -> dict[str, set[str]]:
    """module -> the bsopt modules it imports, counting imports inside functions and type-only ones
    (under ``if TYPE_CHECKING:``): a circle of types is still a circle to a reader."""
    pkg = ROOT / "bsopt"
    mods = {}
    for p in pkg.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name or None

    graph = {}
    for m, p in mods.items():
        targets = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = m.split(".") if p.name == "__init__.py" else m.split(".")[:-1]
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            targets |= {r for n in names if n.startswith("bsopt") and (r := resolve(n)) and r != m}
        graph[m] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_files_or_sub_packages():
    graph = _bsopt_import_graph()
    assert "bsopt.study.runner" in graph["bsopt.study.api"]  # imports inside functions count
    assert "bsopt.ir.layers" in graph["bsopt.ir.bitwidths"] and "bsopt.ir.bitwidths" not in graph["bsopt.ir.layers"]
    assert _cycles(graph) == []

    def package(m: str) -> str:
        parts = m.split(".")
        return ".".join(parts[:2]) if len(parts) > 1 and (ROOT / "bsopt" / parts[1]).is_dir() else m

    packages: dict[str, set[str]] = {}
    for m, targets in graph.items():
        packages.setdefault(package(m), set()).update(package(t) for t in targets
                                                      if package(t) not in (package(m), "bsopt"))
    assert _cycles(packages) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_strategies_reach_the_cost_models_only_through_a_backend():
    """explore/ asks the estimate backend (per-node estimates, SetFolding) instead of importing
    bsopt.estimate, so that another cost model plugs in behind the same backend interface."""
    graph = _bsopt_import_graph()
    reach = {m: sorted(t for t in targets if t.startswith("bsopt.estimate"))
             for m, targets in graph.items() if m.startswith("bsopt.explore")}
    assert reach and all(not v for v in reach.values()), reach
    assert "bsopt.backends.estimate" in graph["bsopt.explore.exact"]


def test_strategy_names_are_compared_only_in_explore():
    """Outside bsopt/explore/, no code compares a value with a strategy name written as a string."""
    # ("auto" is left out: it is also FINN's word for ram_style/resType defaults, compared in the cost models)
    names = {"tpe", "nsga2", "nsga3", "gp", "random", "grid", "exhaustive", "exact", "surrogate"}
    found = []
    for p in (ROOT / "bsopt").rglob("*.py"):
        if "explore" in p.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c for c in [node.left, *node.comparators]
                          for c in ([c] if not isinstance(c, (ast.Tuple, ast.List, ast.Set)) else c.elts)
                          if isinstance(c, ast.Constant) and c.value in names]
                if consts:
                    found.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert found == []
