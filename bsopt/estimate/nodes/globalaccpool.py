"""GlobalAccPool_hls: sums each channel over the whole feature map (global average pool without
the division).

Sources: ``custom_op/fpgadataflow/globalaccpool.py`` and ``hls/globalaccpool_hls.py`` (FINN dev
73ba5ed and 0.10.1, identical for the estimates); the HLS kernel is ``AccPool_Batch`` in
finn-hlslib ``maxpool.h``.

Estimate model: no resources (HWCustomOp defaults). ``get_exp_cycles`` reads every folded input
word and then writes one word per channel fold: ``prod(numInputVectors) * NumChannels/PE +
NumChannels/PE``. Building the folded shape asserts that PE divides NumChannels.
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import (
    NodeModel,
    check_pe_divides,
    register,
    stream_width_issues,
    zero_resources,
)


def output_dtype(idt, vecs: list[int]):
    """FINN's accumulator type: the smallest type holding the extreme sum over H*W pixels."""
    npixels = vecs[-1] * vecs[-2]
    return DataType.get_smallest_possible(npixels * (idt.min() if idt.signed() else idt.max()))


@register
class GlobalAccPoolHLS(NodeModel):
    op_type = "GlobalAccPool_hls"
    folds = {"PE": lambda a: a["NumChannels"]}

    def defaults(self, version: str) -> dict[str, Any]:
        return {"numInputVectors": [1]}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        check_pe_divides(a, self.op_type, "NumChannels", hint="FINN asserts 'PE must divide NumChannels' in get_exp_cycles")

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues: list[str] = []
        vecs = list(a["numInputVectors"])
        if len(vecs) != 3:
            # get_output_datatype needs H and W (vecs[-2], vecs[-1]); get_normal_output_shape only
            # handles 1 or 3 entries, so only [N, H, W] generates code.
            issues.append(f"numInputVectors must be [N, H, W] for code generation, got {vecs}")
            return issues
        if vecs[1] != vecs[2]:
            issues.append(f"AccPool_Batch (finn-hlslib maxpool.h) assumes a square image and gets "
                          f"ImgDim={vecs[1]}, but the feature map is {vecs[1]}x{vecs[2]}")
        try:
            idt = DataType[a.get("inputDataType", "")]
        except KeyError:
            issues.append("inputDataType must name a valid FINN data type")
            return issues
        width = a["PE"] * max(idt.bitwidth(), output_dtype(idt, vecs).bitwidth())
        issues += stream_width_issues(width)
        return issues

    def streams(self, a: dict[str, Any]):
        odt = output_dtype(DataType[a["inputDataType"]], list(a["numInputVectors"])).name
        return [(a["PE"], a["inputDataType"])], [(a["PE"], odt)]

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return zero_resources()

    def cycles(self, a: dict[str, Any], version: str) -> int:
        folds = a["NumChannels"] // a["PE"]
        return math.prod(a["numInputVectors"]) * folds + folds
