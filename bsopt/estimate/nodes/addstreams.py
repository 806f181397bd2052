"""AddStreams_hls (FINN 0.10.1 only; dev replaced it by ElementwiseAdd): element-wise sum of two
streams of equal shape.

Sources: FINN 0.10.1 ``custom_op/fpgadataflow/addstreams.py`` and ``hls/addstreams_hls.py``.

Estimate model: no resources (HWCustomOp defaults). ``get_exp_cycles`` is the number of folded
output words, ``prod(numInputVectors) * NumChannels/PE``; building the folded shape asserts that PE
divides NumChannels. The output type is the smallest type holding twice the input's extreme value.
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import NodeModel, register, require

HLS_MAX_STREAM_WIDTH = 8191  # AP_INT_MAX_W limit asserted by FINN's HLSBackend.get_ap_int_max_w

_ZERO = {"BRAM_18K": 0, "BRAM_efficiency": 1, "LUT": 0, "URAM": 0, "URAM_efficiency": 1, "DSP": 0}


def output_dtype(idt):
    """FINN's AddStreams output type: one value range wider than the input."""
    return DataType.get_smallest_possible(2 * (idt.min() if idt.signed() else idt.max()))


@register
class AddStreamsHLS(NodeModel):
    op_type = "AddStreams_hls"
    versions = ("0.10.1",)

    def defaults(self, version: str) -> dict[str, Any]:
        return {"numInputVectors": [1], "inFIFODepths": [2, 2]}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        for name in ("NumChannels", "PE"):
            require(name in a, f"{op}: required attribute {name} is not set")
        pe, ch = a["PE"], a["NumChannels"]
        require(pe > 0, f"{op}: PE must be positive, got {pe}")
        require(ch % pe == 0, f"{op}: PE={pe} does not divide NumChannels={ch}",
                hint="FINN asserts 'PE must divide NumChannels' in get_exp_cycles")

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        try:
            idt = DataType[a.get("inputDataType", "")]
        except KeyError:
            return ["inputDataType must name a valid FINN data type"]
        width = a["PE"] * max(idt.bitwidth(), output_dtype(idt).bitwidth())
        if width > HLS_MAX_STREAM_WIDTH:
            return [f"HLS stream width {width} exceeds AP_INT_MAX_W={HLS_MAX_STREAM_WIDTH} "
                    f"(HLSBackend.get_ap_int_max_w)"]
        return []

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return dict(_ZERO)

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return math.prod(a["numInputVectors"]) * (a["NumChannels"] // a["PE"])
