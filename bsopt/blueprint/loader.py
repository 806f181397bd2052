"""Read a blueprint file in either format (detected automatically)."""

from __future__ import annotations

from pathlib import Path

from bsopt.blueprint.diagnostics import Diagnostics
from bsopt.blueprint.model import Blueprint
from bsopt.blueprint.yamlloc import load_yaml

V3_MARKERS = ("version", "hw_compiler", "processing")
V01_MARKERS = ("design_space", "clock_ns", "extends", "finn_config", "output", "board", "start_step", "stop_step")


def detect_format(raw: dict) -> str | None:
    if any(k in raw for k in V3_MARKERS):
        return "v3"
    if any(k in raw for k in V01_MARKERS):
        return "0.1"
    return None


def read_blueprint(path: str | Path) -> tuple[Blueprint, Diagnostics]:
    """The blueprint and the diagnostics found while reading it (raises only for unreadable YAML)."""
    from bsopt.blueprint.v01 import read_v01
    from bsopt.blueprint.v3 import read_v3

    p = Path(path)
    raw, locs = load_yaml(p)
    d = Diagnostics(locs)
    if not isinstance(raw, dict):
        d.error((), "a blueprint must be a YAML mapping of sections" if raw is not None else "the blueprint is empty",
                "see search_spaces/ for examples")
        return Blueprint(file=str(p), format="unknown", name=p.stem, description="", locs=locs), d
    fmt = detect_format(raw)
    if fmt == "v3":
        return read_v3(d, raw, str(p), p.resolve().parent), d
    if fmt == "0.1":
        return read_v01(d, raw, p), d
    d.error((), "cannot tell the blueprint format",
            "a Brainsmith DSE v3 blueprint has version: \"3.0\" and hw_compiler; a Brainsmith 0.1 blueprint has "
            "clock_ns and design_space")
    return Blueprint(file=str(p), format="unknown", name=p.stem, description="", locs=locs), d
