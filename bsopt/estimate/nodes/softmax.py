"""HWSoftmax_hls (FINN dev only): float softmax over the last axis with SIMD lanes.

Sources: FINN dev 73ba5ed ``custom_op/fpgadataflow/hwsoftmax.py`` and ``hls/hwsoftmax_hls.py``;
Brainsmith v0.1.0 ``kernels/softmax`` (the kernel's origin, registered there as ``Softmax``).

* Folding: ``SIMD`` divides ``C = ifm_dim[-1]`` (FINN asserts it when folding the shapes).
* Resources: none estimated by FINN or Brainsmith (0).
* Cycles: FINN dev does not override ``get_exp_cycles`` (0); bsopt uses Brainsmith's estimate,
  the initiation interval ``numel/SIMD``.
* FINN asserts that the input type can represent 0.
"""

from __future__ import annotations

from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import (
    NodeModel,
    check_simd_divides_channels,
    prod,
    register,
    require,
    stream_width_issues,
    zero_resources,
)


@register
class HWSoftmaxHLS(NodeModel):
    op_type = "HWSoftmax_hls"
    folds = {"SIMD": lambda a: a["ifm_dim"][-1]}
    versions = ("latest",)

    def defaults(self, version: str) -> dict[str, Any]:
        return {"SIMD": 1}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        check_simd_divides_channels(a, self.op_type)
        dt = DataType[a.get("input_data_type", "FLOAT32")]
        require(dt.allowed(0), f"{self.op_type}: input type {dt.name} cannot represent 0 (FINN asserts it)")

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        return stream_width_issues(a["SIMD"] * 32, ("SIMD",))  # FLOAT32 output lanes

    def streams(self, a: dict[str, Any]):
        return [(a["SIMD"], a.get("input_data_type", "FLOAT32"))], [(a["SIMD"], "FLOAT32")]

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return zero_resources()

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return prod(a["ifm_dim"]) // a["SIMD"]
