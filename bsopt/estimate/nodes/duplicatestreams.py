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

from bsopt.estimate.base import (
    NodeModel,
    check_pe_divides,
    register,
    stream_width_issues,
    zero_resources,
)


@register
class DuplicateStreamsHLS(NodeModel):
    op_type = "DuplicateStreams_hls"
    folds = {"PE": lambda a: a["NumChannels"]}

    def defaults(self, version: str) -> dict[str, Any]:
        return {"numInputVectors": [1]}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        check_pe_divides(a, self.op_type, "NumChannels", hint="FINN asserts 'PE must divide NumChannels' in get_exp_cycles")

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues: list[str] = []
        if "NumOutputStreams" not in a:
            issues.append("required attribute NumOutputStreams is not set")
        try:
            width = a["PE"] * DataType[a.get("inputDataType", "")].bitwidth()
        except KeyError:
            issues.append("inputDataType must name a valid FINN data type")
            return issues
        issues += stream_width_issues(width)
        return issues

    def streams(self, a: dict[str, Any]):
        s = (a["PE"], a["inputDataType"])
        return [s], [s] * int(a.get("NumOutputStreams", 2))

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return zero_resources()

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return math.prod(a["numInputVectors"]) * (a["NumChannels"] // a["PE"])
