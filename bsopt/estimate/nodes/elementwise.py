"""Elementwise{Add,Sub,Mul}_{hls,rtl} (FINN dev only): binary elementwise ops with PE lanes.

The kernel is Brainsmith's ``ElementwiseBinaryOp``, upstreamed into FINN dev 73ba5ed as one op per
function (``custom_op/fpgadataflow/elementwise_binary.py``, ``hls/`` and ``rtl/`` backends).

* Folding: PE divides the output's last dimension and each operand's last dimension, unless that
  operand broadcasts along it (last dimension 1), as FINN's folded input shapes require.
* Cycles (FINN = Brainsmith when one operand has the output's shape): ``numel(out)/PE``.
* Resources: FINN estimates none. Brainsmith's HLS backend (v0.1.0
  ``kernels/elementwise_binary/elementwise_binary_hls.py``) does, and bsopt uses them for ``*_hls``::

      LUT  = max(bits(lhs), bits(rhs)) * PE  [+ PE * bits(rhs) * ceil(tmem/64)  if ram_style=distributed]
      BRAM = ceil(bits(rhs) * PE / 16) * ceil(tmem/1024)                        if ram_style=block
      tmem = prod(rhs_shape[:-1]); the memory terms only when tmem > 1; DSP = URAM = 0

  The RTL backend (float operands on Versal) has no estimate in either (0).
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import NodeModel, prod, register, require, stream_width_issues, zero_resources

_REQUIRED = ("lhs_shape", "rhs_shape", "out_shape", "lhs_dtype", "rhs_dtype")


def _pe_dim(a: dict[str, Any]) -> int:
    """PE divides the output's last axis and every operand's last axis that does not broadcast."""
    dim = a["out_shape"][-1]
    for side in ("lhs_shape", "rhs_shape"):
        if a[side][-1] != 1:
            dim = math.gcd(dim, a[side][-1])
    return dim


class _Elementwise(NodeModel):
    folds = {"PE": lambda a: _pe_dim(a)}
    versions = ("latest",)

    def defaults(self, version: str) -> dict[str, Any]:
        return {"PE": 1, "ram_style": "auto", "mem_mode": "internal_embedded"}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        missing = [k for k in _REQUIRED if not a.get(k)]
        require(not missing, f"{op}: required attribute(s) {', '.join(missing)} not set")
        pe = a["PE"]
        require(pe >= 1, f"{op}: PE must be positive, got {pe}", attrs=("PE",))
        require(a["out_shape"][-1] % pe == 0, f"{op}: PE={pe} does not divide the output's last dimension "
                f"{a['out_shape'][-1]}", hint="choose PE among the divisors of the channel count", attrs=("PE",))
        for side in ("lhs_shape", "rhs_shape"):
            last = a[side][-1]
            require(last == 1 or last % pe == 0, f"{op}: PE={pe} does not divide {side}[-1]={last}", attrs=("PE",))

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        return stream_width_issues(a["PE"] * DataType[a.get("out_dtype", "INT32")].bitwidth())

    def streams(self, a: dict[str, Any]):
        # elementwise_binary.py get_folded_input_shape: a broadcast last axis of 1 is not folded;
        # a constant operand is no stream
        ins: list = []
        for side, dt in (("lhs", "lhs_dtype"), ("rhs", "rhs_dtype")):
            if a.get(f"{side}_style", "input") == "const":
                ins.append(None)
            else:
                ins.append((a["PE"] if a[f"{side}_shape"][-1] != 1 else 1, a[dt]))
        return ins, [(a["PE"], a["out_dtype"])]

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return prod(a["out_shape"]) // a["PE"]


class _ElementwiseHLS(_Elementwise):
    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        pe = a["PE"]
        wl, wr = DataType[a["lhs_dtype"]].bitwidth(), DataType[a["rhs_dtype"]].bitwidth()
        tmem = prod(a["rhs_shape"][:-1])
        lut = max(wl, wr) * pe
        bram = 0
        if tmem > 1 and a["ram_style"] == "distributed":
            lut += pe * wr * math.ceil(tmem / 64)
        if tmem > 1 and a["ram_style"] == "block":
            bram = math.ceil(wr * pe / 16) * math.ceil(tmem / 1024)
        out = zero_resources()
        out.update(LUT=lut, BRAM_18K=bram)
        return out


class _ElementwiseRTL(_Elementwise):
    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return zero_resources()


for _fn in ("Add", "Sub", "Mul"):
    for _base, _suffix in ((_ElementwiseHLS, "hls"), (_ElementwiseRTL, "rtl")):
        register(type(f"Elementwise{_fn}{_suffix.upper()}", (_base,), {"op_type": f"Elementwise{_fn}_{_suffix}"}))
