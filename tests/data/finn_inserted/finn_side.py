"""FINN-side half of the finn_inserted golden-data generator (run by generate.py; needs FINN).

Runs in FINN's Python (``~/.cache/bsopt/finn/bin/python``, FINN dev 73ba5ed + qonnx f5c9819), never in
bsopt's. For one case it takes the folded dataflow model FINN's estimate-only flow produced
(``--model``: ``output/intermediate_models/step_generate_estimate_reports.onnx``), or builds one from a
JSON description of HW nodes (``--ir``, for networks FINN's own flow cannot convert; then ``--folding``
is applied with FINN's ApplyConfig first), records every node, applies what FINN's
``step_set_fifo_depths`` does when ``auto_fifo_depths=False``::

    InsertDWC()  ->  InsertFIFO(create_shallow_fifos=True)  ->  SpecializeLayers(part)  ->  GiveUniqueNodeNames()

and records every node again with FINN's own estimates. Output: one JSON (``--out``) that generate.py
turns into the case file.

    finn_side.py --model FOLDED.onnx --part PART --folding folding_config.json --out raw.json
    finn_side.py --ir ir.json --arrays ir.npz --part PART --folding folding_config.json --out raw.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import traceback
from importlib.metadata import version

import numpy as np
from finn.analysis.fpgadataflow.dataflow_performance import dataflow_performance
from finn.analysis.fpgadataflow.op_and_param_counts import aggregate_dict_keys
from finn.analysis.fpgadataflow.res_estimation import res_estimation
from finn.transformation.fpgadataflow.annotate_cycles import AnnotateCycles
from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from finn.transformation.general import ApplyConfig
from onnx import TensorProto
from onnx import helper as oh
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

#: attributes recorded for nodes other than DWCs and FIFOs (when the op type has them)
HW_ATTRS = ("PE", "SIMD", "parallel_window", "ram_style", "mem_mode", "resType", "inFIFODepths", "outFIFODepths")
INSERTED = ("StreamingDataWidthConverter", "StreamingFIFO")


def jsonable(v):
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, bytes):
        return v.decode()
    if hasattr(v, "bitwidth") and hasattr(v, "name"):  # a qonnx DataType
        return v.name
    return v


def _try(fn):
    try:
        return jsonable(fn())
    except Exception as exc:  # noqa: BLE001 - recorded, not hidden
        return {"error": f"{type(exc).__name__}: {exc}"}


def node_record(model: ModelWrapper, node, part: str) -> dict:
    inst = getCustomOp(node)
    types = inst.get_nodeattr_types()
    rec = {"name": node.name, "op_type": node.op_type, "inputs": list(node.input), "outputs": list(node.output)}
    if node.op_type.startswith(INSERTED):
        attrs = {a: _try(lambda a=a: inst.get_nodeattr(a)) for a in sorted(types)}
    else:
        attrs = {a: _try(lambda a=a: inst.get_nodeattr(a)) for a in HW_ATTRS if a in types}
    rec["attrs"] = attrs
    # stream facts: an input is a stream unless it is an initializer (weights, thresholds, constants)
    streams = [model.get_initializer(t) is None and t != "" for t in node.input]
    rec["stream_inputs"] = [i for i, s in enumerate(streams) if s]
    rec["input_datatypes"] = [_try(lambda i=i: inst.get_input_datatype(i).name) if s else None
                              for i, s in enumerate(streams)]
    rec["normal_input_shapes"] = [_try(lambda i=i: inst.get_normal_input_shape(i)) if s else None
                                  for i, s in enumerate(streams)]
    rec["folded_input_shapes"] = [_try(lambda i=i: inst.get_folded_input_shape(i)) if s else None
                                  for i, s in enumerate(streams)]
    rec["instream_widths"] = [_try(lambda i=i: inst.get_instream_width(i)) if s else None
                              for i, s in enumerate(streams)]
    outs = range(len(node.output))
    rec["output_datatypes"] = [_try(lambda i=i: inst.get_output_datatype(i).name) for i in outs]
    rec["normal_output_shapes"] = [_try(lambda i=i: inst.get_normal_output_shape(i)) for i in outs]
    rec["folded_output_shapes"] = [_try(lambda i=i: inst.get_folded_output_shape(i)) for i in outs]
    rec["outstream_widths"] = [_try(lambda i=i: inst.get_outstream_width(i)) for i in outs]
    est = _try(lambda: inst.node_res_estimation(part))
    cyc = _try(lambda: inst.get_exp_cycles())
    if isinstance(est, dict) and "error" not in est and not isinstance(cyc, dict):
        rec["estimate"] = {**est, "cycles": cyc}
    else:
        rec["estimate"] = {"error": est.get("error") if isinstance(est, dict) and "error" in est else cyc}
    return rec


def graph_io(model: ModelWrapper) -> dict:
    def one(vi):
        return {"name": vi.name, "shape": model.get_tensor_shape(vi.name),
                "datatype": model.get_tensor_datatype(vi.name).name}
    return {"inputs": [one(v) for v in model.graph.input], "outputs": [one(v) for v in model.graph.output]}


def is_topological(model: ModelWrapper) -> bool:
    produced = {vi.name for vi in model.graph.input} | {t.name for t in model.graph.initializer}
    for n in model.graph.node:
        if any(t and t not in produced for t in n.input):
            return False
        produced.update(n.output)
    return True


def performance(model: ModelWrapper) -> dict:
    try:
        perf = model.transform(AnnotateCycles()).analysis(dataflow_performance)
        return jsonable({k: perf[k] for k in ("critical_path_cycles", "max_cycles", "max_cycles_node_name")})
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}


def snapshot(model: ModelWrapper, part: str) -> dict:
    res = model.analysis(lambda m: res_estimation(m, part))
    return {"nodes": [node_record(model, n, part) for n in model.graph.node], "graph": graph_io(model),
            "res_estimation": jsonable(res), "total": jsonable(aggregate_dict_keys(res)),
            "performance": performance(model), "topological": is_topological(model)}


# ------------------------------------------------------------------ a model from a node description
def model_from_ir(ir: dict, arrays) -> ModelWrapper:
    """FINN HW nodes (already specialised) from generate.py's description of bsopt's lowered graph.

    Stream inputs come from the description; initializers are added as FINN's conversion has them:
    MVAU weights (MW, MH) and thresholds (MH, steps) unless dynamic / noActivation, Thresholding
    thresholds (C, steps), an elementwise op's constant side. A DuplicateStreams output feeding k
    consumers becomes k outputs, the i-th consumer in graph order reading output i."""
    layers = ir["layers"]
    consumers: dict[str, list[str]] = {}
    for L in layers:
        for t in L["inputs"]:
            consumers.setdefault(t, []).append(L["name"])
    dup_out: dict[tuple[str, str], str] = {}
    nodes, inits, dtypes, vinfo = [], [], {}, []
    for L in layers:
        attrs = dict(L["attrs"])
        op, name = L["op_type"], L["name"]
        outputs = [L["output"]]
        if L["kind"] == "DuplicateStreams":
            users = consumers.get(L["output"], [])
            assert len(users) == attrs["NumOutputStreams"], (name, users)
            outputs = [f"{L['output']}{i}" for i in range(len(users))]
            for i, u in enumerate(users):
                dup_out[(L["output"], u)] = outputs[i]
            attrs.setdefault("outFIFODepths", [2] * len(users))
        stream_in = [dup_out.get((t, name), t) for t in L["inputs"]]
        inputs = list(stream_in)

        def init(suffix, arr, dt, name=name):
            tname = f"{name}_{suffix}"
            inits.append(oh.make_tensor(tname, TensorProto.FLOAT, list(arr.shape), arr.astype(np.float32).ravel()))
            dtypes[tname] = dt
            return tname

        if L["kind"] == "MVAU" and not attrs.get("dynamic_input", 0):
            inputs.append(init("W", arrays[f"{name}__weights"], attrs["weightDataType"]))
            if not attrs.get("noActivation", 0):
                inputs.append(init("T", arrays[f"{name}__hw_thresholds"], attrs["accDataType"]))
        elif L["kind"] == "VVAU":
            raise NotImplementedError("VVAU from a description")
        elif L["kind"] == "Thresholding":
            inputs.append(init("T", arrays[f"{name}__hw_thresholds"], attrs["weightDataType"]))
        elif L["kind"].startswith("Elementwise"):
            inputs = []
            it = iter(stream_in)
            for side in ("lhs", "rhs"):
                if attrs[f"{side}_style"] == "input":
                    inputs.append(next(it))
                else:
                    arr = np.asarray(arrays[f"{name}__params"]).reshape(attrs[f"{side}_shape"])
                    inputs.append(init(side, arr, attrs[f"{side}_dtype"]))
        for t in outputs:  # every tensor's shape up front: FINN's shape inference checks inputs against attrs
            vinfo.append(oh.make_tensor_value_info(t, TensorProto.FLOAT, list(L["out_shape"])))
        backend = op.rsplit("_", 1)[1]
        nodes.append(oh.make_node(op, inputs, outputs, name=name, domain=f"finn.custom_op.fpgadataflow.{backend}",
                                  backend="fpgadataflow", **attrs))
    gin = [oh.make_tensor_value_info(t["name"], TensorProto.FLOAT, t["shape"]) for t in ir["inputs"]]
    gout = [oh.make_tensor_value_info(t["name"], TensorProto.FLOAT, t["shape"]) for t in ir["outputs"]]
    outs = {t["name"] for t in ir["outputs"]}
    graph = oh.make_graph(nodes, "bsopt_lowered", gin, gout, initializer=inits,
                          value_info=[v for v in vinfo if v.name not in outs])
    model = ModelWrapper(oh.make_model(graph, producer_name="bsopt-finn_inserted"))
    for t in ir["inputs"]:
        model.set_tensor_datatype(t["name"], DataType[t["datatype"]])
    for tname, dt in dtypes.items():
        model.set_tensor_datatype(tname, DataType[dt])
    model = model.transform(InferShapes())
    model = model.transform(InferDataTypes())
    return model


def node_attr_diff(a: ModelWrapper, b: ModelWrapper) -> dict:
    """Per node (graph order, same names): the attributes whose values differ between two models."""
    if [n.name for n in a.graph.node] != [n.name for n in b.graph.node]:
        return {"error": "different node lists"}
    out = {}
    for x, y in zip(a.graph.node, b.graph.node, strict=True):
        ax = {t.name: oh.get_attribute_value(t) for t in x.attribute}
        ay = {t.name: oh.get_attribute_value(t) for t in y.attribute}
        diff = {k: [jsonable(ax.get(k)), jsonable(ay.get(k))] for k in sorted(set(ax) | set(ay)) if ax.get(k) != ay.get(k)}
        if diff:
            out[x.name] = diff
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model")
    src.add_argument("--ir")
    ap.add_argument("--arrays")
    ap.add_argument("--part", required=True)
    ap.add_argument("--folding")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    folding = json.load(open(args.folding)) if args.folding else None

    if args.model:
        model = ModelWrapper(args.model)
        ir_renamed = None
    else:
        model = model_from_ir(json.load(open(args.ir)), np.load(args.arrays))
        ir_names = [n.name for n in model.graph.node]
        # what step_apply_folding_config does: FINN's names (graph order after SortGraph), then the config
        model = model.transform(GiveUniqueNodeNames())
        ir_renamed = {a: n.name for a, n in zip(ir_names, model.graph.node, strict=True) if a != n.name}
        if folding is not None:
            model = model.transform(ApplyConfig(folding))

    before = snapshot(model, args.part)
    random.seed(0)  # the new tensors' names come from qonnx's random_string (Python's random): reproducible
    # step_set_fifo_depths with auto_fifo_depths=False, up to GiveUniqueNodeNames
    after_model = model.transform(InsertDWC())
    after_model = after_model.transform(InsertFIFO(create_shallow_fifos=True))
    after_model = after_model.transform(SpecializeLayers(args.part))
    after_model = after_model.transform(GiveUniqueNodeNames())
    after = snapshot(after_model, args.part)
    # which original node each node of the new graph is: the same outputs, except the node that fed a
    # graph output (it now feeds the output FIFO)
    by_outputs = {tuple(n.output): n.name for n in model.graph.node}
    graph_out = {vi.name: model.find_producer(vi.name).name for vi in model.graph.output}
    for rec, n in zip(after["nodes"], after_model.graph.node, strict=True):
        if n.op_type.startswith(INSERTED):
            continue
        name = by_outputs.get(tuple(n.output))
        if name is None:
            for t in n.output:
                fifo = after_model.find_consumer(t)
                if fifo is not None and fifo.output[0] in graph_out:
                    name = graph_out[fifo.output[0]]
        rec["name_before"] = name

    # the rest of that branch of the step: GiveReadableTensorNames, ApplyConfig(folding config) again.
    # It only renames tensors and re-applies the folding config: check it changes no node or estimate
    full = after_model.transform(GiveReadableTensorNames())
    if folding is not None:
        full = full.transform(ApplyConfig(folding))
    full_res = full.analysis(lambda m: res_estimation(m, args.part))
    check = {"node_attr_changes": node_attr_diff(after_model, full),
             "same_res_estimation": jsonable(full_res) == after["res_estimation"],
             "total": jsonable(aggregate_dict_keys(full_res))}

    out = {"before": before, "after": after, "rest_of_step_check": check, "ir_renamed": ir_renamed,
           "versions": {p: _try(lambda p=p: version(p)) for p in ("onnx", "numpy", "onnxruntime", "protobuf")}}
    with open(args.out, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(1)
