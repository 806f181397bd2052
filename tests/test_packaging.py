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
