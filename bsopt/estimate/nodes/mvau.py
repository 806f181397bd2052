"""Cost models of FINN's matrix-vector unit: ``MVAU_hls`` and ``MVAU_rtl``.

The numbers reproduce FINN's ``node_res_estimation`` and ``get_exp_cycles`` (sources:
``custom_op/fpgadataflow/matrixvectoractivation.py`` for memory and cycles,
``hls/matrixvectoractivation_hls.py`` and ``rtl/matrixvectoractivation_rtl.py`` for LUT/DSP) for
FINN dev (73ba5ed) and v0.10.1, whose formulas are identical; only defaults differ.

Notation: P = PE, Q = SIMD, W = weight bits, A = input bits, WMEM = MW*MH/(P*Q) weight words of
P*Q*W bits, TMEM = MH/P threshold words.

This module also holds the helpers the VVAU models (``vvau.py``) share: data-type facts, attribute
validation, the accumulator-width bound of the LUT formulas and the code-generation checks common
to the MVAU/VVAU family.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import EstimateError, Issue, NodeModel, register
from bsopt.estimate.nodes._memory import (
    BRAM18_CAPACITY_BITS,
    MVAU_BRAM_WIDTHS,
    URAM_CAPACITY_BITS,
    bram18_blocks,
    efficiency,
    uram_blocks,
)
from bsopt.hw import parts

#: FINN refuses (hlsbackend.get_ap_int_max_w) HLS streams wider than this many bits.
AP_INT_MAX_W_LIMIT = 8191
#: the ap_int headers refuse an AP_INT_MAX_W above this (ap_common.h, BIT_WIDTH_UPPER_LIMIT = 1 << 15):
#: the bound of the widths FINN adds to the define without asserting them (weight streams)
AP_INT_HEADER_LIMIT = 1 << 15

MEM_MODES = frozenset({"internal_embedded", "internal_decoupled", "external"})
RAM_STYLES = frozenset({"auto", "block", "distributed", "ultra"})
RAM_STYLES_THRESHOLDS = frozenset({"auto", "block", "distributed"})
RES_TYPES = frozenset({"auto", "lut", "dsp"})
FLAGS = frozenset({0, 1})


# ---------------------------------------------------------------- data types
_DTYPES: dict[str, tuple[int, bool, float]] = {}


def dtype_facts(name: Any, attr: str = "datatype") -> tuple[int, bool, float]:
    """(bit width, signed, minimum) of a qonnx DataType name, cached; EstimateError if unknown."""
    try:
        return _DTYPES[name]
    except (KeyError, TypeError):
        pass
    try:
        dt = DataType[name]
        facts = (int(dt.bitwidth()), bool(dt.signed()), dt.min())
    except Exception as exc:  # qonnx raises KeyError/AttributeError/ValueError for bad names
        raise EstimateError(
            f"{attr} = {name!r} is not a qonnx DataType",
            hint="use a name such as INT4, UINT8, BIPOLAR, BINARY or TERNARY",
        ) from exc
    _DTYPES[name] = facts
    return facts


# ---------------------------------------------------------------- attribute validation
def positive_int(a: dict[str, Any], name: str, op_type: str) -> int:
    """The attribute as an int >= 1 (FINN divides by / takes the log of these values)."""
    value = a.get(name)
    if value is None:
        raise EstimateError(f"{op_type}: required attribute {name} is not set")
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise EstimateError(f"{op_type}: {name} = {value!r} is not an integer", attrs=(name,)) from None
    if ivalue < 1:
        raise EstimateError(f"{op_type}: {name} = {ivalue} must be at least 1", attrs=(name,))
    return ivalue


def int_list(a: dict[str, Any], name: str, op_type: str, length: int | None = None) -> list[int]:
    """An ``ints`` attribute as a list of ints >= 1 (a bare int counts as a one-element list)."""
    value = a.get(name)
    if value is None:
        raise EstimateError(f"{op_type}: required attribute {name} is not set")
    items = [value] if isinstance(value, int) else value
    try:
        out = [operator.index(v) for v in items]
    except TypeError:
        raise EstimateError(f"{op_type}: {name} = {value!r} is not a list of integers") from None
    if length is not None and len(out) != length:
        raise EstimateError(f"{op_type}: {name} = {value!r} must have {length} entries")
    if any(v < 1 for v in out):
        raise EstimateError(f"{op_type}: {name} = {value!r} has entries below 1")
    return out


def one_of(a: dict[str, Any], name: str, allowed: frozenset, op_type: str) -> None:
    """FINN (qonnx get_nodeattr) asserts enumerated attributes against their allowed values."""
    value = a.get(name)
    try:
        ok = value in allowed
    except TypeError:  # unhashable value
        ok = False
    if not ok:
        raise EstimateError(
            f"{op_type}: {name} = {value!r} is not allowed",
            hint="allowed values: " + ", ".join(sorted(map(str, allowed))), attrs=(name,),
        )


def require_dtype(a: dict[str, Any], name: str, op_type: str) -> tuple[int, bool, float]:
    value = a.get(name)
    if value is None or value == "":
        raise EstimateError(f"{op_type}: required attribute {name} is not set")
    return dtype_facts(value, f"{op_type}: {name}")


def divides(part_name: str, part: int, whole_name: str, whole: int, op_type: str) -> None:
    if whole % part:
        raise EstimateError(
            f"{op_type}: {part_name} = {part} does not divide {whole_name} = {whole}",
            hint=f"choose {part_name} among the divisors of {whole_name}", attrs=(part_name,),
        )


# ---------------------------------------------------------------- shared formula pieces
def lut_acc_bits(acc_width: int, dot_len: int, w_bits: int, a_bits: int, a_signed: bool) -> int:
    """Accumulator width the HLS LUT formulas use: the declared accDataType width, capped by the
    data-type bound of arXiv:2301.13376, ceil(alpha + log2(1 + 2^-alpha) + 1) with
    alpha = log2(dot_len) + W + A - 1 - signed(A). Evaluated with FINN's float operations
    (``math.log(x, 2)``, left-to-right sums) so that borderline cases round identically."""
    alpha = math.log(dot_len, 2) + w_bits + a_bits - 1 - int(a_signed)
    bound = math.ceil(alpha + math.log(1 + pow(2, -alpha), 2) + 1)
    return acc_width if acc_width <= bound else bound


def is_versal(part: str, version: str) -> bool:
    """FINN's is_versal; v0.10.1 did not yet list the xcv80 (Alveo V80) prefix."""
    if version == "0.10.1" and part[:5].lower() == "xcv80":
        return False
    return parts.is_versal(part)


_DSP58_CACHE: dict[tuple[str, str], bool] = {}


def has_dsp58(part: str, version: str) -> bool:
    """Whether FINN's get_dsp_block(part) is DSP58 (cached: called once per estimate)."""
    key = (part, version)
    hit = _DSP58_CACHE.get(key)
    if hit is None:
        hit = _DSP58_CACHE[key] = is_versal(part, version)
    return hit


def hls_stream_issues(op_type: str, streams: list[tuple[str, int, tuple[str, ...]]], checked: int) -> list[Issue]:
    """Streams (what, width, the folding attributes it grows with) too wide for HLS code generation.
    The first ``checked`` entries are the ones FINN asserts on (hlsbackend.get_ap_int_max_w: input 0
    and output, at most 8191 bits); later entries (weight streams) only widen the AP_INT_MAX_W define,
    which the ap_int headers cap at 32768 bits."""
    issues = []
    for i, (what, width, attrs) in enumerate(streams):
        if i < checked and width > AP_INT_MAX_W_LIMIT:
            issues.append(Issue(f"{op_type} {what} is {width} bits wide; FINN asserts AP_INT_MAX_W <= 8191 "
                                "(hlsbackend.get_ap_int_max_w)", attrs))
        elif i >= checked and width > AP_INT_HEADER_LIMIT:
            issues.append(Issue(f"{op_type} {what} is {width} bits wide; it sets AP_INT_MAX_W, which the ap_int "
                                f"headers cap at {AP_INT_HEADER_LIMIT} (ap_common.h)", attrs))
    return issues


def binary_issue(op_type: str, a: dict[str, Any]) -> list[str]:
    """HLS templates support BINARY operands only as bipolar via binaryXnorMode."""
    if a.get("binaryXnorMode", 0) != 1 and "BINARY" in (a.get("inputDataType"), a.get("weightDataType")):
        return [f"{op_type} with BINARY input or weights needs binaryXnorMode=1: FINN's HLS code "
                "generation raises 'True binary (non-bipolar) inputs not yet supported' "
                "(get_template_param_values)"]
    return []


def uram_writeable_issue(op_type: str, a: dict[str, Any], part: str, version: str) -> list[str]:
    """Decoupled URAM weights cannot be initialised from a file: FINN demands runtime-writeable
    weights (dev: on non-Versal parts, at generate_hdl/code_generation_ipgen; v0.10.1: on every
    part, at code_generation_ipi)."""
    if (a["mem_mode"] == "internal_decoupled" and a["ram_style"] == "ultra"
            and a.get("runtime_writeable_weights", 0) != 1
            and (version == "0.10.1" or not is_versal(part, version))):
        return [Issue(f"{op_type} with ram_style='ultra' (internal_decoupled) needs runtime_writeable_weights=1"
                      + ("" if version == "0.10.1" else " on non-Versal parts"),
                      ("ram_style", "mem_mode", "runtime_writeable_weights"))]
    return []


def output_dtype_issue(op_type: str, a: dict[str, Any]) -> list[str]:
    if not a.get("outputDataType"):
        return [f"{op_type}: outputDataType is not set (FINN's code generation requires it)"]
    return []


# ---------------------------------------------------------------- MVAU
_MVAU_COMMON = {
    "resType": "auto",
    "ActVal": 0,
    "accDataType": "INT32",
    "binaryXnorMode": 0,
    "noActivation": 0,
    "numInputVectors": [1],
    "mem_mode": "internal_decoupled",
    "ram_style": "auto",
    "ram_style_thresholds": "auto",
    "runtime_writeable_weights": 0,
}
#: Attributes FINN dev added (HWCustomOp/MVAU); none but mlo_max_iter changes an estimate.
_MVAU_DEV_EXTRA = {"pumpedMemory": 0, "dynamic_input": 0, "mlo_max_iter": 0}


class _MVAU(NodeModel):
    """Memory, cycles and checks common to MVAU_hls and MVAU_rtl."""

    folds = {"PE": lambda a: a["MH"], "SIMD": lambda a: a["MW"]}

    def choices(self, a: dict[str, Any], version: str) -> dict[str, tuple[Any, ...]]:
        if a.get("dynamic_input"):
            # weights streamed by FINN's dynamic loader (internal_decoupled only): no weight memory
            return {}
        out = {"ram_style": ("auto", "block", "distributed", "ultra"),
               "mem_mode": ("internal_embedded", "internal_decoupled", "external"),
               "runtime_writeable_weights": (0, 1)}
        if version != "0.10.1":
            # a double-pumped weight memory (clk2x): FINN's estimates ignore it
            out["pumpedMemory"] = (0, 1)
        return out

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        # matrixvectoractivation.py generate_params: a double-pumped decoupled memory needs two words
        if (version != "0.10.1" and a.get("pumpedMemory") and a["mem_mode"] == "internal_decoupled"
                and a["PE"] == a["SIMD"] == 1):
            return [Issue(f"{self.op_type}: a double-pumped weight memory (pumpedMemory=1) needs PE * SIMD > 1",
                          ("pumpedMemory", "PE", "SIMD"))]
        return []

    def defaults(self, version: str) -> dict[str, Any]:
        d = dict(_MVAU_COMMON)
        if version != "0.10.1":
            d.update(_MVAU_DEV_EXTRA)
        return d

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        mw = positive_int(a, "MW", op)
        mh = positive_int(a, "MH", op)
        pe = positive_int(a, "PE", op)
        simd = positive_int(a, "SIMD", op)
        require_dtype(a, "inputDataType", op)
        require_dtype(a, "weightDataType", op)
        dtype_facts(a["accDataType"], f"{op}: accDataType")
        if a.get("outputDataType"):
            dtype_facts(a["outputDataType"], f"{op}: outputDataType")
        one_of(a, "mem_mode", MEM_MODES, op)
        one_of(a, "ram_style", RAM_STYLES, op)
        one_of(a, "ram_style_thresholds", RAM_STYLES_THRESHOLDS, op)
        one_of(a, "resType", RES_TYPES, op)
        for flag in ("noActivation", "binaryXnorMode", "runtime_writeable_weights"):
            one_of(a, flag, FLAGS, op)
        int_list(a, "numInputVectors", op)
        # FINN's calc_wmem asserts these on the paths that need WMEM (internal_embedded, and the
        # distributed-RAM LUT term); bsopt rejects them everywhere, as hardware cannot fold unevenly.
        divides("PE", pe, "MH", mh, op)
        divides("SIMD", simd, "MW", mw, op)

    def _memory(self, a: dict[str, Any], version: str) -> tuple[int, int, int, int]:
        """(BRAM_18K, URAM, WMEM, weight bits per word)."""
        pe, simd = a["PE"], a["SIMD"]
        width = pe * simd * dtype_facts(a["weightDataType"])[0]
        wmem = a["MW"] * a["MH"] // (pe * simd)
        mode, style = a["mem_mode"], a["ram_style"]
        if mode == "external" or (version != "0.10.1" and a.get("mlo_max_iter")):
            return 0, 0, wmem, width
        if mode == "internal_decoupled":
            bram = 0 if style in ("distributed", "ultra") else bram18_blocks(wmem, width, MVAU_BRAM_WIDTHS)
            uram = uram_blocks(wmem, width) if style == "ultra" else 0
            return bram, uram, wmem, width
        # internal_embedded: small memories are LUTRAM. Larger ones are counted as BRAM *and*
        # URAM whatever ram_style and part say (FINN quirk, reproduced: both estimators only test
        # for the embedded/WMEM<=128 case, so neither excludes the other).
        if wmem <= 128:
            return 0, 0, wmem, width
        return bram18_blocks(wmem, width, MVAU_BRAM_WIDTHS), uram_blocks(wmem, width), wmem, width

    def _luts(self, a: dict[str, Any], wmem: int) -> int:
        return 0

    def _dsps(self, a: dict[str, Any], part: str, version: str) -> int:
        return 0

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        bram, uram, wmem, _ = self._memory(a, version)
        weight_bits = dtype_facts(a["weightDataType"])[0] * a["MW"] * a["MH"]
        return {
            "BRAM_18K": bram,
            "BRAM_efficiency": efficiency(weight_bits, bram, BRAM18_CAPACITY_BITS),
            "LUT": self._luts(a, wmem),
            "URAM": uram,
            "URAM_efficiency": efficiency(weight_bits, uram, URAM_CAPACITY_BITS),
            "DSP": self._dsps(a, part, version),
        }

    def streams(self, a: dict[str, Any]):
        # matrixvectoractivation.py get_folded_input_shape: dynamic weights stream PE per transfer
        weights = (a["PE"], a["weightDataType"]) if a.get("dynamic_input") else None
        return [(a["SIMD"], a["inputDataType"]), weights], [(a["PE"], a["outputDataType"])]

    def cycles(self, a: dict[str, Any], version: str) -> int:
        # FINN: int((MH / PE) * (MW / SIMD) * prod(numInputVectors)), in floating point.
        vectors = a["numInputVectors"]
        n = math.prod(vectors) if not isinstance(vectors, int) else vectors
        return int(a["MH"] / a["PE"] * (a["MW"] / a["SIMD"]) * n)


@register
class MVAUHls(_MVAU):
    """MVAU_hls: finn-hlslib Matrix_Vector_Activate(_Stream)_Batch."""

    op_type = "MVAU_hls"

    def choices(self, a: dict[str, Any], version: str) -> dict[str, tuple[Any, ...]]:
        out = super().choices(a, version)
        if not out:
            return {"resType": ("auto", "lut", "dsp")}
        # FINN's attribute order (ram_style, ram_style_thresholds, resType, mem_mode, …); the thresholds'
        # memory style only where the MVAU applies thresholds
        thresholds = {} if a.get("noActivation") else {"ram_style_thresholds": ("auto", "block", "distributed")}
        return {"ram_style": out.pop("ram_style"), **thresholds, "resType": ("auto", "lut", "dsp"), **out}

    def defaults(self, version: str) -> dict[str, Any]:
        d = super().defaults(version)
        # FINN dev made LUT multipliers the HLS default; v0.10.1 left Vivado HLS to decide.
        d["resType"] = "auto" if version == "0.10.1" else "lut"
        return d

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        super().check(a, part, version)
        if a["noActivation"] == 0 and a["ram_style_thresholds"] == "distributed":
            require_dtype(a, "outputDataType", self.op_type)

    def _luts(self, a: dict[str, Any], wmem: int) -> int:
        pe = a["PE"]
        acc, core, lutram = finn_r_lut_core(a, wmem, a["MW"])
        thr = comp = 0
        if a["noActivation"] == 0 and a["ram_style_thresholds"] == "distributed":
            levels = 2 ** dtype_facts(a["outputDataType"])[0] - 1
            thr = levels * acc * -(-(a["MH"] // pe) // 64)
            comp = levels * acc
        return int(300 + 1.1 * (pe * (core + thr + comp)) + lutram)

    def _dsps(self, a: dict[str, Any], part: str, version: str) -> int:
        if a["resType"] != "dsp":
            return 0
        wa = dtype_facts(a["weightDataType"])[0] + dtype_facts(a["inputDataType"])[0]
        return a["PE"] * a["SIMD"] * -(-wa // 48)

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        op = self.op_type
        pe, simd, mw = a["PE"], a["SIMD"], a["MW"]
        issues = super().codegen_issues(a, part, version)
        # hls/matrixvectoractivation_hls.py, defines("ipgen")
        if not simd >= mw / 1024:
            issues.append(Issue(f"{op} needs SIMD >= MW/1024 for HLS synthesis (SIMD={simd}, MW={mw}, "
                                f"so SIMD must be at least {-(-mw // 1024)}) (MVAU_hls.defines)", ("SIMD",)))
        w_bits = dtype_facts(a["weightDataType"])[0]
        streams = [
            ("input stream (SIMD * input bits)", simd * dtype_facts(a["inputDataType"])[0], ("SIMD",)),
            ("output stream (PE * output bits)",
             pe * dtype_facts(a["outputDataType"])[0] if a.get("outputDataType") else 0, ("PE",)),
        ]
        # MVAU_hls.get_ap_int_max_w adds the weight stream (decoupled/external) and one PE's weights
        if a["mem_mode"] in ("internal_decoupled", "external"):
            streams.append(("weight stream (PE * SIMD * weight bits)", pe * simd * w_bits, ("PE", "SIMD", "mem_mode")))
        else:
            streams.append(("weight word of one PE (SIMD * weight bits)", simd * w_bits, ("SIMD", "mem_mode")))
        issues += hls_stream_issues(op, streams, checked=2)
        issues += binary_issue(op, a)
        issues += uram_writeable_issue(op, a, part, version)
        issues += output_dtype_issue(op, a)
        return issues


@register
class MVAURtl(_MVAU):
    """MVAU_rtl: finn-rtllib mvu_vvu_axi on DSP slices (LUTs are not estimated: FINN returns 0)."""

    op_type = "MVAU_rtl"

    def choices(self, a: dict[str, Any], version: str) -> dict[str, tuple[Any, ...]]:
        out = super().choices(a, version)
        if version != "0.10.1":
            out["pumpedCompute"] = (0, 1)
        return out

    def defaults(self, version: str) -> dict[str, Any]:
        d = super().defaults(version)
        if version != "0.10.1":
            d["pumpedCompute"] = 0
        return d

    def _dsps(self, a: dict[str, Any], part: str, version: str) -> int:
        pe, simd = a["PE"], a["SIMD"]
        if has_dsp58(part, version):
            return pe * -(-simd // 3)  # DSP58: 3 MACs per slice along SIMD
        return -(-pe // 4) * simd  # DSP48: 4 PEs packed per slice

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        op = self.op_type
        issues = super().codegen_issues(a, part, version)
        # rtl/matrixvectoractivation_rtl.py: _resolve_dsp_version (dev) / _resolve_impl_style (0.10.1)
        if a["resType"] == "lut":
            issues.append(Issue(f"{op} has no LUT-based implementation: resType 'lut' is rejected "
                                "(use 'dsp' or 'auto', or MVAU_hls)", ("resType",)))
        # transformation/fpgadataflow/specialize_layers.py: _mvu_rtl_possible. The RTL core has no
        # threshold or XNOR datapath and multiplies signed weights.
        if a["noActivation"] == 0:
            issues.append(f"{op} cannot apply embedded thresholds (noActivation=0); FINN only "
                          "builds MVAUs with noActivation=1 as RTL")
        if a["binaryXnorMode"] == 1:
            issues.append(f"{op} does not support binaryXnorMode=1")
        a_bits, a_signed, _ = dtype_facts(a["inputDataType"])
        w_bits, w_signed, _ = dtype_facts(a["weightDataType"])
        if not w_signed:
            issues.append(f"{op} needs signed weights (weightDataType={a['weightDataType']})")
        lo = 1 if version == "0.10.1" else 2  # dev's mvu.sv rejects operands below 2 bits
        if not (lo <= w_bits <= 8):
            issues.append(f"{op} supports {lo}..8-bit weights, not {w_bits} bits "
                          "(finn-rtllib/mvu, specialize_layers._mvu_rtl_possible)")
        if not (lo <= a_bits <= 8 or (a_bits == 9 and a_signed)):
            issues.append(f"{op} supports {lo}..8-bit inputs (9-bit if signed), not "
                          f"{a['inputDataType']} (finn-rtllib/mvu, specialize_layers._mvu_rtl_possible)")
        if a["mem_mode"] == "internal_embedded":
            issues.append(Issue(f"{op} has no embedded weight memory: with mem_mode='internal_embedded' its "
                                "weight stream is left unconnected (use internal_decoupled or external)",
                                ("mem_mode",)))
        # rtl/matrixvectoractivation_rtl.py prepare_codegen_default (dev)
        if version != "0.10.1" and a.get("pumpedCompute") and a["SIMD"] == 1:
            issues.append(Issue(f"{op}: clock pumping (pumpedCompute=1) needs SIMD > 1", ("pumpedCompute", "SIMD")))
        issues += uram_writeable_issue(op, a, part, version)
        issues += output_dtype_issue(op, a)
        return issues


def finn_r_lut_core(a: dict[str, Any], wmem: int, dot_length: int) -> tuple[int, int, int]:
    """The part of FINN-R's LUT model (Blott et al. 2018) that MVAU_hls and VVAU_hls share:
    ``300 + 1.1 * PE * (multipliers + adder tree + accumulator + thresholds + comparators) + LUTRAM``.

    Returns (accumulator bits, multipliers + adder tree + accumulator per PE, weight LUTRAM).
    resType "auto" counts as LUT.
    """
    pe, simd = a["PE"], a["SIMD"]
    w = dtype_facts(a["weightDataType"])[0]
    a_bits, a_signed, _ = dtype_facts(a["inputDataType"])
    mode = a["mem_mode"]
    lutram = 0
    if (mode == "internal_decoupled" and a["ram_style"] == "distributed") or (
            mode == "internal_embedded" and wmem <= 128):
        lutram = pe * simd * w * -(-wmem // 64)
    wa = w + a_bits
    mult = 0 if a["resType"] == "dsp" else simd * (2 * -(-wa // 6) - 1) * wa
    adder = wa * (2 * simd - 1)
    acc = lut_acc_bits(dtype_facts(a["accDataType"])[0], dot_length, w, a_bits, a_signed)
    return acc, mult + adder + acc, lutram
