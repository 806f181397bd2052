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
    """FINN rejects this node configuration (illegal folding, unsupported attribute values …).

    ``attrs``: the choice attributes (PE, SIMD, ram_style …) whose values cause the rejection; empty
    when the node's shapes and data types alone do (see :class:`Issue`)."""

    def __init__(self, message: str, *, hint: str | None = None, where: str | None = None,
                 attrs: tuple[str, ...] | frozenset[str] = ()):
        super().__init__(message, hint=hint, where=where)
        self.attrs = frozenset(attrs)


class Issue(str):
    """One reason FINN rejects a node configuration (a sentence), with the choice attributes it
    depends on: ``attrs == {"SIMD"}`` means some other SIMD value may be accepted, ``{"PE", "SIMD"}``
    that the two values are rejected together (a joint rule), ``{}`` that no choice of the folding
    attributes helps (the node's shapes or data types). The design space reads these tags to offer
    only values FINN accepts (:mod:`bsopt.estimate.legality`)."""

    attrs: frozenset[str]

    def __new__(cls, text: str, attrs: tuple[str, ...] | frozenset[str] = ()) -> Issue:
        self = super().__new__(cls, text)
        self.attrs = frozenset(attrs)
        return self

    def __reduce__(self):
        return (Issue, (str(self), tuple(sorted(self.attrs))))


class NodeModel:
    """Base class of a per-op-type cost model. Subclasses set ``op_type`` and ``versions``."""

    op_type: str = ""
    versions: tuple[str, ...] = VERSIONS
    #: folding attribute -> the dimension it folds (a function of the node's attributes): its legal
    #: values are divisors of that dimension, further limited by :meth:`issues`
    folds: dict[str, Any] = {}

    def choices(self, a: dict[str, Any], version: str) -> dict[str, tuple[Any, ...]]:
        """Implementation attributes a design space may vary on a node with attributes ``a``, with
        every value FINN declares for them (``get_nodeattr_types``); :meth:`issues` says which values
        a configuration may use."""
        return {}

    def issues(self, a: dict[str, Any], part: str, version: str) -> list[Issue]:
        """Every reason FINN rejects the configuration ``a`` (FINN's defaults filled in): the
        estimate-time rejection of :meth:`check` (the first one) or else the code-generation ones of
        :meth:`codegen_issues`, plus memory the part does not have. One implementation of FINN's
        rules, read by the estimates (``strict``), the design space, the exact solver and SetFolding."""
        try:
            self.check(a, part, version)
        except EstimateError as exc:
            return [Issue(exc.message, exc.attrs)]
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            return [Issue(f"{self.op_type}: malformed attributes ({type(exc).__name__}: {exc})")]
        return self.build_issues(a, part, version)

    def build_issues(self, a: dict[str, Any], part: str, version: str) -> list[Issue]:
        """What FINN's code generation (and the part) rejects in a configuration :meth:`check`
        accepts: :meth:`codegen_issues` as :class:`Issue` items, plus UltraRAM the part lacks."""
        out = [i if isinstance(i, Issue) else Issue(i) for i in self.codegen_issues(a, part, version)]
        if a.get("ram_style") == "ultra" and _part_lacks_uram(part):
            out.append(Issue(f"{self.op_type}: ram_style='ultra' on {part}, which has no UltraRAM", ("ram_style",)))
        return out

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

    def streams(self, a: dict[str, Any]) -> tuple[list[tuple[int, str] | None], list[tuple[int, str]]] | None:
        """The node's AXI streams as FINN folds them: per input and per output, (elements per transfer =
        the folded shape's last axis, FINN DataType name); None for an input that is not a stream
        (weights, thresholds). What FINN's InsertDWC and InsertFIFO read. None: not modelled."""
        return None


REGISTRY: dict[str, NodeModel] = {}


def register(cls: type[NodeModel]) -> type[NodeModel]:
    """Class decorator: add a cost model to the registry under its op_type."""
    REGISTRY[cls.op_type] = cls()
    return cls


def normalize_version(version: str) -> FinnVersion:
    return FinnVersion.parse(version)


def estimate_node(op_type: str, attrs: dict[str, Any], fpgapart: str, finn_version: str = "latest", *,
                  strict: bool = False, rejected: list | None = None) -> dict:
    """FINN's resource estimate and expected cycles of one node.

    ``attrs`` uses FINN's attribute names; unset attributes take FINN's defaults. Returns
    ``{LUT, BRAM_18K, BRAM_efficiency, URAM, URAM_efficiency, DSP, cycles}`` (the keys FINN returns
    for that op type, plus ``cycles``). Raises :class:`EstimateError` for configurations FINN rejects;
    with ``strict=True`` also for those FINN estimates but its code generation would reject.
    ``rejected``: a list to append those code-generation issues to instead of raising.
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
    if strict or rejected is not None:
        issues = model.build_issues(a, fpgapart, version)
        if rejected is not None:
            rejected.extend(issues)
        elif issues:
            raise EstimateError(f"{op_type}: " + "; ".join(issues), hint="FINN's code generation rejects this "
                                "configuration although its estimates accept it",
                                attrs=frozenset().union(*(i.attrs for i in issues)))
    out = dict(model.resources(a, fpgapart, version))
    out["cycles"] = model.cycles(a, version)
    return out


def _part_lacks_uram(part: str) -> bool:
    """True for a part bsopt knows to have no UltraRAM (unknown parts: not judged)."""
    from bsopt.hw.parts import part_resources

    res = part_resources(part) if part else None
    return res is not None and res.get("URAM", 0) == 0


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
    require(pe > 0, f"{op}: PE must be positive, got {pe}", attrs=("PE",))
    require(dim % pe == 0, f"{op}: PE={pe} does not divide {dim_attr}={dim}", hint=hint, attrs=("PE",))


def check_simd_divides_channels(a: dict[str, Any], op: str) -> None:
    """SIMD is positive and divides the channel count ``ifm_dim[-1]`` (FINN's LayerNorm/HWSoftmax assert
    'SIMD must divide into input dimension' when folding their shapes)."""
    require(bool(a.get("ifm_dim")), f"{op}: required attribute ifm_dim is not set")
    simd, c = a["SIMD"], a["ifm_dim"][-1]
    require(simd >= 1, f"{op}: SIMD must be positive, got {simd}", attrs=("SIMD",))
    require(c % simd == 0, f"{op}: SIMD={simd} does not divide the channel count {c}",
            hint="FINN asserts 'SIMD must divide into input dimension'; choose a divisor of ifm_dim[-1]",
            attrs=("SIMD",))


def stream_width_issues(width: int, attrs: tuple[str, ...] = ("PE",)) -> list[Issue]:
    """The code-generation problem of an HLS stream wider than AP_INT_MAX_W, if any; ``attrs``: the
    folding attributes the width grows with."""
    if width > HLS_MAX_STREAM_WIDTH:
        return [Issue(f"HLS stream width {width} exceeds AP_INT_MAX_W={HLS_MAX_STREAM_WIDTH} "
                      "(HLSBackend.get_ap_int_max_w)", attrs)]
    return []

def bits(dtype_name: str) -> int:
    return DataType[dtype_name].bitwidth()


def dtype(name: str):
    return DataType[name]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def require(cond: bool, message: str, hint: str | None = None, attrs: tuple[str, ...] = ()) -> None:
    if not cond:
        raise EstimateError(message, hint=hint, attrs=attrs)


def prod(values) -> int:
    return int(math.prod(values))
