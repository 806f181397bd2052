"""Access to the FINN golden data in ../shared/finn_reference (read-only)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REFERENCE = Path(os.environ.get("BSOPT_FINN_REFERENCE", Path(__file__).resolve().parents[2] / "shared" / "finn_reference"))
NETWORKS = REFERENCE / "networks"

#: attributes FINN sets that are not part of the computation (bookkeeping, FIFO sizing, cycle caches)
NON_SEMANTIC = {"backend", "cycles_estimate", "inFIFODepths", "outFIFODepths"}


def require_reference():
    if not NETWORKS.is_dir():
        pytest.skip(f"FINN reference data not found at {REFERENCE}")


def network_dirs() -> list[str]:
    if not NETWORKS.is_dir():
        return []
    return sorted(p.name for p in NETWORKS.iterdir() if (p / "final_node_attrs.json").exists())


def load_json(path: Path):
    return json.loads(Path(path).read_text())


def prepost_model(name: str) -> Path:
    d = NETWORKS / name
    for cand in ("model_qonnx_prepost.onnx", "model_qonnx_prepost.onnx.gz"):
        if (d / cand).exists():
            return d / cand
    raise FileNotFoundError(d)


def lowering_kwargs(name: str) -> dict:
    """The build options of a reference run, as bsopt lowering options."""
    meta = load_json(NETWORKS / name / "meta.json")
    kwargs = {
        "finn_version": "0.10.1" if name.endswith("_v0.10.1") else "latest",
        "fpgapart": meta["fpga_part"],
        "standalone_thresholds": bool(meta.get("standalone_thresholds")),
    }
    spec = NETWORKS / name / "specialize_layers_config.json"
    if spec.exists():
        pref = {}
        for layer, entry in load_json(spec).items():
            if layer != "Defaults" and "preferred_impl_style" in entry:
                pref[layer] = entry["preferred_impl_style"]
        kwargs["preferred_impl_style"] = pref
    return kwargs


#: per-layer folding of two TFC-w2a2 layers: 3 * 2 * 2 * 2 = 24 configurations (the tests' small space)
SMALL_FOLDING = """  layers:
    MVAU_hls_0: {PE: [1, 4, 16], SIMD: [16, 49]}
    MVAU_hls_1: {PE: [1, 8], SIMD: [8, 16]}
"""


def synthetic_blueprint(tmp_path: Path, options: str, folding: str, *, strategy: str = "grid",
                        name: str = "bp.yaml") -> Path:
    """A TFC-w2a2 blueprint whose backend is the synthetic one (``options``: its YAML flow mapping body)."""
    path = tmp_path / name
    path.write_text(f"""
version: "3.0"
name: synthetic-test
model: {prepost_model("tfc_w2a2")}
hw_compiler:
  build_steps: [step_streamline, step_minimize_bit_width]
target: {{board: Pynq-Z1, clock_ns: 10.0}}
search: {{strategy: {strategy}}}
backend: {{name: synthetic, options: {{{options}}}}}
folding:
{folding}""")
    return path
