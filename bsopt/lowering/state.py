"""What the lowering knows about each tensor while it walks a QONNX graph.

A tensor is either a plain constant (``numpy`` array), a quantized constant (:class:`QConst`,
integer values plus a scale, e.g. a weight matrix behind a ``Quant`` node) or a :class:`Stream`:
a stream of integers ``q`` flowing between dataflow layers, together with the elementwise,
monotone real-valued function that maps ``q`` to the value the float graph computes
(``real = ops(q)``). Keeping that function symbolic is what lets a quantized activation become
thresholds on the integers, as FINN's streamlining does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qonnx.core.datatype import DataType

from bsopt.errors import ModelError

INT32 = DataType["INT32"]


@dataclass
class QConst:
    """A quantized constant: ``real = scale * (values - zeropt)`` with integer ``values``."""

    values: np.ndarray
    scale: np.ndarray  # broadcast to values.shape
    dtype: Any  # qonnx DataType of the integer values

    def real(self) -> np.ndarray:
        return self.values * self.scale


@dataclass
class Op:
    """One elementwise step of a stream's value function; parameters are per channel."""

    kind: str  # "affine" | "relu" | "clip"
    a: np.ndarray | float = 1.0
    b: np.ndarray | float = 0.0

    def apply(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "affine":
            return x * self.a + self.b
        if self.kind == "relu":
            return np.maximum(x, 0.0)
        return np.clip(x, self.a, self.b)


@dataclass
class Stream:
    """An integer stream between dataflow layers and the value function that gives its meaning."""

    dtype: Any  # qonnx DataType of q
    shape: tuple[int, ...]  # shape in the QONNX graph's own layout (NCHW for images)
    tensor: str  # name of the dataflow tensor carrying q
    ops: list[Op] = field(default_factory=list)
    acc_layer: Any = None  # the MVAU/VVAU whose accumulator this is, activation still open
    bipolar: bool = False  # q in {0, 1} encodes the bipolar values {-1, +1}
    layout: str = "NCHW"  # "NCHW" or "NHWC" for rank-4 tensors

    @property
    def channels(self) -> int:
        if len(self.shape) == 4 and self.layout == "NCHW":
            return int(self.shape[1])
        return int(self.shape[-1])

    def nhwc_shape(self) -> tuple[int, ...]:
        """The shape as FINN sees it (channels last)."""
        if len(self.shape) == 4 and self.layout == "NCHW":
            n, c, h, w = self.shape
            return (int(n), int(h), int(w), int(c))
        return tuple(int(s) for s in self.shape)

    def with_op(self, op: Op) -> Stream:
        ops = list(self.ops)
        if op.kind == "affine" and ops and ops[-1].kind == "affine":
            last = ops.pop()
            op = Op("affine", last.a * op.a, last.b * op.a + op.b)
        ops.append(op)
        return Stream(self.dtype, self.shape, self.tensor, ops, self.acc_layer, self.bipolar, self.layout)

    def affine(self) -> tuple[np.ndarray | float, np.ndarray | float] | None:
        """(a, b) if the value function is a single affine map (or identity), else None."""
        if not self.ops:
            return 1.0, 0.0
        if len(self.ops) == 1 and self.ops[0].kind == "affine":
            return self.ops[0].a, self.ops[0].b
        return None

    def value(self, q: np.ndarray) -> np.ndarray:
        """Evaluate the value function on integers q of shape (channels, n)."""
        x = q.astype(np.float64)
        for op in self.ops:
            a = _col(op.a)
            b = _col(op.b)
            x = Op(op.kind, a, b).apply(x)
        return x

    def domain(self) -> tuple[int, int]:
        if self.acc_layer is not None:
            return int(INT32.min()), int(INT32.max())
        return int(self.dtype.min()), int(self.dtype.max())


def _col(v):
    arr = np.asarray(v, dtype=np.float64)
    return arr.reshape(-1, 1) if arr.ndim == 1 else arr


def channel_vector(const: np.ndarray, shape: tuple[int, ...], layout: str, where: str) -> np.ndarray | float:
    """Reduce a constant broadcast against a tensor of ``shape`` to a per-channel vector or a scalar.

    Raises ModelError if the constant varies along any axis but the channel axis.
    """
    const = np.asarray(const, dtype=np.float64)
    if const.size == 1:
        return float(const.reshape(()))
    try:
        full = np.broadcast_to(const, shape)
    except ValueError as exc:
        raise ModelError(f"constant of shape {const.shape} does not broadcast to {shape}", where=where) from exc
    axis = 1 if (len(shape) == 4 and layout == "NCHW") or len(shape) == 2 else len(shape) - 1
    moved = np.moveaxis(full, axis, -1).reshape(-1, shape[axis])
    if not np.all(moved == moved[0:1]):
        raise ModelError(
            "elementwise constant varies across positions, not only across channels; FINN can only "
            "absorb per-channel (or per-tensor) scales and biases",
            where=where,
        )
    row = moved[0]
    return float(row[0]) if np.all(row == row[0]) else row.copy()
