"""InnerShuffle_rtl and OuterShuffle_hls (FINN dev only): the two halves of a transpose.

FINN's ``step_transpose_decomposition`` splits every ``Shuffle`` (a Transpose with the Reshapes
around it) into a chain of inner moves (swap the last two axes: ``InnerShuffle``, RTL) and outer
moves (swap two axes other than the last: ``OuterShuffle``, HLS); bsopt's lowering emits that chain.

Sources: FINN dev 73ba5ed ``custom_op/fpgadataflow/inner_shuffle.py``, ``rtl/inner_shuffle_rtl.py``,
``outer_shuffle.py``, ``transformation/fpgadataflow/transpose_decomposition.py``.

* Resources: FINN estimates none (0).
* Folding: SIMD lanes along the last axis. The decomposition allows a move only if SIMD divides
  the last dimension; OuterShuffle asserts SIMD divides its input's last dimension; InnerShuffle's
  RTL generation silently raises SIMD to a divisor of ``I`` when SIMD does not divide it, so
  bsopt reports that as a code-generation issue instead of building something else.
* Cycles, InnerShuffle: ``2 * numel/SIMD + I*J/SIMD`` (double-buffered pages of ``I x J``).
* Cycles, OuterShuffle: FINN simulates its HLS reorder buffer cycle by cycle (write-pointer delay
  of 4, a power-of-two buffer sized from the read pointer's largest retreat, reads driven by the
  loop nest of the permuted strides). bsopt runs the same model. The pipeline initiation interval
  is 3 instead of 1 when the buffer exceeds 262,144 entries (URAM) with Vivado >= 2024.2, which
  bsopt assumes (FINN reads the version from ``$XILINX_VIVADO``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from bsopt.estimate.base import Issue, NodeModel, prod, register, require, stream_width_issues, zero_resources

WP_DELAY = 4
URAM_DEPTH = 262144


class _LoopNest:
    """The read-address generator of FINN's reorder buffer: nested loops (count N_k, stride C_k).

    ``step()`` returns the read- and free-pointer increments of the next output element.
    Level ``k`` restarts (rewinds) when its inner levels complete; the free pointer only advances
    where a whole contiguous block was read (the ``reclaim`` flags).
    """

    def __init__(self, total: int, counts: list[int], strides: list[int]):
        depth = len(counts)
        self.counts = counts
        self.width = [total] + list(strides)  # width of level k = stride of level k-1 (total at the top)
        reclaim = [True] * (depth + 1)
        for k in range(depth):
            reclaim[k + 1] = reclaim[k] and strides[k] > 0 and strides[k] * counts[k] <= self.width[k]
        self.reclaim = reclaim
        rp_back = [0] * (depth + 1)
        fp_back = [0] * (depth + 1)
        for k in range(depth - 1, -1, -1):
            rp_back[k] = (counts[k] - 1) * strides[k] + rp_back[k + 1]
            fp_back[k] = (counts[k] - 1) * strides[k] + fp_back[k + 1] if reclaim[k + 1] else 0
        self.wrap_rp = [self.width[k] - rp_back[k] for k in range(depth)]
        self.wrap_fp = [self.width[k] - fp_back[k] for k in range(depth)]
        retreat = 0
        for k in range(depth - 1, -1, -1):
            retreat = max(-self.wrap_rp[k], retreat)
        self.max_retreat = retreat
        self.left = [n - 2 for n in counts]

    def step(self) -> tuple[int, int]:
        depth = len(self.counts)
        w = self.width[depth]
        rp_inc, fp_inc = w, (w if self.reclaim[depth] else 0)
        for k in range(depth - 1, -1, -1):  # innermost level first; stop where a level keeps counting
            if self.left[k] >= 0:
                self.left[k] -= 1
                break
            rp_inc = self.wrap_rp[k]
            if self.reclaim[k]:
                fp_inc = self.wrap_fp[k]
            self.left[k] = self.counts[k] - 2
        return rp_inc, fp_inc


@lru_cache(maxsize=4096)
def outer_shuffle_cycles(shape: tuple[int, ...], perm: tuple[int, ...], simd: int) -> int:
    out = [shape[p] for p in perm]
    strides = [prod(shape[i + 1:]) for i in range(len(shape))]
    coeffs = [strides[p] for p in perm]
    out[-1] = out[-1] // simd
    coeffs = [c if c == 1 else c // simd for c in coeffs]
    total = prod(out)
    nest = _LoopNest(total, out, coeffs)
    buf = 1 << max(1, math.ceil(math.log2(max(1, nest.max_retreat + WP_DELAY + 2))))
    ii = 3 if buf > URAM_DEPTH else 1
    wp = [0] * WP_DELAY
    rp = fp = consumed = produced = cycle = 0
    pending = False
    while produced < total and cycle < total * 10:
        cycle += 1
        wp[1:] = wp[:-1]
        if wp[0] - fp < buf and consumed < total:
            wp[0] += 1
            consumed += 1
        if pending:
            produced += 1
            pending = False
        if not pending and rp < wp[-1]:
            d_rp, d_fp = nest.step()
            rp += d_rp
            fp += d_fp
            pending = True
    return cycle * ii


class _Shuffle(NodeModel):
    versions = ("latest",)

    def defaults(self, version: str) -> dict[str, Any]:
        return {"SIMD": 1}

    def streams(self, a: dict[str, Any]):
        return [(a["SIMD"], a["data_type"])], [(a["SIMD"], a["data_type"])]

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return zero_resources()


@register
class InnerShuffleRTL(_Shuffle):
    op_type = "InnerShuffle_rtl"
    # the decomposition allows SIMD dividing the last axis; the RTL also needs it to divide I (axis -2)
    folds = {"SIMD": lambda a: math.gcd(a["in_shape"][-1], a["in_shape"][-2])}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        require(bool(a.get("in_shape")) and len(a["in_shape"]) >= 2, f"{op}: in_shape needs two or more axes")
        simd, j = a["SIMD"], a["in_shape"][-1]
        require(simd >= 1, f"{op}: SIMD must be positive, got {simd}", attrs=("SIMD",))
        require(j % simd == 0, f"{op}: SIMD={simd} does not divide the last dimension {j}",
                hint="FINN's transpose decomposition only allows SIMD dividing the last dimension", attrs=("SIMD",))

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        i = a["in_shape"][-2]
        if i % a["SIMD"]:
            return [Issue(f"SIMD={a['SIMD']} does not divide I={i}; FINN's RTL generation would silently raise SIMD",
                          ("SIMD",))]
        return []

    def cycles(self, a: dict[str, Any], version: str) -> int:
        shape, simd = a["in_shape"], a["SIMD"]
        return 2 * (prod(shape) // simd) + (shape[-2] * shape[-1]) // simd


@register
class OuterShuffleHLS(_Shuffle):
    op_type = "OuterShuffle_hls"
    # SIMD divides the last axis of its input, of the transposed view and of its output
    folds = {"SIMD": lambda a: math.gcd(a["in_shape"][-1], a["transpose_in_shape"][-1], (a.get("out_shape") or [0])[-1])}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        for key in ("in_shape", "transpose_in_shape", "perm"):
            require(bool(a.get(key)), f"{op}: required attribute {key} is not set")
        simd = a["SIMD"]
        require(simd >= 1, f"{op}: SIMD must be positive, got {simd}", attrs=("SIMD",))
        for key in ("in_shape", "transpose_in_shape") + (("out_shape",) if a.get("out_shape") else ()):
            require(a[key][-1] % simd == 0, f"{op}: SIMD={simd} does not divide the last dimension of {key} "
                    f"({a[key][-1]})", hint="FINN asserts 'SIMD must divide into the innermost input dimension'",
                    attrs=("SIMD",))

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        from qonnx.core.datatype import DataType

        return stream_width_issues(a["SIMD"] * DataType[a["data_type"]].bitwidth(), ("SIMD",))

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return outer_shuffle_cycles(tuple(a["transpose_in_shape"]), tuple(a["perm"]), a["SIMD"])
