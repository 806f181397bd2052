"""Cost models of FINN's feature-map padding kernels: ``FMPadding_rtl`` (FINN dev and 0.10.1) and
``FMPadding_hls`` (0.10.1 only).

FINN estimates no resources for either (every count is 0; the efficiencies are FINN's default 1).
Cycles: ``NumChannels/SIMD * numInputVectors * (H + pad_top + pad_bottom) * (W + pad_left +
pad_right)``, with ``Padding = [top, left, bottom, right]``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import (
    HLS_MAX_STREAM_WIDTH,
    EstimateError,
    Issue,
    NodeModel,
    register,
    zero_resources,
)

_REQUIRED = ("ImgDim", "Padding", "NumChannels", "inputDataType")


@cache
def _dtype(name: str):
    try:
        return DataType[name]
    except KeyError:
        raise EstimateError(f"unknown FINN DataType {name!r}") from None


class _FMPadding(NodeModel):
    folds = {"SIMD": lambda a: a["NumChannels"]}
    def defaults(self, version: str) -> dict[str, Any]:
        return {"SIMD": 1, "numInputVectors": 1}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        missing = [k for k in _REQUIRED if k not in a]
        if missing:
            raise EstimateError(f"{op}: required attribute(s) {', '.join(missing)} not set")
        if (not isinstance(a["ImgDim"], (list, tuple)) or len(a["ImgDim"]) != 2
                or not isinstance(a["Padding"], (list, tuple)) or len(a["Padding"]) != 4):
            raise EstimateError(f"{op}: ImgDim needs [H, W] and Padding [top, left, bottom, right]")
        if not isinstance(a["numInputVectors"], int):
            raise EstimateError(f"{op}: numInputVectors must be an integer (FINN attribute type 'i')")
        _dtype(a["inputDataType"])
        simd, ch = a["SIMD"], a["NumChannels"]
        if simd < 1 or ch < 1:
            raise EstimateError(f"{op}: SIMD ({simd}) and NumChannels ({ch}) must be positive", attrs=("SIMD",))
        if ch % simd:
            # FINN's cycle estimate truncates instead; its folded shapes assert the divisibility
            raise EstimateError(f"{op}: SIMD must divide input channels",
                                hint="choose SIMD among the divisors of NumChannels", attrs=("SIMD",))

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues = []
        dt = _dtype(a["inputDataType"])
        if not dt.allowed(0):
            # FMPadding.get_input_datatype asserts this whenever code is generated
            issues.append(f"the padding value 0 is not representable in {a['inputDataType']} "
                          "(FMPadding DataType must support zero)")
        return issues

    def streams(self, a: dict[str, Any]):
        return [(a["SIMD"], a["inputDataType"])], [(a["SIMD"], a["inputDataType"])]

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return zero_resources()

    def cycles(self, a: dict[str, Any], version: str) -> int:
        h, w = a["ImgDim"]
        top, left, bottom, right = a["Padding"]
        return (a["NumChannels"] // a["SIMD"]) * a["numInputVectors"] * (h + top + bottom) * (w + left + right)


@register
class FMPaddingRTL(_FMPadding):
    op_type = "FMPadding_rtl"

    def defaults(self, version: str) -> dict[str, Any]:
        return {"SIMD": 1, "numInputVectors": 1, "dynamic_mode": 0}


@register
class FMPaddingHLS(_FMPadding):
    op_type = "FMPadding_hls"
    versions = ("0.10.1",)

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues = super().codegen_issues(a, part, version)
        width = a["SIMD"] * _dtype(a["inputDataType"]).bitwidth()
        if width > HLS_MAX_STREAM_WIDTH:
            issues.append(Issue(f"stream width {width} bits exceeds AP_INT_MAX_W={HLS_MAX_STREAM_WIDTH} (HLS)",
                                ("SIMD",)))
        return issues
