"""The interface every per-kernel cost model implements, and the registry of models.

A model reproduces FINN's own estimates for one specialised op type (``MVAU_hls`` …):
``node_res_estimation(fpgapart)`` (LUT, BRAM_18K, BRAM_efficiency, URAM, URAM_efficiency, DSP) and
``get_exp_cycles()``, with FINN's attribute names and defaults, for FINN "latest" (dev, commit
73ba5ed) and "0.10.1". ``check`` rejects what FINN rejects — at estimate time and in code
generation — so that no configuration bsopt proposes fails in a real build.
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.choices import FinnVersion
from bsopt.errors import InputError

VERSIONS = tuple(FinnVersion)


class EstimateError(InputError):
    """FINN rejects this node configuration (illegal folding, unsupported attribute values …)."""


class NodeModel:
    """Base class of a per-op-type cost model. Subclasses set ``op_type`` and ``versions``."""

    op_type: str = ""
    versions: tuple[str, ...] = VERSIONS

    def defaults(self, version: str) -> dict[str, Any]:
        """FINN's default values of the node attributes the formulas read."""
        return {}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        """Raise EstimateError for configurations FINN rejects when estimating (and for folding that
        does not divide the folded dimension, which FINN only checks on some code paths)."""

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        """What FINN's code generation (HLS/RTL generation, synthesis) would reject although its
        estimates accept it, e.g. MVAU_hls with SIMD < MW/1024. Each item is one sentence."""
        return []

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        raise NotImplementedError

    def cycles(self, a: dict[str, Any], version: str) -> int | float:
        raise NotImplementedError


REGISTRY: dict[str, NodeModel] = {}


def register(cls: type[NodeModel]) -> type[NodeModel]:
    """Class decorator: add a cost model to the registry under its op_type."""
    REGISTRY[cls.op_type] = cls()
    return cls


def normalize_version(version: str) -> FinnVersion:
    return FinnVersion.parse(version)


def estimate_node(op_type: str, attrs: dict[str, Any], fpgapart: str, finn_version: str = "latest", *,
                  strict: bool = False) -> dict:
    """FINN's resource estimate and expected cycles of one node.

    ``attrs`` uses FINN's attribute names; unset attributes take FINN's defaults. Returns
    ``{LUT, BRAM_18K, BRAM_efficiency, URAM, URAM_efficiency, DSP, cycles}`` (the keys FINN returns
    for that op type, plus ``cycles``). Raises :class:`EstimateError` for configurations FINN rejects;
    with ``strict=True`` also for those FINN estimates but its code generation would reject.
    """
    version = normalize_version(finn_version)
    from bsopt.estimate import nodes  # noqa: F401  (registers the models)

    model = REGISTRY.get(op_type)
    if model is None or version not in model.versions:
        known = sorted(k for k, m in REGISTRY.items() if version in m.versions)
        raise EstimateError(
            f"FINN {version} has no cost model for op type '{op_type}'",
            hint="op types: " + ", ".join(known),
        )
    a = {**model.defaults(version), **attrs}
    model.check(a, fpgapart, version)
    if strict:
        issues = model.codegen_issues(a, fpgapart, version)
        if issues:
            raise EstimateError(f"{op_type}: " + "; ".join(issues), hint="FINN's code generation rejects this "
                                "configuration although its estimates accept it")
    out = dict(model.resources(a, fpgapart, version))
    out["cycles"] = model.cycles(a, version)
    return out


# ---------------------------------------------------------------- shared helpers
#: FINN's HLS streams may be at most this wide (AP_INT_MAX_W, asserted in HLSBackend.get_ap_int_max_w)
HLS_MAX_STREAM_WIDTH = 8191

#: the estimate of ops FINN models as free (LabelSelect, Pool, DuplicateStreams, …)
ZERO_RESOURCES = {"BRAM_18K": 0, "BRAM_efficiency": 1, "LUT": 0, "URAM": 0, "URAM_efficiency": 1, "DSP": 0}


def zero_resources() -> dict[str, Any]:
    return dict(ZERO_RESOURCES)


def check_pe_divides(a: dict[str, Any], op: str, dim_attr: str, hint: str | None = None) -> None:
    """PE is set, positive and divides the folded dimension ``a[dim_attr]``."""
    for name in (dim_attr, "PE"):
        require(name in a, f"{op}: required attribute {name} is not set")
    pe, dim = a["PE"], a[dim_attr]
    require(pe > 0, f"{op}: PE must be positive, got {pe}")
    require(dim % pe == 0, f"{op}: PE={pe} does not divide {dim_attr}={dim}", hint=hint)


def check_simd_divides_channels(a: dict[str, Any], op: str) -> None:
    """SIMD is positive and divides the channel count ``ifm_dim[-1]`` (FINN's LayerNorm/HWSoftmax assert
    'SIMD must divide into input dimension' when folding their shapes)."""
    require(bool(a.get("ifm_dim")), f"{op}: required attribute ifm_dim is not set")
    simd, c = a["SIMD"], a["ifm_dim"][-1]
    require(simd >= 1, f"{op}: SIMD must be positive, got {simd}")
    require(c % simd == 0, f"{op}: SIMD={simd} does not divide the channel count {c}",
            hint="FINN asserts 'SIMD must divide into input dimension'; choose a divisor of ifm_dim[-1]")


def stream_width_issues(width: int) -> list[str]:
    """The code-generation problem of an HLS stream wider than AP_INT_MAX_W, if any."""
    if width > HLS_MAX_STREAM_WIDTH:
        return [f"HLS stream width {width} exceeds AP_INT_MAX_W={HLS_MAX_STREAM_WIDTH} (HLSBackend.get_ap_int_max_w)"]
    return []

def bits(dtype_name: str) -> int:
    return DataType[dtype_name].bitwidth()


def dtype(name: str):
    return DataType[name]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def require(cond: bool, message: str, hint: str | None = None) -> None:
    if not cond:
        raise EstimateError(message, hint=hint)


def prod(values) -> int:
    return int(math.prod(values))
