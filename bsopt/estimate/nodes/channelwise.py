"""ChannelwiseOp_hls (FINN 0.10.1 only): per-channel add / mul / compare with a parameter vector.

Sources: FINN 0.10.1 ``custom_op/fpgadataflow/channelwise_op.py`` and
``hls/channelwise_op_hls.py`` (which overrides the BRAM and LUT estimates).

Estimate model, with ``P = PE``, ``A = bits(inputDataType)`` and ``TMEM = NumChannels // PE``
(depth of the parameter memory):

- BRAM_18K: ``ceil(A*P/16) * ceil(TMEM/1024)`` for ``ram_style="block"`` when ``TMEM > 1``, else 0.
- LUT: ``A*P`` (one comparator/adder per lane) plus, for ``ram_style="distributed"`` when
  ``TMEM > 1``, ``P*A*ceil(TMEM/64)`` LUTRAM.
- URAM 0, DSP 0, efficiencies 1 (HWCustomOp defaults).
- cycles: ``prod(numInputVectors) * NumChannels // PE``.

FINN never checks that PE divides NumChannels on the estimate path (it floors); bsopt rejects it,
as does FINN's parameter packing during code generation.
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import (
    NodeModel,
    ceil_div,
    register,
    require,
    stream_width_issues,
)

RAM_STYLES = ("distributed", "block")
FUNCS = ("cmp_le", "cmp_ge", "add", "mul")


@register
class ChannelwiseOpHLS(NodeModel):
    op_type = "ChannelwiseOp_hls"
    folds = {"PE": lambda a: a["NumChannels"]}
    versions = ("0.10.1",)

    def defaults(self, version: str) -> dict[str, Any]:
        return {"Func": "cmp_le", "ram_style": "distributed", "numInputVectors": [1]}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        for name in ("NumChannels", "PE", "inputDataType"):
            require(name in a, f"{op}: required attribute {name} is not set")
        require(a["ram_style"] in RAM_STYLES, f"{op}: ram_style {a['ram_style']!r} not in {RAM_STYLES}")
        try:
            DataType[a["inputDataType"]]
        except KeyError:
            require(False, f"{op}: unknown inputDataType {a['inputDataType']!r}")
        pe, ch = a["PE"], a["NumChannels"]
        require(pe > 0, f"{op}: PE must be positive, got {pe}", attrs=("PE",))
        require(ch % pe == 0, f"{op}: PE={pe} does not divide NumChannels={ch}",
                hint="FINN asserts it when packing the parameters for code generation", attrs=("PE",))

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues: list[str] = []
        if a["Func"] not in FUNCS:
            issues.append(f"Func {a['Func']!r} is not one of {FUNCS}")
        vecs = list(a["numInputVectors"])
        if len(vecs) not in (1, 3):
            issues.append(f"numInputVectors must have 1 or 3 entries, got {vecs} "
                          f"(ChannelwiseOp_hls.docompute raises 'Unexpected input shape')")
        try:
            obits = DataType[a.get("outputDataType", "")].bitwidth()
            DataType[a.get("paramDataType", "")]
        except KeyError:
            issues.append("outputDataType and paramDataType must name valid FINN data types")
            return issues
        width = a["PE"] * max(DataType[a["inputDataType"]].bitwidth(), obits)
        issues += stream_width_issues(width)
        return issues

    def streams(self, a: dict[str, Any]):
        return [(a["PE"], a["inputDataType"])], [(a["PE"], a["outputDataType"])]

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        style, pe = a["ram_style"], a["PE"]
        abits = DataType[a["inputDataType"]].bitwidth()
        tmem = a["NumChannels"] // pe
        bram = ceil_div(abits * pe, 16) * ceil_div(tmem, 1024) if style == "block" and tmem > 1 else 0
        lutram = pe * abits * ceil_div(tmem, 64) if style == "distributed" and tmem > 1 else 0
        return {
            "BRAM_18K": bram,
            "BRAM_efficiency": 1,
            "LUT": abits * pe + lutram,
            "URAM": 0,
            "URAM_efficiency": 1,
            "DSP": 0,
        }

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return math.prod(a["numInputVectors"]) * (a["NumChannels"] // a["PE"])
