"""DuplicateStreams_hls: fans one stream out to NumOutputStreams identical streams.

Sources: ``custom_op/fpgadataflow/duplicatestreams.py`` and ``hls/duplicatestreams_hls.py`` (FINN
dev 73ba5ed and 0.10.1, identical for the estimates).

Estimate model: no resources (HWCustomOp defaults). ``get_exp_cycles`` is the number of folded
output words, ``prod(numInputVectors) * NumChannels/PE``; building the folded shape asserts that PE
divides NumChannels, so FINN itself rejects other folding.
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import NodeModel, register, require

HLS_MAX_STREAM_WIDTH = 8191  # AP_INT_MAX_W limit asserted by FINN's HLSBackend.get_ap_int_max_w

_ZERO = {"BRAM_18K": 0, "BRAM_efficiency": 1, "LUT": 0, "URAM": 0, "URAM_efficiency": 1, "DSP": 0}


@register
class DuplicateStreamsHLS(NodeModel):
    op_type = "DuplicateStreams_hls"

    def defaults(self, version: str) -> dict[str, Any]:
        return {"numInputVectors": [1]}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        for name in ("NumChannels", "PE"):
            require(name in a, f"{op}: required attribute {name} is not set")
        pe, ch = a["PE"], a["NumChannels"]
        require(pe > 0, f"{op}: PE must be positive, got {pe}")
        require(ch % pe == 0, f"{op}: PE={pe} does not divide NumChannels={ch}",
                hint="FINN asserts 'PE must divide NumChannels' in get_exp_cycles")

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues: list[str] = []
        if "NumOutputStreams" not in a:
            issues.append("required attribute NumOutputStreams is not set")
        try:
            width = a["PE"] * DataType[a.get("inputDataType", "")].bitwidth()
        except KeyError:
            issues.append("inputDataType must name a valid FINN data type")
            return issues
        if width > HLS_MAX_STREAM_WIDTH:
            issues.append(f"HLS stream width {width} exceeds AP_INT_MAX_W={HLS_MAX_STREAM_WIDTH} "
                          f"(HLSBackend.get_ap_int_max_w)")
        return issues

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return dict(_ZERO)

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return math.prod(a["numInputVectors"]) * (a["NumChannels"] // a["PE"])
