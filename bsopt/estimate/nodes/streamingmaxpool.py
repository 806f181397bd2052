"""StreamingMaxPool_hls (FINN 0.10.1 only; dev lowers MaxPool to ConvolutionInputGenerator_rtl +
Pool_hls): non-overlapping max pooling (stride = kernel).

Sources: FINN 0.10.1 ``custom_op/fpgadataflow/streamingmaxpool.py`` and
``hls/streamingmaxpool_hls.py``; the kernels are ``StreamingMaxPool_Precision`` (2D) and
``StreamingMaxPool_Precision_1d`` in finn-hlslib ``maxpool.h``; ``compute_pool_output_dim`` is
qonnx's.

Estimate model: no resources (HWCustomOp defaults). The attributes are first normalised so that a
1D case is always [1, D]: if ``ImgDim[1] == 1`` both ImgDim and PoolDim are reversed. The node is
1D when the normalised ImgDim and PoolDim both start with 1. Then, with ``W = ImgDim[1]``,
``K = PoolDim[1]``:

- 1D: ``OFM * (NumChannels // PE) * (K + 1)`` with ``OFM`` the pooled width (floor, or ceil when
  ``CeilMode``); PE folds the channels (``int(NumChannels / PE)``).
- 2D: ``int(W * W * (1 + 1 / (K * K)))`` — FINN's own (knowingly rough) formula, which ignores
  the image height and PE; reproduced as is, in floating point.
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


def _normalized(a: dict[str, Any]) -> tuple[list[int], list[int]]:
    img, k = list(a["ImgDim"]), list(a["PoolDim"])
    if img[1] == 1:
        img, k = img[::-1], k[::-1]
    return img, k


def _is_1d(a: dict[str, Any]) -> bool:
    img, k = _normalized(a)
    return img[0] == 1 and k[0] == 1


def pool_output_dim(ifm: int, k: int, ceil_mode: int) -> int:
    """qonnx compute_pool_output_dim with stride = kernel and no padding."""
    return math.ceil((ifm - k) / k + 1) if ceil_mode else math.floor((ifm - k) / k + 1)


@register
class StreamingMaxPoolHLS(NodeModel):
    op_type = "StreamingMaxPool_hls"
    folds = {"PE": lambda a: a["NumChannels"]}
    versions = ("0.10.1",)

    def defaults(self, version: str) -> dict[str, Any]:
        return {"PE": 0, "CeilMode": 0}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        for name in ("ImgDim", "PoolDim", "NumChannels"):
            require(name in a, f"{op}: required attribute {name} is not set")
        require(len(a["ImgDim"]) == 2 and len(a["PoolDim"]) == 2,
                f"{op}: ImgDim and PoolDim must be [H, W], got {a['ImgDim']} and {a['PoolDim']}")
        _, k = _normalized(a)
        require(k[1] > 0, f"{op}: PoolDim must be positive, got {a['PoolDim']}")
        if _is_1d(a):
            pe, ch = a["PE"], a["NumChannels"]
            require(pe > 0, f"{op}: 1D max pooling needs a positive PE, got {pe}", attrs=("PE",))
            require(ch % pe == 0, f"{op}: PE={pe} does not divide NumChannels={ch}", attrs=("PE",))

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues: list[str] = []
        try:
            bits = DataType[a.get("dataType", "")].bitwidth()
        except KeyError:
            return ["dataType must name a valid FINN data type"]
        (ih, iw), (kh, kw) = a["ImgDim"], a["PoolDim"]
        if _is_1d(a):
            if bits == 1:
                issues.append("1-bit 1D max pooling is not implemented on the HLS backend "
                              "(StreamingMaxPool_hls.docompute raises)")
            width = bits * a["PE"]
        else:
            if ih % kh or iw % kw:
                issues.append(f"2D StreamingMaxPool needs ImgDim divisible by PoolDim, got {a['ImgDim']} "
                              f"and {a['PoolDim']} (get_normal_output_shape asserts)")
            if ih != iw or kh != kw:
                issues.append(f"the 2D HLS kernel StreamingMaxPool_Precision takes a single ImgDim and "
                              f"PoolDim (square image and window, finn-hlslib maxpool.h), got ImgDim "
                              f"{a['ImgDim']} and PoolDim {a['PoolDim']}")
            width = bits * a["NumChannels"]
        issues += stream_width_issues(width)
        return issues

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return zero_resources()

    def cycles(self, a: dict[str, Any], version: str) -> int:
        img, k = _normalized(a)
        if _is_1d(a):
            nf = int(a["NumChannels"] / a["PE"])
            ofm = pool_output_dim(img[1], k[1], a["CeilMode"])
            return int(ofm * nf * (k[1] + 1))
        return int(img[1] * img[1] * (1 + 1 / (k[1] * k[1])))
