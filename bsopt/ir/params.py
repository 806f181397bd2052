"""What FINN's estimates read of a layer's parameters, without the parameters.

FINN's bit-width minimisation reads weights and thresholds only through a few figures: the smallest and
largest weight (the weight datatype), each output column's extreme accumulator values over an input
datatype (the accumulator datatype: per column, the sum of the positive weights and the sum of the
negative ones suffice), and the thresholds' extremes after clipping (clipping commutes with min/max).
A lowered graph keeps these summaries instead of the matrices, so a 12-layer BERT's IR is kilobytes,
not a gigabyte, and minimising it again for another folding costs O(columns), not O(weights).

The summaries answer the same calls the numpy arrays did (``min()``, ``max()``, ``clip()``, ``size``,
``shape``), so the bit-width code reads either; lowering with ``keep_parameters`` keeps the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class WeightSummary:
    """An integer weight matrix (rows x columns: ``MW x MH`` of an MVAU, ``k x channels`` of a VVAU)
    reduced to per-column figures."""

    shape: tuple[int, int]
    col_min: np.ndarray
    col_max: np.ndarray
    #: per column, the sum of the positive entries and the sum of the negative entries
    col_pos: np.ndarray
    col_neg: np.ndarray

    @classmethod
    def of(cls, weights: np.ndarray) -> WeightSummary:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(f"weights must be a matrix, not of shape {w.shape}")
        return cls((int(w.shape[0]), int(w.shape[1])), w.min(axis=0), w.max(axis=0),
                   np.where(w > 0, w, 0.0).sum(axis=0), np.where(w < 0, w, 0.0).sum(axis=0))

    @classmethod
    def constant(cls, shape: tuple[int, int], value: float) -> WeightSummary:
        """Every entry ``value`` (the worst case of a weight datatype)."""
        rows, cols = int(shape[0]), int(shape[1])
        v = np.full(cols, float(value))
        zero = np.zeros(cols)
        return cls((rows, cols), v, v, v * rows if value > 0 else zero, v * rows if value < 0 else zero)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def min(self) -> float:
        return float(self.col_min.min())

    def max(self) -> float:
        return float(self.col_max.max())

    def columns(self, lo: int, hi: int) -> WeightSummary:
        """The summary of ``weights[:, lo:hi]``."""
        return WeightSummary((self.shape[0], hi - lo), self.col_min[lo:hi], self.col_max[lo:hi],
                             self.col_pos[lo:hi], self.col_neg[lo:hi])

    def xnor(self) -> WeightSummary:
        """The summary of ``2 * w - 1`` for binary weights ``w`` in {0, 1} (FINN's XNOR popcount)."""
        if self.min() < 0 or self.max() > 1:
            raise ValueError("XNOR weights must be binary (0 or 1)")
        ones = self.col_pos  # the sum of 0/1 entries is the count of ones
        rows = self.shape[0]
        return WeightSummary(self.shape, 2 * self.col_min - 1, 2 * self.col_max - 1, ones, ones - rows)

    def accumulator_range(self, vec_dt) -> tuple[float, float]:
        """The smallest and largest ``x @ W`` over input vectors ``x`` of datatype ``vec_dt``: per column,
        each weight takes the input extreme that pushes the sum furthest."""
        lo_col = vec_dt.min() * self.col_pos + vec_dt.max() * self.col_neg
        hi_col = vec_dt.max() * self.col_pos + vec_dt.min() * self.col_neg
        return float(lo_col.min()), float(hi_col.max())


@dataclass(frozen=True, eq=False)
class ThresholdSummary:
    """A threshold matrix (channels x steps) reduced to its shape and extremes."""

    shape: tuple[int, ...]
    lo: float
    hi: float

    @classmethod
    def of(cls, thresholds: np.ndarray) -> ThresholdSummary:
        t = np.asarray(thresholds)
        return cls(tuple(int(d) for d in t.shape), float(t.min()), float(t.max()))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def min(self) -> float:
        return self.lo

    def max(self) -> float:
        return self.hi

    def clip(self, lo: float, hi: float) -> ThresholdSummary:
        """The summary of ``np.clip(thresholds, lo, hi)``."""
        return ThresholdSummary(self.shape, float(min(max(self.lo, lo), hi)), float(min(max(self.hi, lo), hi)))


def accumulator_range(weights: Any, vec_dt, xnor: bool = False) -> tuple[float, float]:
    """The accumulator range of a weight matrix over inputs of ``vec_dt``; ``xnor``: the weights are
    FINN's binary encoding of bipolar values. A :class:`WeightSummary` answers from its columns' sums; a
    matrix is evaluated entry by entry as qonnx's calculate_matvec_accumulator_range does (the reference
    the summaries are tested against)."""
    if isinstance(weights, WeightSummary):
        return (weights.xnor() if xnor else weights).accumulator_range(vec_dt)
    matrix = 2 * np.asarray(weights) - 1 if xnor else np.asarray(weights)
    hi_in = np.where(matrix > 0, vec_dt.max(), vec_dt.min())
    lo_in = np.where(matrix > 0, vec_dt.min(), vec_dt.max())
    return float((matrix * lo_in).sum(axis=0).min()), float((matrix * hi_in).sum(axis=0).max())


def summarise(layer) -> None:
    """Replace a layer's weight and threshold arrays by their summaries (in place)."""
    if isinstance(layer.weights, np.ndarray):
        layer.weights = WeightSummary.of(layer.weights)
    for attr in ("thresholds", "hw_thresholds"):
        value = getattr(layer, attr)
        if isinstance(value, np.ndarray):
            setattr(layer, attr, ThresholdSummary.of(value))
