"""FINN's rules for the integer datatypes of dataflow layers (qonnx ``DataType`` objects)."""

from __future__ import annotations

import math

import numpy as np
from qonnx.core.datatype import DataType


def smallest_for_range(lo: float, hi: float):
    """FINN's choice for weights/thresholds spanning [lo, hi] (prefers unsigned; signed is symmetric)."""
    if lo < 0:
        return DataType.get_smallest_possible(lo) if abs(lo) > hi else DataType.get_smallest_possible(-hi - 1)
    return DataType.get_smallest_possible(hi)


def accumulator_dtype(acc_min: float, acc_max: float):
    """MinimizeAccumulatorWidth: UINTn for non-negative ranges, else INTn."""
    if acc_min >= 0:
        return DataType[f"UINT{max(math.ceil(np.log2(acc_max + 1)), 1)}"]
    return DataType[f"INT{math.ceil(np.log2(max(-acc_min, 1 + acc_max)) + 1)}"]


def round_up_to_bytes(dt):
    """Widen INTn/UINTn to a multiple of 8 bits (names without a digit, e.g. BINARY, stay)."""
    bits = int(math.ceil(dt.bitwidth() / 8) * 8)
    return DataType[dt.name.replace(str(dt.bitwidth()), str(bits))]


def rac_threshold_dtype(idt):
    """The threshold datatype RoundAndClipThresholds assigns for an integer input type."""
    max_val = int(idt.max()) + 1
    return DataType.get_smallest_possible(max_val if not idt.signed() else -max_val - 1)


def global_acc_pool_dtype(idt, n: int):
    """GlobalAccPool's output: room for the sum of n inputs."""
    return DataType.get_smallest_possible(n * idt.min() if idt.signed() else n * idt.max())


def add_dtype(dt0, dt1):
    """Smallest integer datatype holding the sum of two integer streams."""
    return smallest_for_range(dt0.min() + dt1.min(), dt0.max() + dt1.max())


def label_select_dtype(labels: int):
    """LabelSelect's index datatype: smallest for labels-1, widened to whole bytes."""
    return round_up_to_bytes(DataType.get_smallest_possible(labels - 1))
