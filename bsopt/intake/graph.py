"""A QONNX model read once and indexed by tensor name, for lowering.

qonnx's ``ModelWrapper`` finds a tensor's initializer, shape, datatype or producer by scanning the
graph, and its transformations deep-copy the whole model (weights included) and run ONNX shape
inference on it, serialising it each time. On a BERT-base export (~340 MB, 12 encoder layers) that
cleanup took most of a minute and several GB. :class:`OnnxGraph` does the same preparation once,
with indexes, and without touching the weights:

1. custom quantiser nodes get qonnx's domain (exporters spell it differently);
2. constant subgraphs are folded as qonnx's ``FoldConstants`` does (nodes whose inputs are all
   constant, ``Shape`` of a tensor of known shape, nodes without inputs; quantisers are kept), with
   shapes inferred again after each round that folded something;
3. shapes are inferred by ONNX on a *skeleton* of the model: its nodes, with every large initializer
   replaced by a graph input of the same type and shape (shape inference needs the values of small
   constants such as a ``Reshape`` target, never of weights) and qonnx's custom ops by their
   shape-compatible standard ops (qonnx's ``InferShapes`` recipe);
4. nodes are ordered as qonnx's ``SortGraph`` orders them (by dependency level, then position), the
   order FINN's layer names follow.

Initializers are converted to numpy arrays on demand, and large ones are not kept: each caller reads
them when it needs them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

QUANT_NODE_OPS = ("Quant", "Trunc", "BipolarQuant")
#: node types constant folding leaves in place (their outputs are what lowering reads as quantised constants)
NOT_FOLDED = ("Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear")
#: initializers with more elements than this are weights: shape inference sees only their type and shape
SKELETON_MAX_ELEMENTS = 4096
#: arrays of at most this many elements are kept once converted (constants lowering reads repeatedly)
KEEP_MAX_ELEMENTS = 65536


class OnnxGraph:
    """A prepared, read-only view of a QONNX model: nodes in order, and per tensor its constant value,
    shape and QONNX datatype, each found in constant time."""

    def __init__(self, model: onnx.ModelProto, where: str = "model"):
        self.model = model
        self.graph = model.graph
        self.where = where
        self.opset = next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), 13)
        self._inits: dict[str, onnx.TensorProto] = {t.name: t for t in model.graph.initializer}
        self._folded: dict[str, np.ndarray] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self._shapes: dict[str, tuple[int, ...] | None] = {}
        self._dtypes: dict[str, str] = {}
        for ann in model.graph.quantization_annotation:
            for kv in ann.quant_parameter_tensor_names:
                if kv.key == "finn_datatype":
                    self._dtypes[ann.tensor_name] = kv.value
        self.nodes: list[onnx.NodeProto] = list(model.graph.node)
        self._prepare()

    # ------------------------------------------------------------------ reads
    def is_constant(self, name: str) -> bool:
        """Whether the tensor is an initializer or was folded into one."""
        return name in self._inits or name in self._folded

    def initializer(self, name: str) -> np.ndarray | None:
        """The constant value of a tensor, or None if it is not constant."""
        if name in self._folded:
            return self._folded[name]
        arr = self._arrays.get(name)
        if arr is not None:
            return arr
        proto = self._inits.get(name)
        if proto is None:
            return None
        arr = numpy_helper.to_array(proto)
        if arr.size <= KEEP_MAX_ELEMENTS:
            self._arrays[name] = arr
        return arr

    def shape(self, name: str) -> tuple[int, ...] | None:
        """The tensor's shape, or None where shape inference found none."""
        if name in self._folded:
            return tuple(self._folded[name].shape)
        if name in self._inits:
            return tuple(int(d) for d in self._inits[name].dims)
        return self._shapes.get(name)

    def datatype(self, name: str):
        """The tensor's QONNX datatype (its ``finn_datatype`` annotation; FLOAT32 without one)."""
        from qonnx.core.datatype import DataType

        return DataType[self._dtypes.get(name, "FLOAT32")]

    @property
    def inputs(self) -> list[onnx.ValueInfoProto]:
        """The graph's streamed inputs (not initializers)."""
        return [vi for vi in self.graph.input if not self.is_constant(vi.name)]

    @property
    def outputs(self) -> list[onnx.ValueInfoProto]:
        return list(self.graph.output)

    def op_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for node in self.nodes:
            hist[node.op_type] = hist.get(node.op_type, 0) + 1
        return hist

    # ------------------------------------------------------------ preparation
    def _prepare(self) -> None:
        for node in self.nodes:
            if node.op_type in QUANT_NODE_OPS:
                node.domain = "qonnx.custom_op.general"
        self.nodes = self._sorted(self.nodes)
        self._infer_shapes()
        while self._fold():
            self._infer_shapes()
        self.nodes = self._sorted(self.nodes)

    def _fold(self) -> bool:
        """One pass of qonnx's FoldConstants in node order; True if a node was folded."""
        kept, folded = [], False
        for node in self.nodes:
            if node.op_type in NOT_FOLDED:
                kept.append(node)
                continue
            const_inputs = all(self.is_constant(i) for i in node.input if i)
            shape_of_known = node.op_type == "Shape" and node.input and self.shape(node.input[0]) is not None
            if not (const_inputs or shape_of_known or len(node.input) == 0):
                kept.append(node)
                continue
            inputs: dict[str, np.ndarray] = {}
            for i in node.input:
                if not i:
                    continue
                if self.is_constant(i):
                    inputs[i] = self.initializer(i)
                else:  # Shape of a streamed tensor: only its shape is read
                    inputs[i] = np.zeros(self.shape(i), dtype=np.float32)
            try:
                context = run_node(node, inputs, self.opset)
            except Exception:  # noqa: BLE001 - left in the graph: lowering reports what it cannot do
                kept.append(node)
                continue
            for o in node.output:
                if context.get(o) is not None:
                    self._folded[o] = np.asarray(context[o])
            folded = True
        self.nodes = kept
        return folded

    def _skeleton(self) -> onnx.ModelProto:
        """The model without its weights (large initializers become typed graph inputs) and with qonnx's
        custom ops replaced by shape-compatible standard ops."""
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.custom_op.registry import getCustomOp, is_custom_op

        g = self.graph
        inits, placeholders = [], []
        for name in {i for n in self.nodes for i in n.input if i}:
            if name in self._folded:
                arr = self._folded[name]
                if arr.size <= SKELETON_MAX_ELEMENTS:
                    inits.append(numpy_helper.from_array(arr, name))
                else:
                    placeholders.append(helper.make_tensor_value_info(
                        name, helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape)))
            elif name in self._inits:
                t = self._inits[name]
                n_el = int(np.prod(t.dims)) if len(t.dims) else 1
                if n_el <= SKELETON_MAX_ELEMENTS:
                    inits.append(t)
                else:
                    placeholders.append(helper.make_tensor_value_info(name, t.data_type, list(t.dims)))
        inputs = [vi for vi in g.input if not self.is_constant(vi.name)] + placeholders
        graph = helper.make_graph([], g.name or "graph", inputs, list(g.output), initializer=inits,
                                  value_info=[vi for vi in g.value_info if not self.is_constant(vi.name)])
        model = helper.make_model(graph, opset_imports=list(self.model.opset_import))
        model.ir_version = self.model.ir_version
        wrapper = ModelWrapper(model, fix_missing_initializer_valueinfo=False)
        for node in self.nodes:
            if is_custom_op(node.domain):
                try:
                    node = getCustomOp(node).make_shape_compatible_op(wrapper)
                except Exception:  # noqa: BLE001 - an op qonnx does not know: its outputs get no shape
                    continue
            model.graph.node.append(node)
        return model

    def _infer_shapes(self) -> None:
        import onnx.shape_inference as si

        inferred = si.infer_shapes(self._skeleton()).graph
        shapes: dict[str, tuple[int, ...] | None] = {}
        for vi in list(self.graph.input) + list(self.graph.value_info) + list(inferred.input) + \
                list(inferred.value_info) + list(inferred.output) + list(self.graph.output):
            shape = _static_shape(vi)
            if shape is not None or vi.name not in shapes:
                shapes[vi.name] = shape
        self._shapes = shapes

    def _sorted(self, nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
        """qonnx's SortGraph order: by dependency level (longest path from the graph's inputs), then by
        position; nodes fed by nothing the graph has are dropped, as SortGraph drops them."""
        producer = {o: i for i, n in enumerate(nodes) for o in n.output}
        sources = {vi.name for vi in self.graph.input} | set(self._inits) | set(self._folded)
        level: dict[int, int] = {}
        for i, node in enumerate(nodes):  # nodes are in some topological order (exports are; see below)
            preds = [producer[t] for t in node.input if t in producer and producer[t] != i]
            if node.input and not preds and not any(t in sources for t in node.input):
                continue  # floating: SortGraph drops it
            level[i] = 0
            for p in preds:
                if p not in level:  # not yet ordered: fall back to a full topological levelling
                    return _sorted_general(nodes, producer, sources)
                level[i] = max(level[i], level[p] + 1)
        return [nodes[i] for i in sorted(level, key=lambda i: (level[i], i))]


def run_node(node: onnx.NodeProto, inputs: dict[str, np.ndarray | None], opset: int) -> dict[str, Any]:
    """Execute one node on constant inputs, in a graph of its own: qonnx's custom ops with their Python
    implementation, standard ops in onnxruntime (inputs typed from their values, outputs by ONNX shape
    inference). Returns the context: inputs and outputs by name."""
    from qonnx.custom_op.registry import is_custom_op

    given = {k: np.asarray(v) for k, v in inputs.items() if v is not None}
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
           for k, v in given.items()]
    names = [o for o in node.output if o]
    context: dict[str, Any] = dict(given)
    if is_custom_op(node.domain):
        from qonnx.core.onnx_exec import execute_node

        graph = helper.make_graph([node], "node", ins, [helper.make_tensor_value_info(o, 0, None) for o in names])
        for o in node.output:
            context[o] = None
        execute_node(node, context, graph, opset_version=opset)
        return context
    import onnx.shape_inference as si
    import onnxruntime as rt

    model = helper.make_model(helper.make_graph([node], "node", ins, []),
                              opset_imports=[helper.make_opsetid("", opset)])
    inferred = {vi.name: vi for vi in si.infer_shapes(model).graph.value_info}
    model.graph.output.extend(inferred[o] if o in inferred else helper.make_tensor_value_info(o, 1, None)
                              for o in names)
    options = rt.SessionOptions()
    options.intra_op_num_threads = 1
    sess = rt.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    for o, v in zip(names, sess.run(names, {k: given[k] for k in node.input if k}), strict=True):
        context[o] = v
    return context


def _sorted_general(nodes, producer, sources) -> list:
    """Levels by repeated passes, for graphs whose node list is not topologically sorted."""
    preds = {i: {producer[t] for t in n.input if t in producer and producer[t] != i} for i, n in enumerate(nodes)}
    keep = {i for i, n in enumerate(nodes) if not n.input or preds[i] or any(t in sources for t in n.input)}
    level: dict[int, int] = {}
    remaining = set(keep)
    depth = 0
    while remaining:
        ready = {i for i in remaining if all(p in level for p in preds[i] if p in keep)}
        if not ready:  # a cycle: keep the rest in place
            ready = set(remaining)
        for i in ready:
            level[i] = depth
        remaining -= ready
        depth += 1
    return [nodes[i] for i in sorted(level, key=lambda i: (level[i], i))]


def _static_shape(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    """The shape a value info declares (a symbolic dimension reads as 0, as qonnx reads it)."""
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(int(d.dim_value) for d in t.shape.dim)
