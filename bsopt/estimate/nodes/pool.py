"""Pool_hls: MaxPool / QuantAvgPool over im2col-style windows produced by a depthwise SWG.

Sources: ``custom_op/fpgadataflow/pool.py`` and ``hls/pool_hls.py`` (FINN dev 73ba5ed and 0.10.1,
identical for the estimates).

Estimate model: FINN estimates no resources (all HWCustomOp defaults: 0 BRAM/LUT/URAM/DSP,
efficiencies 1). ``get_exp_cycles`` is ``int((Channels * prod(KernelSize)) / PE *
prod(OutImgDims) * BatchSize)``, evaluated in floating point like FINN. The cycle estimate never
checks that PE divides Channels (only the folded shapes assert it); bsopt rejects such folding.
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import (
    NodeModel,
    register,
    require,
    stream_width_issues,
    zero_resources,
)

FUNCTIONS = ("MaxPool", "QuantAvgPool")



def _dtype(name: str | None):
    try:
        return DataType[name] if name else None
    except KeyError:
        return None


@register
class PoolHLS(NodeModel):
    op_type = "Pool_hls"
    folds = {"PE": lambda a: a["Channels"]}

    def defaults(self, version: str) -> dict[str, Any]:
        return {"AccumBits": 0, "Size": 1, "BatchSize": 1}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        for name in ("Channels", "PE", "KernelSize", "OutImgDims"):
            require(name in a, f"{op}: required attribute {name} is not set")
        pe, ch = a["PE"], a["Channels"]
        require(pe > 0, f"{op}: PE must be positive, got {pe}", attrs=("PE",))
        require(ch % pe == 0, f"{op}: PE={pe} does not divide Channels={ch}",
                hint="FINN asserts 'PE must divide input channels' when building the folded shapes", attrs=("PE",))

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues: list[str] = []
        fxn = a.get("Function", "")
        if fxn not in FUNCTIONS:
            issues.append(f"Function {fxn!r} is not one of {FUNCTIONS} (Pool.get_output_datatype raises)")
        idt, odt = _dtype(a.get("InputDataType")), _dtype(a.get("OutputDataType"))
        if idt is None or odt is None:
            issues.append("InputDataType and OutputDataType must name valid FINN data types")
            return issues
        if fxn == "MaxPool" and idt != odt:
            issues.append("MaxPool needs OutputDataType equal to InputDataType (Pool.get_output_datatype asserts)")
        if fxn == "QuantAvgPool" and idt.signed() != odt.signed():
            issues.append("QuantAvgPool cannot mix signed and unsigned data types (Pool.get_output_datatype asserts)")
        width = a["PE"] * max(idt.bitwidth(), odt.bitwidth())
        issues += stream_width_issues(width)
        return issues

    def streams(self, a: dict[str, Any]):
        return [(a["PE"], a["InputDataType"])], [(a["PE"], a["OutputDataType"])]

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return zero_resources()

    def cycles(self, a: dict[str, Any], version: str) -> int:
        k = math.prod(a["KernelSize"])
        return int(((a["Channels"] * k) / a["PE"]) * math.prod(a["OutImgDims"]) * a["BatchSize"])
