"""Cost models of FINN's standalone thresholding kernels: ``Thresholding_hls`` and ``Thresholding_rtl``.

Both reproduce ``node_res_estimation`` and ``get_exp_cycles`` of FINN "latest" (dev 73ba5ed) and
0.10.1, which agree for these two op types.

Cycles: ``prod(numInputVectors) * (NumChannels // PE)`` (the folded output shape without its PE
dimension).

Thresholding_hls: LUT = comparators ``A*PE`` (A = input bits) plus, for ``ram_style="distributed"``
and a threshold memory deeper than one entry, LUTRAM ``PE*A*ceil(TMEM/64)``. BRAM only for
``ram_style="block"``: ``ceil(A*PE/16) * ceil(TMEM/1024)``. Note that FINN sizes the threshold
memory by the *input* width, not by ``weightDataType``, and ignores ``numSteps``.

Thresholding_rtl: one memory per PE and output bit ("stage"), of width = threshold bits and depth
``(NumChannels/PE) * 2**stage``. Each memory goes to the primitive with the least wasted bits among
FINN's Versal primitive table (restricted by ``depth_trigger_bram``/``depth_trigger_uram``).
FINN quirks reproduced here:

* the BRAM primitives are keyed ``"BRAM18"`` but FINN reads back ``"BRAM"``, so BRAM_18K is
  always 0 — memories that go to BRAM are not counted anywhere;
* once either trigger is non-zero, a memory with ``bram <= depth < uram`` may only use BRAM, one
  with ``depth >= uram`` only URAM, any other one every primitive; so a non-zero
  ``depth_trigger_bram`` with ``depth_trigger_uram = 0`` forces *every* memory to URAM
  (``depth >= 0`` always holds);
* with ``uniform_thres=1`` the geometries are ``(obits - x, (NumChannels/PE) * 2**x)`` for
  ``x = 1 .. obits-1``;
* counts come out of FINN as floats when the memory depth reaches the primitive depth (the depth is
  computed as ``NumChannels / PE``), so LUT (and URAM) can be floats like ``1152.0``; we return the
  same types;
* the LUT estimate is the LUTRAM count only (no comparator logic).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import HLS_MAX_STREAM_WIDTH, EstimateError, Issue, NodeModel, register

#: FINN's AP_INT_MAX_W limit asserted by HLSBackend.get_ap_int_max_w.

#: FINN's ``mem_primitives_versal`` table (finn.util.basic), in its order (ties keep this order):
#: (resource key as FINN derives it, primitive width, primitive depth).
_PRIMITIVES = (
    ("URAM", 72, 4096),
    ("URAM", 36, 8192),
    ("URAM", 18, 16384),
    ("URAM", 9, 32768),
    ("BRAM18", 36, 512),
    ("BRAM18", 18, 1024),
    ("BRAM18", 9, 2048),
    ("LUTRAM", 1, 64),
)
_ONLY_BRAM = tuple(p for p in _PRIMITIVES if "BRAM" in p[0])
_ONLY_URAM = tuple(p for p in _PRIMITIVES if "URAM" in p[0])

_REQUIRED = ("PE", "NumChannels", "numSteps", "inputDataType", "weightDataType", "outputDataType")


@cache
def _dtype(name: str):
    try:
        return DataType[name]
    except KeyError:
        raise EstimateError(f"unknown FINN DataType {name!r}") from None


@cache
def _bits(name: str) -> int:
    return _dtype(name).bitwidth()


def _num_vectors(value) -> int:
    if isinstance(value, int):
        return value
    n = 1
    for v in value:
        n *= v
    return n


def _common_check(op: str, a: dict[str, Any], allowed: dict[str, tuple]) -> None:
    missing = [k for k in _REQUIRED if k not in a]
    if missing:
        raise EstimateError(f"{op}: required attribute(s) {', '.join(missing)} not set")
    for key, values in allowed.items():
        if a[key] not in values:
            raise EstimateError(f"{op}: {key} = {a[key]!r} not in {sorted(values)}", attrs=(key,))
    for key in ("inputDataType", "weightDataType", "outputDataType"):
        _dtype(a[key])
    pe, ch = a["PE"], a["NumChannels"]
    if pe < 1 or ch < 1:
        raise EstimateError(f"{op}: PE ({pe}) and NumChannels ({ch}) must be positive", attrs=("PE",))
    if ch % pe:
        # FINN: Thresholding_rtl raises (memutil gets a fractional depth); Thresholding_hls computes
        # numbers anyway but its weight-file generation asserts the divisibility.
        raise EstimateError(
            f"{op}: PE={pe} does not divide NumChannels={ch} (FINN: 'The input x is not an integer.')",
            hint="choose PE among the divisors of NumChannels", attrs=("PE",),
        )


def _dtype_codegen_issues(a: dict[str, Any], version: str, rtl: bool) -> list[str]:
    """The input/threshold datatype compatibility rules of FINN dev's parameter generation
    (Thresholding_hls.generate_params, Thresholding_rtl.prepare_codegen_rtl_values)."""
    if version != "latest":
        return []
    idt, wdt = _dtype(a["inputDataType"]), _dtype(a["weightDataType"])
    out = []
    if idt.is_integer() and not wdt.is_integer():
        out.append("integer inputs need integer thresholds (run RoundAndClipThresholds)")
    if not idt.is_integer() and wdt.is_integer():
        out.append("non-integer inputs with integer thresholds are not supported")
    if rtl:
        if idt.is_fixed_point() != wdt.is_fixed_point():
            out.append("fixed-point inputs and thresholds must be used together")
        elif idt.is_fixed_point() and wdt.scale_factor() != idt.scale_factor():
            out.append("fixed-point thresholds and inputs must have the same number of fractional bits")
    return out


def _streams(a: dict[str, Any]):
    return [(a["PE"], a["inputDataType"])], [(a["PE"], a["outputDataType"])]


def _cycles(a: dict[str, Any]) -> int:
    return _num_vectors(a["numInputVectors"]) * (a["NumChannels"] // a["PE"])


@register
class ThresholdingHLS(NodeModel):
    op_type = "Thresholding_hls"
    folds = {"PE": lambda a: a["NumChannels"]}

    def choices(self, a: dict[str, Any], version: str) -> dict[str, tuple[Any, ...]]:
        return {"ram_style": ("distributed", "block"),
                "mem_mode": ("internal_embedded", "internal_decoupled"),
                "runtime_writeable_weights": (0, 1)}

    _ALLOWED = {
        "mem_mode": ("internal_embedded", "internal_decoupled"),
        "ram_style": ("distributed", "block"),
        "runtime_writeable_weights": (0, 1),
    }

    def defaults(self, version: str) -> dict[str, Any]:
        return {
            "mem_mode": "internal_decoupled",
            "ram_style": "distributed",
            "runtime_writeable_weights": 0,
            "numInputVectors": [1],
            "ActVal": 0,
        }

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        _common_check(self.op_type, a, self._ALLOWED)

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues = []
        # HLSBackend.get_ap_int_max_w asserts the data streams fit AP_INT_MAX_W (the weight stream of
        # internal_decoupled mode is added after that assert and is not checked by FINN).
        width = a["PE"] * max(_bits(a["inputDataType"]), _bits(a["outputDataType"]))
        if width > HLS_MAX_STREAM_WIDTH:
            issues.append(Issue(f"stream width {width} bits exceeds AP_INT_MAX_W={HLS_MAX_STREAM_WIDTH} (HLS)",
                                ("PE",)))
        issues += _dtype_codegen_issues(a, version, rtl=False)
        return issues

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        pe = a["PE"]
        ibits = _bits(a["inputDataType"])
        tmem = a["NumChannels"] // pe
        style = a["ram_style"]
        lut = ibits * pe
        bram = 0
        if tmem > 1:
            if style == "distributed":
                lut += pe * ibits * -(-tmem // 64)
            elif style == "block":
                bram = -(-(ibits * pe) // 16) * -(-tmem // 1024)
        return {"BRAM_18K": bram, "BRAM_efficiency": 1, "LUT": lut, "URAM": 0, "URAM_efficiency": 1, "DSP": 0}

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return _cycles(a)

    def streams(self, a: dict[str, Any]):
        return _streams(a)


@cache
def _memory_per_pe(cf: int, wbits: int, obits: int, uniform: int, trig_bram: int, trig_uram: int):
    """Primitive choice of one PE's threshold memories (FINN's get_memory_estimate without the PE
    factor): ``((resource key, primitive count, count is a float in FINN), ...)`` per resource key."""
    if uniform:
        geometries = [(obits - x, cf << x) for x in range(1, obits)]
    else:
        geometries = [(wbits, cf << x) for x in range(obits)]
    totals: dict[str, tuple[int, bool]] = {}
    for width, depth in geometries:
        prims = _PRIMITIVES
        if trig_bram or trig_uram:
            if trig_bram <= depth < trig_uram:
                prims = _ONLY_BRAM
            elif depth >= trig_uram:  # FINN: a zero URAM trigger makes this always true
                prims = _ONLY_URAM
        best = None
        for key, pw, pd in prims:
            count = -(-width // pw) * -(-depth // pd)
            waste = count * pw * pd - width * depth
            if best is None or waste < best[0]:  # strict: ties keep FINN's (stable sort) order
                best = (waste, key, count, depth >= pd)
        _, key, count, as_float = best
        # FINN's depth is NumChannels/PE (a float); roundup_to_integer_multiple hands back the
        # primitive depth (an int) when the depth is smaller, the float depth otherwise, so the
        # count (and every sum it enters) is a float exactly when depth >= primitive depth.
        prev_count, prev_float = totals.get(key, (0, False))
        totals[key] = (prev_count + count, prev_float or as_float)
    return tuple((key, count, as_float) for key, (count, as_float) in totals.items())


def _rtl_memory(a: dict[str, Any]) -> dict[str, int | float]:
    """Primitive counts per resource key of Thresholding_rtl's threshold memories, typed like FINN's."""
    pe = a["PE"]
    per_pe = _memory_per_pe(a["NumChannels"] // pe, _bits(a["weightDataType"]), _bits(a["outputDataType"]),
                            a["uniform_thres"], a["depth_trigger_bram"], a["depth_trigger_uram"])
    return {key: float(pe * count) if as_float else pe * count for key, count, as_float in per_pe}


@register
class ThresholdingRTL(NodeModel):
    op_type = "Thresholding_rtl"
    folds = {"PE": lambda a: a["NumChannels"]}

    def choices(self, a: dict[str, Any], version: str) -> dict[str, tuple[Any, ...]]:
        # the memory-depth thresholds above which FINN maps threshold memories to BRAM/URAM: 0 (off)
        # and the powers of two up to the deepest memory (NumChannels * 2**(output bits - 1), PE = 1)
        deepest = a["NumChannels"] << max(_bits(a["outputDataType"]) - 1, 0)
        triggers = (0,) + tuple(1 << i for i in range(deepest.bit_length()) if 1 << i <= deepest)
        return {"depth_trigger_uram": triggers, "depth_trigger_bram": triggers, "runtime_writeable_weights": (0, 1)}

    _ALLOWED = {
        "runtime_writeable_weights": (0, 1),
        "uniform_thres": (0, 1),
        "deep_pipeline": (0, 1),
    }

    def defaults(self, version: str) -> dict[str, Any]:
        return {
            "depth_trigger_uram": 0,
            "depth_trigger_bram": 0,
            "uniform_thres": 0,
            "deep_pipeline": 1,
            "runtime_writeable_weights": 0,
            "numInputVectors": [1],
            "ActVal": 0,
        }

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        _common_check(self.op_type, a, self._ALLOWED)

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues = _dtype_codegen_issues(a, version, rtl=True)
        if version == "0.10.1":
            # 0.10.1's prepare_codegen_rtl_values expects 2**obits - 1 thresholds and pads at most one
            # (narrow range); the per-stage threshold files then index up to column 2**obits - 2.
            full = (1 << _bits(a["outputDataType"])) - 1
            if a["numSteps"] < full - 1:
                issues.append(f"numSteps={a['numSteps']} is fewer than 2**bits(outputDataType)-2="
                              f"{full - 1}; FINN 0.10.1's RTL threshold file generation fails")
        return issues

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        mem = _rtl_memory(a)
        return {
            "BRAM_18K": mem.get("BRAM", 0),  # always 0: FINN keys BRAM as "BRAM18" (FINN bug)
            "BRAM_efficiency": 1,
            "LUT": mem.get("LUTRAM", 0),
            "URAM": mem.get("URAM", 0),
            "URAM_efficiency": 1,
            "DSP": 0,
        }

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return _cycles(a)

    def streams(self, a: dict[str, Any]):
        return _streams(a)
