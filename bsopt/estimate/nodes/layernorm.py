"""LayerNorm_hls and LayerNorm_rtl (FINN dev only): normalisation over the last axis, SIMD lanes.

Sources: FINN dev 73ba5ed ``custom_op/fpgadataflow/layernorm.py``, ``hls/layernorm_hls.py``,
``rtl/layernorm_rtl.py``; Brainsmith v0.1.0 ``kernels/layernorm`` (where the kernel comes from).

* Folding: ``SIMD`` must divide the channel count ``C = ifm_dim[-1]`` (FINN asserts it when
  folding the shapes; Brainsmith enumerates the divisors of C).
* Resources: neither FINN nor Brainsmith estimates any (HWCustomOp defaults: 0).
* Cycles, ``LayerNorm_rtl``: FINN's formula
  ``(C/SIMD + 2*ceil(log2 SIMD) + 7) + (C/SIMD + 2*ceil(log2 SIMD) + 24) + numel/SIMD + 5``.
* Cycles, ``LayerNorm_hls``: FINN dev does not override ``get_exp_cycles`` (it reports 0, which
  would make the layer look free at any SIMD). bsopt uses Brainsmith's estimate for its HLS kernel,
  the initiation interval ``numel/SIMD`` (one element per lane and cycle).
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import (
    NodeModel,
    check_simd_divides_channels,
    prod,
    register,
    stream_width_issues,
    zero_resources,
)


class _LayerNorm(NodeModel):
    folds = {"SIMD": lambda a: a["ifm_dim"][-1]}
    versions = ("latest",)

    def defaults(self, version: str) -> dict[str, Any]:
        return {"SIMD": 1, "epsilon": 1e-5}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        check_simd_divides_channels(a, self.op_type)

    def streams(self, a: dict[str, Any]):
        return [(a["SIMD"], a["inputDataType"])], [(a["SIMD"], a["outputDataType"])]

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return zero_resources()


@register
class LayerNormHLS(_LayerNorm):
    op_type = "LayerNorm_hls"

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        # HLSBackend.get_ap_int_max_w: input and output streams (FLOAT32 lanes: SIMD <= 255)
        bits = max(DataType[a.get("inputDataType", "FLOAT32")].bitwidth(),
                   DataType[a.get("outputDataType", "FLOAT32")].bitwidth())
        return stream_width_issues(a["SIMD"] * bits, ("SIMD",))

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return prod(a["ifm_dim"]) // a["SIMD"]


@register
class LayerNormRTL(_LayerNorm):
    op_type = "LayerNorm_rtl"

    def cycles(self, a: dict[str, Any], version: str) -> int:
        simd, dim = a["SIMD"], a["ifm_dim"]
        tree = math.ceil(math.log2(simd)) * 2
        queue0 = dim[-1] // simd + tree + 7
        queue1 = dim[-1] // simd + tree + 24
        return int(queue0 + queue1 + prod(dim) // simd + 5)
