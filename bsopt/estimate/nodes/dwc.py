"""StreamingDataWidthConverter (DWC), HLS and RTL variants.

Sources (FINN dev 73ba5ed and 0.10.1 agree on every estimate):
``custom_op/fpgadataflow/streamingdatawidthconverter.py`` (generic op: LUT estimate, folded shapes),
``hls/streamingdatawidthconverter_hls.py`` and ``rtl/streamingdatawidthconverter_rtl.py``.

Estimate model
--------------
Only LUTs are estimated; BRAM, URAM and DSP are zero and ``get_exp_cycles`` is the HWCustomOp
default 0. FINN assumes a shift-register converter that, when the wider width is not a multiple
of the narrower one, goes up from the input width to ``lcm(inWidth, outWidth)`` and down again to
the output width. Each of the (at most two) conversion stages costs ``|ceil(log2(ratio))|`` counter
LUTs plus one control-set LUT per bit of the stage's output width. The ``log2`` is evaluated in
floating point exactly as FINN does (``math.log(x, 2)``), so rounding artefacts are reproduced.

The estimate reads nothing but ``inWidth`` and ``outWidth``: ``shape`` and ``dataType`` are only
checked when the folded shapes are built, i.e. during code generation (see ``codegen_issues``).
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import HLS_MAX_STREAM_WIDTH, NodeModel, prod, register, require


def dwc_luts(in_width: int, out_width: int) -> int:
    """FINN's LUT estimate of a width converter from ``in_width`` to ``out_width`` bits."""
    narrow, wide = min(in_width, out_width), max(in_width, out_width)
    mid = abs(wide * narrow) // math.gcd(wide, narrow)  # least common multiple
    counters = 0
    control = 0
    if in_width != mid:  # stage 1: input width -> lcm
        counters += abs(math.ceil(math.log(in_width / mid, 2)))
        control += mid
    if mid != out_width:  # stage 2: lcm -> output width
        counters += abs(math.ceil(math.log(mid / out_width, 2)))
        control += out_width
    return int(counters + control)


class _DWC(NodeModel):
    backend = ""

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        for name in ("inWidth", "outWidth"):
            require(name in a, f"{self.op_type}: required attribute {name} is not set")
        iw, ow = a["inWidth"], a["outWidth"]
        # FINN fails inside lut_estimation for any non-positive width (division by zero or a
        # math domain error in log2).
        require(iw > 0 and ow > 0, f"{self.op_type}: inWidth ({iw}) and outWidth ({ow}) must be positive")

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues: list[str] = []
        iw, ow = a["inWidth"], a["outWidth"]
        if self.backend == "rtl" and max(iw, ow) % min(iw, ow) != 0:
            issues.append(
                f"the RTL width converter needs widths that are integer multiples of each other, "
                f"got inWidth={iw}, outWidth={ow} (check_divisible_iowidths in "
                f"rtl/streamingdatawidthconverter_rtl.py; SpecializeLayers picks the HLS variant instead)"
            )
        if self.backend == "hls" and max(iw, ow) > HLS_MAX_STREAM_WIDTH:
            issues.append(
                f"HLS stream width {max(iw, ow)} exceeds AP_INT_MAX_W={HLS_MAX_STREAM_WIDTH} "
                f"(HLSBackend.get_ap_int_max_w)"
            )
        shape, dtype_name = a.get("shape"), a.get("dataType")
        if not shape or not dtype_name:
            issues.append("required attributes shape and dataType must be set (folded shapes need them)")
            return issues
        if not _known_dtype(dtype_name):
            issues.append(f"unknown dataType {dtype_name!r}")
            return issues
        ebits = DataType[dtype_name].bitwidth()
        elems = {}
        for name, width in (("inWidth", iw), ("outWidth", ow)):
            if width % ebits:
                issues.append(
                    f"{name}={width} is not a multiple of the {dtype_name} element width {ebits} "
                    f"(get_folded_{'input' if name == 'inWidth' else 'output'}_shape asserts)"
                )
            else:
                elems[name] = width // ebits
                if shape[-1] % elems[name]:
                    issues.append(
                        f"{name}={width} carries {elems[name]} elements per word, which does not divide "
                        f"the innermost dimension {shape[-1]} (the folded-shape reshape fails)"
                    )
        if self.backend == "hls" and "inWidth" in elems and max(iw, ow) % min(iw, ow):
            # The two-stage HLS converter goes through the lcm width and asserts that the input
            # words group evenly into lcm words (streamingdatawidthconverter_hls.py, defines()).
            lcm = iw * ow // math.gcd(iw, ow)
            n_in_words = prod(shape[:-1]) * (shape[-1] // elems["inWidth"])
            if n_in_words % (lcm // iw):
                issues.append(
                    f"{n_in_words} input words do not group into whole {lcm}-bit intermediate words "
                    f"(the HLS DWC asserts NumInWords % (LCMWidth/InWidth) == 0)"
                )
        return issues

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return {"BRAM_18K": 0, "BRAM_efficiency": 1, "LUT": dwc_luts(a["inWidth"], a["outWidth"]),
                "URAM": 0, "URAM_efficiency": 1, "DSP": 0}

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return 0  # FINN does not override HWCustomOp.get_exp_cycles for the DWC


def _known_dtype(name: str) -> bool:
    try:
        DataType[name]
    except KeyError:
        return False
    return True


@register
class StreamingDataWidthConverterHLS(_DWC):
    op_type = "StreamingDataWidthConverter_hls"
    backend = "hls"


@register
class StreamingDataWidthConverterRTL(_DWC):
    op_type = "StreamingDataWidthConverter_rtl"
    backend = "rtl"
