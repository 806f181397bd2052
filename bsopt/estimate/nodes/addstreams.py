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

from bsopt.estimate.base import (
    HLS_MAX_STREAM_WIDTH,
    Issue,
    NodeModel,
    check_pe_divides,
    register,
    zero_resources,
)


def output_dtype(idt):
    """FINN's AddStreams output type: one value range wider than the input."""
    return DataType.get_smallest_possible(2 * (idt.min() if idt.signed() else idt.max()))


@register
class AddStreamsHLS(NodeModel):
    op_type = "AddStreams_hls"
    folds = {"PE": lambda a: a["NumChannels"]}
    versions = ("0.10.1",)

    def defaults(self, version: str) -> dict[str, Any]:
        return {"numInputVectors": [1], "inFIFODepths": [2, 2]}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        check_pe_divides(a, self.op_type, "NumChannels", hint="FINN asserts 'PE must divide NumChannels' in get_exp_cycles")

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        try:
            idt = DataType[a.get("inputDataType", "")]
        except KeyError:
            return ["inputDataType must name a valid FINN data type"]
        width = a["PE"] * max(idt.bitwidth(), output_dtype(idt).bitwidth())
        if width > HLS_MAX_STREAM_WIDTH:
            return [Issue(f"HLS stream width {width} exceeds AP_INT_MAX_W={HLS_MAX_STREAM_WIDTH} "
                          f"(HLSBackend.get_ap_int_max_w)", ("PE",))]
        return []

    def streams(self, a: dict[str, Any]):
        s = (a["PE"], a["inputDataType"])
        return [s, s], [(a["PE"], output_dtype(DataType[a["inputDataType"]]).name)]

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return zero_resources()

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return math.prod(a["numInputVectors"]) * (a["NumChannels"] // a["PE"])
