"""Locating the real FINN environment built by ../shared/finn_src/setup_finn.sh (FINN dev 73ba5ed + its
qonnx, no docker, no Vivado), and blueprints whose finn backend runs it.

``$BSOPT_FINN_HOME`` (default ``~/.cache/bsopt/finn``, where ``.ci/run`` builds it). Without it the
tests marked ``finn`` skip, unless ``$BSOPT_REQUIRE_FINN`` is set (CI sets it after building FINN):
then a missing FINN is a failure, not a silent skip.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"
FINN_HOME = Path(os.environ.get("BSOPT_FINN_HOME", Path.home() / ".cache" / "bsopt" / "finn"))
SETUP = ROOT.parent / "shared" / "finn_src" / "setup_finn.sh"


def finn_python() -> Path:
    """FINN's python wrapper (sets FINN_ROOT, FINN_BUILD_DIR, PYTHONPATH); skips or fails without it."""
    python = FINN_HOME / "bin" / "python"
    if (FINN_HOME / ".ready").exists() and python.exists():
        return python
    why = f"real FINN not built at {FINN_HOME} (run {SETUP} {FINN_HOME}, or set BSOPT_FINN_HOME)"
    if os.environ.get("BSOPT_REQUIRE_FINN"):
        pytest.fail(why)
    pytest.skip(why)


def finn_command() -> list[str]:
    return [str(finn_python()), "-m", "finn.builder.build_dataflow", "{build_dir}"]


def run_finn(build_dir: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m finn.builder.build_dataflow DIR`` in FINN's environment, as a user runs it."""
    return subprocess.run([str(finn_python()), "-m", "finn.builder.build_dataflow", str(build_dir)],
                          capture_output=True, text=True, timeout=timeout, cwd=build_dir)


def with_real_finn(source: Path, dest: Path, *, output_stage: str = "estimates", **search) -> Path:
    """A copy of a blueprint whose backend is real FINN at an output stage FINN can reach here (the
    estimates): the blueprint's own backend options are kept except the command."""
    bp = yaml.safe_load(source.read_text())
    if isinstance(bp.get("extends"), str) and not bp["extends"].startswith(("/", "$")):
        bp["extends"] = str((source.parent / bp["extends"]).resolve())
    backend = bp.get("backend") if isinstance(bp.get("backend"), dict) else {"name": "finn"}
    backend["name"] = "finn"
    options = dict(backend.get("options") or {})
    options["command"] = finn_command()
    options.pop("env", None)  # Vivado paths of the shipped blueprint: none here
    backend["options"] = options
    bp["backend"] = backend
    if bp.get("version"):  # v3
        bp.setdefault("global", {})["output_stage"] = output_stage
        bp["global"].pop("timeout_minutes", None)
    else:
        bp["output"] = output_stage
    if search:
        old = {k: v for k, v in (bp.get("search") or {}).items() if not ("strategy" in search and k == "sampler")}
        bp["search"] = {**old, **search}
    dest.write_text(yaml.safe_dump(bp, sort_keys=False))
    return dest


def is_finn_blueprint(path: Path) -> bool:
    bp = yaml.safe_load(path.read_text())
    backend = bp.get("backend")
    return (backend.get("name") if isinstance(backend, dict) else backend) == "finn"
