"""FINN's ``step_minimize_bit_width`` on bsopt's dataflow IR.

FINN shrinks weight, threshold and accumulator datatypes from the actual parameter values, and the
result depends on per-layer attributes (``runtime_writeable_weights``, ``mem_mode``) and on the
FINN version. Estimates depend on these widths, so bsopt redoes the minimisation whenever those
attributes change. Datatype propagation between layers follows FINN's ``InferDataTypes``.
"""

from __future__ import annotations

import math

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.util.basic import calculate_matvec_accumulator_range

from bsopt.ir.layers import DataflowGraph, Layer

DT_ATTRS = ("inputDataType", "weightDataType", "outputDataType", "accDataType", "InputDataType",
            "OutputDataType", "dataType", "inputDataTypes")
PASS_THROUGH = {
    "ConvolutionInputGenerator": ("inputDataType", "outputDataType"),
    "FMPadding": ("inputDataType",),
    "Pool": ("InputDataType", "OutputDataType"),
    "StreamingMaxPool": ("dataType",),
    "DuplicateStreams": ("inputDataType",),
    "StreamingDataWidthConverter": ("dataType",),
    "StreamingFIFO": ("dataType",),
}


def _dt(name: str):
    return DataType[name]


def _smallest_for_range(lo: float, hi: float):
    """FINN's rule for weight/threshold datatypes from a value range."""
    if lo < 0:
        return DataType.get_smallest_possible(lo) if abs(lo) > hi else DataType.get_smallest_possible(-hi - 1)
    return DataType.get_smallest_possible(hi)


def _acc_dtype(acc_min: float, acc_max: float):
    if acc_min >= 0:
        return DataType[f"UINT{max(math.ceil(np.log2(acc_max + 1)), 1)}"]
    return DataType[f"INT{math.ceil(np.log2(max(-acc_min, 1 + acc_max)) + 1)}"]


def _matvec_weights(layer: Layer) -> np.ndarray:
    w = layer.weights
    return 2 * w - 1 if layer.attrs.get("binaryXnorMode") else w


def _worst_case(layer: Layer, wdt, idt, shape) -> tuple[float, float]:
    lower = calculate_matvec_accumulator_range(wdt.min() * np.ones(shape), idt)
    upper = calculate_matvec_accumulator_range(wdt.max() * np.ones(shape), idt)
    return min(min(lower), min(upper)), max(max(lower), max(upper))


def _input_dtypes(graph: DataflowGraph, layer: Layer, out_dt: dict[str, str]) -> None:
    """FINN's InferDataTypes for one layer: take the producers' output datatypes."""
    kind = layer.kind
    ins = [out_dt.get(t) for t in layer.inputs]
    if kind in ("AddStreams", "ElementwiseAdd"):
        if all(ins):
            layer.attrs["inputDataTypes"] = list(ins)
        return
    idt = ins[0] if ins else None
    if idt is None:
        return
    for key in PASS_THROUGH.get(kind, ("inputDataType",)):
        layer.attrs[key] = idt


def _output_dtype(layer: Layer) -> str | None:
    kind, a = layer.kind, layer.attrs
    if kind in ("MVAU", "VVAU", "Thresholding", "LabelSelect"):
        return a["outputDataType"]
    if kind in PASS_THROUGH:
        return a[PASS_THROUGH[kind][-1]]
    if kind == "GlobalAccPool":
        idt = _dt(a["inputDataType"])
        bits = idt.bitwidth() + math.ceil(math.log2(int(np.prod(a["numInputVectors"][1:]))))
        return f"{'INT' if idt.signed() else 'UINT'}{bits}"
    if kind in ("AddStreams", "ElementwiseAdd"):
        dts = [_dt(n) for n in a["inputDataTypes"]]
        bits = max(d.bitwidth() for d in dts) + 1
        return f"{'INT' if any(d.signed() for d in dts) else 'UINT'}{bits}"
    return a.get("outputDataType") or a.get("inputDataType")


def _propagate(graph: DataflowGraph, start: int = 0) -> dict[str, str]:
    out_dt: dict[str, str] = {}
    for layer in graph.layers:
        _input_dtypes(graph, layer, out_dt)
        dt = _output_dtype(layer)
        if dt:
            out_dt[layer.output] = dt
    return out_dt


def _writeable(layer: Layer) -> bool:
    return bool(layer.attrs.get("runtime_writeable_weights", 0))


def minimize_bit_widths(graph: DataflowGraph) -> DataflowGraph:
    """Recompute every layer's minimised datatypes from its base datatypes and current attributes."""
    for layer in graph.layers:
        for key, value in layer.base_attrs.items():
            layer.attrs[key] = value
        layer.hw_thresholds = layer.thresholds
    _propagate(graph)
    if graph.finn_version == "0.10.1":
        _minimize_v0101(graph)
    else:
        _minimize_dev(graph)
    _propagate(graph)
    return graph


def _has_consumer(graph: DataflowGraph, layer: Layer) -> bool:
    return any(layer.output in other.inputs for other in graph.layers)


def _set_acc(graph: DataflowGraph, layer: Layer, adt) -> None:
    if layer.attrs.get("noActivation"):
        if not _has_consumer(graph, layer):
            bits = int(math.ceil(adt.bitwidth() / 8) * 8)
            adt = DataType[adt.name.replace(str(adt.bitwidth()), str(bits))]
        layer.attrs["outputDataType"] = adt.name
    layer.attrs["accDataType"] = adt.name


def _acc_range(layer: Layer, worst: bool) -> tuple[float, float]:
    idt = _dt(layer.attrs["inputDataType"])
    weights = _matvec_weights(layer)
    if worst:
        return _worst_case(layer, _dt(layer.attrs["weightDataType"]), idt, weights.shape)
    lo, hi = calculate_matvec_accumulator_range(weights, idt)
    return float(lo), float(hi)


def _minimize_weights_dev(graph: DataflowGraph, thresholds_of) -> None:
    for layer in graph.layers:
        a = layer.attrs
        if layer.kind in ("MVAU", "VVAU"):
            frozen = _writeable(layer) or a.get("mem_mode") == "external"
            if layer.kind == "MVAU":
                frozen = frozen or bool(a.get("dynamic_input", 0))
            if not frozen:
                a["weightDataType"] = _smallest_for_range(layer.weights.min(), layer.weights.max()).name
        elif layer.kind == "Thresholding" and not _writeable(layer):
            idt = _dt(a["inputDataType"])
            thr = thresholds_of(layer)
            if idt.is_integer():
                lo, hi = float(thr.min()), float(thr.max())
                if lo == hi == 0:
                    tdt = DataType["INT2"] if idt.signed() else DataType["UINT1"]
                elif lo < 0:
                    tdt = _smallest_for_range(lo, hi)
                else:
                    tdt = DataType.get_smallest_possible(-hi - 1 if idt.signed() else hi)
                a["weightDataType"] = tdt.name


def _minimize_dev(graph: DataflowGraph) -> None:
    clipped: dict[str, np.ndarray] = {}

    def thresholds_of(layer):
        return clipped.get(layer.name, layer.thresholds)

    _minimize_weights_dev(graph, thresholds_of)
    out_dt: dict[str, str] = {}
    for layer in graph.layers:  # MinimizeAccumulatorWidth, with InferDataTypes after each node
        _input_dtypes(graph, layer, out_dt)
        if layer.kind in ("MVAU", "VVAU"):
            worst = _writeable(layer) or layer.attrs.get("mem_mode") == "external"
            if layer.kind == "MVAU":
                worst = worst or bool(layer.attrs.get("dynamic_input", 0))
            _set_acc(graph, layer, _acc_dtype(*_acc_range(layer, worst)))
        dt = _output_dtype(layer)
        if dt:
            out_dt[layer.output] = dt
    # RoundAndClipThresholds with the minimised input/accumulator types
    for layer in graph.layers:
        if layer.thresholds is None:
            continue
        if layer.kind == "Thresholding":
            idt = _dt(layer.attrs["inputDataType"])
            if idt.is_integer():
                clipped[layer.name] = np.clip(layer.thresholds, idt.min(), idt.max() + 1)
                max_val = int(idt.max()) + 1
                tdt = DataType.get_smallest_possible(max_val if not idt.signed() else -max_val - 1)
                layer.attrs["weightDataType"] = tdt.name
        elif not layer.attrs.get("noActivation"):
            adt = _dt(layer.attrs["accDataType"])
            clipped[layer.name] = np.clip(layer.thresholds, adt.min(), adt.max() + 1)
    _minimize_weights_dev(graph, thresholds_of)
    for layer in graph.layers:
        if layer.thresholds is not None:
            layer.hw_thresholds = thresholds_of(layer)


def _minimize_v0101(graph: DataflowGraph) -> None:
    for layer in graph.layers:  # MinimizeWeightBitWidth
        if layer.kind in ("MVAU", "VVAU") and not _writeable(layer):
            layer.attrs["weightDataType"] = _smallest_for_range(layer.weights.min(), layer.weights.max()).name
    out_dt: dict[str, str] = {}
    for layer in graph.layers:  # MinimizeAccumulatorWidth
        _input_dtypes(graph, layer, out_dt)
        a = layer.attrs
        if layer.kind in ("MVAU", "VVAU"):
            acc_min, acc_max = _acc_range(layer, _writeable(layer))
            if layer.thresholds is not None and not a.get("noActivation"):
                thr = np.clip(layer.thresholds, acc_min, acc_max)
                layer.hw_thresholds = thr
                acc_min, acc_max = min(thr.min(), acc_min), max(thr.max(), acc_max)
            _set_acc(graph, layer, _acc_dtype(acc_min, acc_max))
        elif layer.kind == "Thresholding":
            idt = _dt(a["inputDataType"])
            layer.hw_thresholds = layer.thresholds
            lo = min(float(idt.min()), float(layer.thresholds.min()))
            hi = max(float(idt.max()), float(layer.thresholds.max()))
            a["weightDataType"] = _smallest_for_range(lo, hi).name
        dt = _output_dtype(layer)
        if dt:
            out_dt[layer.output] = dt
