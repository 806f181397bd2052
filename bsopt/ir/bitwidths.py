"""FINN's ``step_minimize_bit_width`` on bsopt's dataflow IR.

FINN shrinks weight, threshold and accumulator datatypes from the actual parameter values, and the
result depends on per-layer attributes (``runtime_writeable_weights``, ``mem_mode``) and on the
FINN version. Estimates depend on these widths, so bsopt redoes the minimisation whenever those
attributes change. Datatype propagation between layers follows FINN's ``InferDataTypes``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qonnx.core.datatype import DataType

from bsopt.ir.datatypes import (
    accumulator_dtype,
    add_dtype,
    global_acc_pool_dtype,
    rac_threshold_dtype,
    round_up_to_bytes,
    smallest_for_range,
)
from bsopt.ir.layers import DataflowGraph, Layer
from bsopt.ir.params import WeightSummary, accumulator_range

DT_ATTRS = ("inputDataType", "weightDataType", "outputDataType", "accDataType", "InputDataType",
            "OutputDataType", "dataType", "lhs_dtype", "rhs_dtype", "out_dtype")
PASS_THROUGH = {
    "ConvolutionInputGenerator": ("inputDataType", "outputDataType"),
    "FMPadding": ("inputDataType",),
    "Pool": ("InputDataType", "OutputDataType"),
    "StreamingMaxPool": ("dataType",),
    "DuplicateStreams": ("inputDataType",),
    "StreamingDataWidthConverter": ("dataType",),
    "StreamingFIFO": ("dataType",),
    "OuterShuffle": ("data_type",),
    "InnerShuffle": ("data_type",),
    "HWSoftmax": ("input_data_type",),
}


def _dt(name: str):
    return DataType[name]


def matvec_accumulator_range(matrix, vec_dt) -> tuple[float, float]:
    """The smallest and largest value of ``x @ matrix`` (``matrix``: MW x MH, an array or a
    :class:`~bsopt.ir.params.WeightSummary`) over inputs ``x`` of datatype ``vec_dt``: each output column
    takes, per weight, the input extreme that pushes it furthest (as qonnx's
    calculate_matvec_accumulator_range, which FINN's MinimizeAccumulatorWidth uses)."""
    return accumulator_range(matrix, vec_dt)


def _worst_case(wdt, idt, shape) -> tuple[float, float]:
    lower = WeightSummary.constant(shape, wdt.min()).accumulator_range(idt)
    upper = WeightSummary.constant(shape, wdt.max()).accumulator_range(idt)
    return min(min(lower), min(upper)), max(max(lower), max(upper))


def _input_dtypes(graph: DataflowGraph, layer: Layer, out_dt: dict[str, str]) -> None:
    """FINN's InferDataTypes for one layer: take the producers' output datatypes."""
    kind = layer.kind
    ins = [out_dt.get(t) for t in layer.inputs]
    if kind.startswith("Elementwise"):
        if ins and ins[0]:
            layer.attrs["lhs_dtype"] = ins[0]
        if len(ins) > 1 and ins[1]:
            layer.attrs["rhs_dtype"] = ins[1]
        return
    idt = ins[0] if ins else None
    if idt is None:
        return
    for key in PASS_THROUGH.get(kind, ("inputDataType",)):
        layer.attrs[key] = idt


def input_datatype(layer: Layer) -> str | None:
    """Name of the datatype of a layer's (first) input stream."""
    a = layer.attrs
    return (a.get("inputDataType") or a.get("InputDataType") or a.get("dataType") or a.get("lhs_dtype")
            or a.get("input_data_type") or a.get("data_type"))


def elementwise_dtype(kind: str, lhs, rhs):
    """Output type of FINN's elementwise ops after MinimizeAccumulatorWidth: the smallest integer type
    holding every result of the operands' ranges; FLOAT32 if an operand is a float."""
    if not (lhs.is_integer() and rhs.is_integer()):
        return DataType["FLOAT32"]
    if kind == "ElementwiseAdd":
        return add_dtype(lhs, rhs)
    corners = [(x, y) for x in (lhs.min(), lhs.max()) for y in (rhs.min(), rhs.max())]
    if kind == "ElementwiseSub":
        values = [x - y for x, y in corners]
    elif kind == "ElementwiseMul":
        values = [x * y for x, y in corners]
    else:
        return DataType["INT32"]
    return smallest_for_range(min(values), max(values))


def output_datatype(layer: Layer) -> str | None:
    """Name of the datatype of a layer's output stream (FINN's InferDataTypes rules)."""
    kind, a = layer.kind, layer.attrs
    if kind in ("MVAU", "VVAU", "Thresholding", "LabelSelect"):
        return a["outputDataType"]
    if kind in PASS_THROUGH:
        return a[PASS_THROUGH[kind][-1]]
    if kind == "GlobalAccPool":
        return global_acc_pool_dtype(_dt(a["inputDataType"]), int(np.prod(a["numInputVectors"][1:]))).name
    if kind == "AddStreams":
        idt = _dt(a["inputDataType"])
        return DataType.get_smallest_possible(2 * idt.min() if idt.signed() else 2 * idt.max()).name
    if kind.startswith("Elementwise"):
        a["out_dtype"] = elementwise_dtype(kind, _dt(a["lhs_dtype"]), _dt(a["rhs_dtype"])).name
        return a["out_dtype"]
    if kind == "HWSoftmax":
        return "FLOAT32"
    return a.get("outputDataType") or a.get("inputDataType")


def _propagate(graph: DataflowGraph, start: int = 0) -> dict[str, str]:
    out_dt: dict[str, str] = {}
    for layer in graph.layers:
        _input_dtypes(graph, layer, out_dt)
        dt = output_datatype(layer)
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
            adt = round_up_to_bytes(adt)
        layer.attrs["outputDataType"] = adt.name
    layer.attrs["accDataType"] = adt.name


#: accumulator ranges already computed: the weights are read-only and shared between graph copies,
#: so (weights object, xnor, input type, weight type, worst case) identifies a result. The cache keeps a
#: reference to the weights so that their id cannot be reused while the entry lives.
_ACC_CACHE: dict[tuple, tuple[Any, tuple[float, float]]] = {}
_ACC_CACHE_MAX = 4096


def _acc_range(layer: Layer, worst: bool) -> tuple[float, float]:
    a = layer.attrs
    if layer.weights is None:  # dynamic weights (MVAU dynamic_input=1): the weight type's worst case
        return _worst_case(_dt(a["weightDataType"]), _dt(a["inputDataType"]), (a["MW"], a["MH"]))
    key = (id(layer.weights), bool(a.get("binaryXnorMode")), a["inputDataType"],
           a["weightDataType"] if worst else None, worst)
    hit = _ACC_CACHE.get(key)
    if hit is not None and hit[0] is layer.weights:
        return hit[1]
    idt = _dt(a["inputDataType"])
    if worst:
        result = _worst_case(_dt(a["weightDataType"]), idt, layer.weights.shape)
    else:
        result = accumulator_range(layer.weights, idt, xnor=bool(a.get("binaryXnorMode")))
    if len(_ACC_CACHE) >= _ACC_CACHE_MAX:
        _ACC_CACHE.clear()
    _ACC_CACHE[key] = (layer.weights, result)
    return result


def _minimize_weights_dev(graph: DataflowGraph, thresholds_of) -> None:
    for layer in graph.layers:
        a = layer.attrs
        if layer.kind in ("MVAU", "VVAU"):
            frozen = _writeable(layer) or a.get("mem_mode") == "external"
            if layer.kind == "MVAU":
                frozen = frozen or bool(a.get("dynamic_input", 0))
            if not frozen:
                a["weightDataType"] = smallest_for_range(layer.weights.min(), layer.weights.max()).name
        elif layer.kind == "Thresholding" and not _writeable(layer):
            idt = _dt(a["inputDataType"])
            thr = thresholds_of(layer)
            if idt.is_integer():
                lo, hi = float(thr.min()), float(thr.max())
                if lo == hi == 0:
                    tdt = DataType["INT2"] if idt.signed() else DataType["UINT1"]
                elif lo < 0:
                    tdt = smallest_for_range(lo, hi)
                else:
                    tdt = DataType.get_smallest_possible(-hi - 1 if idt.signed() else hi)
                a["weightDataType"] = tdt.name


def _minimize_dev(graph: DataflowGraph) -> None:
    clipped: dict[str, Any] = {}

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
            _set_acc(graph, layer, accumulator_dtype(*_acc_range(layer, worst)))
        dt = output_datatype(layer)
        if dt:
            out_dt[layer.output] = dt
    # RoundAndClipThresholds with the minimised input/accumulator types
    for layer in graph.layers:
        if layer.thresholds is None:
            continue
        if layer.kind == "Thresholding":
            idt = _dt(layer.attrs["inputDataType"])
            if idt.is_integer():
                clipped[layer.name] = layer.thresholds.clip(idt.min(), idt.max() + 1)
                layer.attrs["weightDataType"] = rac_threshold_dtype(idt).name
        elif not layer.attrs.get("noActivation"):
            adt = _dt(layer.attrs["accDataType"])
            clipped[layer.name] = layer.thresholds.clip(adt.min(), adt.max() + 1)
    _minimize_weights_dev(graph, thresholds_of)
    for layer in graph.layers:
        if layer.thresholds is not None:
            layer.hw_thresholds = thresholds_of(layer)


def _minimize_v0101(graph: DataflowGraph) -> None:
    for layer in graph.layers:  # MinimizeWeightBitWidth
        if layer.kind in ("MVAU", "VVAU") and not _writeable(layer):
            layer.attrs["weightDataType"] = smallest_for_range(layer.weights.min(), layer.weights.max()).name
    out_dt: dict[str, str] = {}
    for layer in graph.layers:  # MinimizeAccumulatorWidth
        _input_dtypes(graph, layer, out_dt)
        a = layer.attrs
        if layer.kind in ("MVAU", "VVAU"):
            acc_min, acc_max = _acc_range(layer, _writeable(layer))
            if layer.thresholds is not None and not a.get("noActivation"):
                thr = layer.thresholds.clip(acc_min, acc_max)
                layer.hw_thresholds = thr
                acc_min, acc_max = min(thr.min(), acc_min), max(thr.max(), acc_max)
            _set_acc(graph, layer, accumulator_dtype(acc_min, acc_max))
        elif layer.kind == "Thresholding":
            idt = _dt(a["inputDataType"])
            layer.hw_thresholds = layer.thresholds
            lo = min(float(idt.min()), float(layer.thresholds.min()))
            hi = max(float(idt.max()), float(layer.thresholds.max()))
            a["weightDataType"] = smallest_for_range(lo, hi).name
        dt = output_datatype(layer)
        if dt:
            out_dt[layer.output] = dt
