"""Turn a quantized activation into integer thresholds, as FINN's streamlining does.

A QONNX ``Quant`` (or ``BipolarQuant``) applied to a stream computes
``y = clip(round(f(q) / s + z))`` where ``f`` is the stream's monotone value function. Because ``f``
is non-decreasing per channel, output level ``k`` is reached exactly when ``q >= t_k`` for an
integer threshold ``t_k``; FINN's MultiThreshold stores those thresholds and the output is
``ActVal + #{k : q >= t_k}``. We find each ``t_k`` by a vectorised binary search over the integers of
the stream's domain, which gives FINN's ``ceil`` of the real-valued threshold clipped to the domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qonnx.core.datatype import DataType

from bsopt.errors import ModelError
from bsopt.lowering.state import Stream


@dataclass
class ActQuant:
    """The integer grid of a quantized activation."""

    qmin: int
    qmax: int
    scale: np.ndarray | float
    zeropt: np.ndarray | float
    rounding: str
    bipolar: bool

    @property
    def steps(self) -> int:
        return self.qmax - self.qmin

    def out_dtype(self):
        if self.bipolar:
            return DataType["BINARY"]
        if self.qmin < 0:
            bits = max(int(np.ceil(np.log2(max(-self.qmin, self.qmax + 1)))) + 1, 2)
            return DataType[f"INT{bits}"]
        bits = max(int(np.ceil(np.log2(self.qmax + 1))), 1)
        return DataType[f"UINT{bits}"] if bits > 1 else DataType["BINARY"]

    def boundaries(self) -> np.ndarray:
        """Pre-rounding values at which each output level k = 1..steps is reached."""
        k = np.arange(1, self.steps + 1, dtype=np.float64)
        if self.bipolar:
            return np.zeros(1)
        mode = self.rounding.upper()
        if mode in ("ROUND", "HALF_EVEN", "ROUND_TO_ZERO"):
            return self.qmin + k - 0.5
        if mode == "FLOOR":
            return self.qmin + k
        if mode == "CEIL":
            return self.qmin + k - 1 + np.finfo(np.float32).eps
        raise ModelError(f"unsupported rounding mode {self.rounding!r} in an activation quantizer")


def compute_thresholds(stream: Stream, quant: ActQuant, lo: int, hi: int, *, narrow: bool = True) -> np.ndarray:
    """Thresholds (channels x steps) on the stream's integers, searched in [lo, hi].

    ``hi`` is returned where a level is never reached inside the domain (FINN clips to max+1).
    ``narrow=False`` searches the whole domain everywhere (the reference the narrowing is tested against).
    """
    channels = stream.channels
    bounds = quant.boundaries()
    steps = len(bounds)
    scale = _per_channel(quant.scale, channels)
    zeropt = _per_channel(quant.zeropt, channels)

    def pre_round(q: np.ndarray) -> np.ndarray:
        return stream.value(q) / scale[:, None] + zeropt[:, None]

    low = np.full((channels, steps), lo, dtype=np.int64)
    high = np.full((channels, steps), hi, dtype=np.int64)
    target = np.broadcast_to(bounds[None, :], (channels, steps))
    if quant.bipolar:
        # BipolarQuant: +1 where the value is >= 0
        def reached(q):
            return stream.value(q) / scale[:, None] >= 0.0
    else:

        def reached(q):
            return pre_round(q) >= target

    if narrow:
        low, high = _bracket(stream, quant, scale, zeropt, target, reached, low, high)
    # binary search for the smallest q in [lo, hi] with reached(q); hi if none below hi
    while True:
        active = low < high
        if not active.any():
            break
        mid = (low + high) // 2
        ok = reached(mid)
        high = np.where(active & ok, mid, high)
        low = np.where(active & ~ok, mid + 1, low)
    return low.astype(np.float64)


def _bracket(stream: Stream, quant: ActQuant, scale, zeropt, target, reached, low, high):
    """Narrow the search where the value function is affine and increasing: the real-valued threshold
    gives the answer within a step or two, and a bracket [L, H] is kept only where the search's own test
    confirms it (not reached at L - 1, reached at H), so the result is the full search's; elsewhere the
    whole domain is searched. Saves ~30 of the 32 halvings of an accumulator's domain."""
    aff = stream.affine()
    if aff is None:
        return low, high
    channels, steps = low.shape
    a = _per_channel(aff[0], channels)[:, None]
    b = _per_channel(aff[1], channels)[:, None]
    if not np.all(a > 0):
        return low, high
    with np.errstate(all="ignore"):
        real = -b / a if quant.bipolar else ((target - zeropt[:, None]) * scale[:, None] - b) / a
        est = np.clip(np.nan_to_num(np.ceil(real), nan=0.0, posinf=high.max(), neginf=low.min()),
                      low.min(), high.max()).astype(np.int64)
    est = np.broadcast_to(est, low.shape)
    lo_b = np.clip(est - 2, low, high)
    hi_b = np.clip(est + 2, low, high)
    below_ok = (lo_b == low) | ~reached(lo_b - 1)
    above_ok = (hi_b == high) | reached(hi_b)
    good = below_ok & above_ok
    return np.where(good, lo_b, low), np.where(good, hi_b, high)


def _per_channel(v, channels: int) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        return np.full(channels, float(arr[0]))
    if arr.size != channels:
        raise ModelError(f"quantizer parameter has {arr.size} values for {channels} channels")
    return arr


def float_thresholds(stream: Stream, quant: ActQuant, where: str) -> np.ndarray:
    """Real-valued thresholds for a float input with an affine value function ``a*x + b``."""
    a, b = stream.affine()
    channels = stream.channels
    a = _per_channel(a, channels)[:, None]
    b = _per_channel(b, channels)[:, None]
    if np.any(a <= 0):
        raise ModelError("non-positive scale in front of an activation on a float input", where=where)
    scale = _per_channel(quant.scale, channels)[:, None]
    zeropt = _per_channel(quant.zeropt, channels)[:, None]
    real = (quant.boundaries()[None, :] - zeropt) * scale
    return ((real - b) / a).astype(np.float32).astype(np.float64)
