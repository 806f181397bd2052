"""ModelInfo: what a quantized model is, in numbers a hardware engineer reads first."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.datatype import DataType

from bsopt.ir.bitwidths import input_datatype, output_datatype
from bsopt.ir.layers import DataflowGraph, Layer
from bsopt.lowering import LoweringOptions, lower_loaded


@dataclass
class TensorInfo:
    name: str
    shape: list[int]
    datatype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": self.shape, "datatype": self.datatype}


def layer_costs(layer: Layer) -> dict[str, Any]:
    """Per-layer figures: MACs, parameters and their bits (weights plus thresholds)."""
    a = layer.attrs
    macs = params = param_bits = 0
    wdt = a.get("weightDataType")
    if layer.kind == "MVAU":
        vectors = int(np.prod(a["numInputVectors"]))
        macs = a["MW"] * a["MH"] * vectors
        if not a.get("dynamic_input"):  # a dynamic MVAU's second operand streams in: no parameters
            params = a["MW"] * a["MH"]
            param_bits = params * DataType[wdt].bitwidth()
    elif layer.kind == "VVAU":
        k = int(np.prod(a["Kernel"]))
        macs = a["Channels"] * k * int(np.prod(a["Dim"]))
        params = a["Channels"] * k
        param_bits = params * DataType[wdt].bitwidth()
    thr = layer.hw_thresholds if layer.hw_thresholds is not None else layer.thresholds
    thr_bits = 0
    if thr is not None:
        tdt = wdt if layer.kind == "Thresholding" else a.get("accDataType")
        thr_bits = int(thr.size) * DataType[tdt].bitwidth()
    in_dt = input_datatype(layer)
    out_dt = output_datatype(layer)
    return {
        "input_datatype": in_dt,
        "input_bits": DataType[in_dt].bitwidth() if in_dt else None,
        "weight_datatype": wdt if layer.kind in ("MVAU", "VVAU") else None,
        "weight_bits": DataType[wdt].bitwidth() if wdt and layer.kind in ("MVAU", "VVAU") else None,
        "threshold_datatype": wdt if layer.kind == "Thresholding" else None,
        "output_datatype": out_dt,
        "output_bits": DataType[out_dt].bitwidth() if out_dt else None,
        "macs": int(macs),
        "params": int(params),
        "param_bits": int(param_bits),
        "threshold_bits": int(thr_bits),
    }


@dataclass
class ModelInfo:
    """A model's interface, operator mix, totals, and its FINN dataflow layers."""

    path: str
    sha256: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_histogram: dict[str, int]
    dataflow: DataflowGraph
    totals: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> list[Layer]:
        return self.dataflow.layers

    def to_dict(self) -> dict[str, Any]:
        layers = []
        for layer in self.dataflow.layers:
            entry = layer.to_dict()
            entry.update(layer_costs(layer))
            layers.append(entry)
        return {
            "path": self.path,
            "sha256": self.sha256,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "op_histogram": self.op_histogram,
            "totals": self.totals,
            "finn_version": self.dataflow.finn_version,
            "fpgapart": self.dataflow.fpgapart,
            "dataflow_op_histogram": self.dataflow.op_histogram(),
            "layers": layers,
            "warnings": list(self.dataflow.warnings),
        }


def _tensor_info(model, vi) -> TensorInfo:
    shape = model.get_tensor_shape(vi.name) or []
    dt = model.get_tensor_datatype(vi.name)
    return TensorInfo(vi.name, [int(s) for s in shape], dt.name if dt is not None else "FLOAT32")


def _graph_tensor_info(graph, vi) -> TensorInfo:
    return TensorInfo(vi.name, [int(s) for s in graph.shape(vi.name) or []], graph.datatype(vi.name).name)


def _qonnx_totals(model) -> dict[str, Any]:
    from qonnx.util.inference_cost import inference_cost

    try:
        res = inference_cost(copy.deepcopy(model), discount_sparsity=False)["total_cost"]
    except Exception as exc:  # inference_cost is best-effort; never fail inspect on it
        return {"error": f"qonnx inference_cost failed: {exc}"}
    keep = ("total_macs", "total_bops", "total_mem_w_bits", "total_mem_w_elems", "total_mem_o_bits",
            "total_mem_o_elems")
    out = {k: int(res[k]) for k in keep if k in res}
    out["breakdown"] = {k: float(v) for k, v in res.items() if k.startswith(("op_mac_", "mem_w_"))}
    return out


def inspect_model(path: str | Path, options: LoweringOptions | None = None, *, qonnx_totals: bool = True,
                  **kwargs) -> ModelInfo:
    """Load, check and lower a QONNX model; return its :class:`ModelInfo` (once per content and
    options: :mod:`bsopt.lowering.cache`).

    ``qonnx_totals``: also count MACs, BOPs and memory with qonnx's ``inference_cost`` (and read the
    outputs' datatypes after qonnx's datatype inference), which loads the model a second time through
    qonnx's transformations: minutes on a BERT-base. The design space does without (its figures come
    from the lowered layers)."""
    from bsopt.lowering.cache import cached

    info = cached(path, "info", (options, qonnx_totals, sorted(kwargs.items())),
                  lambda: _inspect(path, options, qonnx_totals, **kwargs))
    info.path = str(Path(path))  # the same content may sit at another path than when it was cached
    return info


def _inspect(path: str | Path, options: LoweringOptions | None, qonnx_totals: bool, **kwargs) -> ModelInfo:
    from bsopt.intake.load import load_graph, load_model
    from bsopt.lowering.cache import file_digest

    p = Path(path)
    onnx_graph = load_graph(p)
    graph = lower_loaded(p, onnx_graph, options if options is not None else LoweringOptions(**kwargs))
    hist = onnx_graph.op_histogram()
    inputs = [_graph_tensor_info(onnx_graph, vi) for vi in onnx_graph.inputs]
    outputs = [_graph_tensor_info(onnx_graph, vi) for vi in onnx_graph.outputs]
    del onnx_graph
    totals: dict[str, Any] = {}
    if qonnx_totals:
        model = load_model(p)
        outputs = [_tensor_info(model, vi) for vi in model.graph.output]
        totals = _qonnx_totals(model)
        del model
    costs = [layer_costs(layer) for layer in graph.layers]
    totals["dataflow_macs"] = sum(c["macs"] for c in costs)
    totals["dataflow_params"] = sum(c["params"] for c in costs)
    totals["dataflow_param_bits"] = sum(c["param_bits"] for c in costs)
    totals["dataflow_threshold_bits"] = sum(c["threshold_bits"] for c in costs)
    return ModelInfo(str(p), file_digest(p), inputs, outputs, hist, graph, totals)
