"""Walk a cleaned QONNX graph and emit FINN dataflow layers.

One handler per ONNX op type (see ``HANDLERS``). Handlers read the state of their inputs
(:mod:`bsopt.lowering.state`), emit layers through :class:`Builder` and record the state of their
outputs. The result has FINN's generic op types (``MVAU``, ``Thresholding`` …); naming, backend
choice and bit-width minimisation happen afterwards (:mod:`bsopt.lowering.finalize`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import helper as oh
from qonnx.core.datatype import DataType

from bsopt.errors import ModelError, UnsupportedOpError
from bsopt.ir.datatypes import add_dtype, global_acc_pool_dtype, label_select_dtype, rac_threshold_dtype
from bsopt.ir.layers import Layer
from bsopt.lowering import transformer
from bsopt.lowering.options import LoweringOptions
from bsopt.lowering.state import INT32, Op, QConst, Stream, channel_vector
from bsopt.lowering.thresholds import ActQuant, compute_thresholds, float_thresholds

SHAPE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose")


class Builder:
    """Holds the walk's state: tensor states, emitted layers, the model being read."""

    def __init__(self, model, options: LoweringOptions, where: str = "model"):
        self.model = model
        self.options = options
        self.where = where
        self.env: dict[str, Any] = {}
        self.layers: list[Layer] = []
        self.warnings: list[str] = []
        self._uid = 0
        self.graph_inputs: list[str] = []
        self.graph_outputs: list[str] = []

    # ----------------------------------------------------------------- helpers
    def node_where(self, node) -> str:
        return f"{self.where}: node '{node.name}' ({node.op_type})"

    def new_tensor(self, hint: str) -> str:
        self._uid += 1
        return f"{hint}_t{self._uid}"

    def emit(self, kind: str, attrs: dict, in_shapes, out_shape, inputs, source) -> Layer:
        index = sum(1 for other in self.layers if other.op_type == kind)
        layer = Layer(
            name=f"{kind}_{index}",  # FINN's name before specialisation, e.g. MVAU_0
            op_type=kind,
            attrs=attrs,
            in_shapes=[tuple(int(v) for v in s) for s in in_shapes],
            out_shape=tuple(int(v) for v in out_shape),
            inputs=list(inputs),
            output=self.new_tensor(kind),
            source_nodes=list(source),
        )
        self.layers.append(layer)
        return layer

    def const(self, name: str):
        """A constant input (numpy array or QConst), or None if the tensor is not constant."""
        if name == "":
            return None
        if name in self.env and not isinstance(self.env[name], Stream):
            return self.env[name]
        init = self.model.initializer(name)
        if init is not None:
            return np.asarray(init)
        return None

    def is_const(self, name: str) -> bool:
        """Whether ``const(name)`` has a value (without converting an initializer to read it)."""
        if name in self.env:
            return not isinstance(self.env[name], Stream)
        return self.model.is_constant(name)

    def stream(self, name: str, node) -> Stream:
        state = self.env.get(name)
        if not isinstance(state, Stream):
            raise ModelError(f"input '{name}' is not a streamed tensor", where=self.node_where(node))
        return state

    def attr(self, node, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                v = oh.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else v
        return default

    def shape_of(self, name: str) -> tuple[int, ...]:
        shape = self.model.shape(name)
        if shape is None:
            raise ModelError(f"unknown shape for tensor '{name}'", where=self.where)
        return tuple(int(s) for s in shape)

    # ---------------------------------------------------------------- streams
    def close_accumulator(self, s: Stream) -> Stream:
        """Give an open MVAU/VVAU accumulator no activation: its output is the accumulator."""
        if s.acc_layer is None:
            return s
        layer = s.acc_layer
        layer.attrs["noActivation"] = 1
        layer.attrs["ActVal"] = 0
        layer.attrs["outputDataType"] = layer.attrs["accDataType"]
        return Stream(INT32, s.shape, layer.output, s.ops, None, False, s.layout)

    # -------------------------------------------------------------------- run
    def run(self):
        graph = self.model.graph
        for inp in self.model.inputs:
            dt = self.model.datatype(inp.name)
            shape = self.shape_of(inp.name)
            self.env[inp.name] = Stream(dt, shape, inp.name)
            self.graph_inputs.append(inp.name)
        uses: dict[str, int] = {}
        for node in self.model.nodes:
            for i in node.input:
                uses[i] = uses.get(i, 0) + 1
        for out in graph.output:
            uses[out.name] = uses.get(out.name, 0) + 1
        for node in self.model.nodes:
            self._handle(node)
            for i in node.input:  # a constant read for the last time (weights): free it
                uses[i] -= 1
                if uses[i] == 0 and i in self.env and not isinstance(self.env[i], Stream):
                    del self.env[i]
        for out in graph.output:
            state = self.env.get(out.name)
            if isinstance(state, Stream):
                state = self.close_accumulator(state)
                self.graph_outputs.append(state.tensor)
        self.prune()
        return self

    def _handle(self, node) -> None:
        handler = HANDLERS.get(node.op_type)
        inputs_const = all(self.is_const(i) for i in node.input if i != "")
        if inputs_const and node.op_type not in ("Quant", "BipolarQuant", "IntQuant"):
            fold_constant(self, node)
            return
        if handler is None:
            hint = "supported operators: " + ", ".join(sorted(HANDLERS))
            if node.op_type in ("ReduceMean", "Pow", "Sqrt"):
                hint = ("this looks like a LayerNorm decomposed by an export at opset < 17: export with "
                        "opset 17 or later (bsopt model export --opset 17) to keep LayerNormalization; " + hint)
            raise UnsupportedOpError(
                f"operator '{node.op_type}' cannot be mapped to a FINN dataflow layer",
                where=f"{self.where}: node '{node.name}'",
                hint=hint,
            )
        handler(self, node)

    def prune(self) -> None:
        """Drop layers nothing reads (e.g. a fused projection replaced by its slices)."""
        while True:
            used = {t for layer in self.layers for t in layer.inputs} | set(self.graph_outputs)
            keep = [layer for layer in self.layers if layer.output in used]
            if len(keep) == len(self.layers):
                return
            self.layers = keep


# ---------------------------------------------------------------- constants
def fold_constant(b: Builder, node) -> None:
    """Evaluate a node whose inputs are all constant; shape ops keep quantized constants symbolic."""
    ins = [b.const(i) for i in node.input]
    if node.op_type in SHAPE_OPS and isinstance(ins[0], QConst):
        qc = ins[0]
        vals = _run_node(b, node, [qc.values] + [x for x in ins[1:]])
        scale = _run_node(b, node, [np.broadcast_to(qc.scale, qc.values.shape).copy()] + list(ins[1:]))
        b.env[node.output[0]] = QConst(vals, scale, qc.dtype)
        return
    plain = [x.real() if isinstance(x, QConst) else x for x in ins]
    b.env[node.output[0]] = _run_node(b, node, plain)


def _run_node(b: Builder, node, inputs: list) -> np.ndarray:
    from bsopt.intake.graph import run_node

    try:
        context = run_node(node, dict(zip(node.input, inputs, strict=True)), b.model.opset)
    except Exception as exc:
        raise ModelError(f"could not evaluate constant node ({exc})", where=b.node_where(node)) from exc
    return np.asarray(context[node.output[0]])


# ---------------------------------------------------------------- quantizers
def _quant_params(b: Builder, node):
    if node.op_type == "BipolarQuant":
        scale = b.const(node.input[1])
        return dict(scale=scale, zeropt=0.0, bits=1, signed=True, narrow=False, rounding="ROUND")
    scale, zeropt, bits = (b.const(node.input[i]) for i in (1, 2, 3))
    if scale is None or zeropt is None or bits is None:
        raise ModelError("quantizer parameters must be constant", where=b.node_where(node))
    bits_v = float(np.asarray(bits).reshape(-1)[0])
    if bits_v != int(bits_v):
        raise UnsupportedOpError("fractional bit widths are not supported", where=b.node_where(node))
    return dict(
        scale=np.asarray(scale, dtype=np.float64),
        zeropt=np.asarray(zeropt, dtype=np.float64),
        bits=int(bits_v),
        signed=bool(b.attr(node, "signed", 1)),
        narrow=bool(b.attr(node, "narrow", 0)),
        rounding=b.attr(node, "rounding_mode", "ROUND"),
    )


def _int_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    if signed:
        lo = -(2 ** (bits - 1)) + (1 if narrow else 0)
        return lo, 2 ** (bits - 1) - 1
    return 0, 2**bits - 1 - (1 if narrow else 0)


def handle_quant(b: Builder, node) -> None:
    p = _quant_params(b, node)
    src = node.input[0]
    value = b.const(src)
    bipolar = p["bits"] == 1 and p["signed"]
    if value is not None:  # a quantized constant (weights)
        value = value.real() if isinstance(value, QConst) else np.asarray(value, dtype=np.float64)
        scale = np.asarray(p["scale"], dtype=np.float64)  # broadcast against value where it is used
        np.broadcast_shapes(scale.shape, value.shape)
        zp = np.asarray(p["zeropt"], dtype=np.float64)
        if np.any(zp != 0):
            raise UnsupportedOpError("weight quantizers with a non-zero zero-point", where=b.node_where(node))
        if bipolar:
            ints = np.where(value / scale >= 0, 1.0, -1.0)
            dtype = DataType["BIPOLAR"]
        else:
            lo, hi = _int_range(p["bits"], p["signed"], p["narrow"])
            ints = np.round(np.clip(value / scale, lo, hi))
            dtype = DataType[f"{'INT' if p['signed'] else 'UINT'}{p['bits']}"]
        b.env[node.output[0]] = QConst(ints, scale, dtype)
        return
    s = b.stream(src, node)
    if bipolar:
        grid = ActQuant(-1, 1, p["scale"], 0.0, "ROUND", True)
    else:
        lo, hi = _int_range(p["bits"], p["signed"], p["narrow"])
        grid = ActQuant(lo, hi, p["scale"], p["zeropt"], p["rounding"], False)
    activation(b, node, s, grid)


def activation(b: Builder, node, s: Stream, grid: ActQuant) -> None:
    """A quantized activation on a stream: absorbed into the open MVAU/VVAU, or a Thresholding layer."""
    opts = b.options
    absorb = s.acc_layer is not None and not opts.standalone_thresholds
    if absorb:
        s = _flip_negative_channels(b, node, s)
        lo, hi = s.domain()
        thr = compute_thresholds(s, grid, lo, hi + 1)
        layer = s.acc_layer
        layer.thresholds = thr
        layer.attrs["noActivation"] = 0
        odt = grid.out_dtype()
        if layer.attrs.get("binaryXnorMode"):  # FINN's binary MVAU: 0 for 1-bit outputs, else odt.min()
            layer.attrs["ActVal"] = 0 if odt.bitwidth() == 1 else int(odt.min())
        else:
            layer.attrs["ActVal"] = 0 if grid.bipolar else grid.qmin
        layer.attrs["outputDataType"] = grid.out_dtype().name
        layer.source_nodes.append(node.name)
        out_tensor, out_shape = layer.output, s.shape
    else:
        s = b.close_accumulator(s)
        idt = s.dtype
        if idt.is_integer():
            # streamlining's RoundAndClipThresholds: ceil, then clip to [min, max+1] (FINN 0.10.1:
            # [min-1, max+1] for signed inputs, [0, max+1] for unsigned ones)
            lo, hi = int(idt.min()), int(idt.max())
            search_lo = lo - 1 if (opts.legacy and idt.signed() and idt.name != "INT32") else lo
            thr = compute_thresholds(s, grid, search_lo, hi + 1)
            # FINN dev rounds thresholds only in step_minimize_bit_width (0.10.1 while streamlining)
            tdt = rac_threshold_dtype(idt) if opts.round_thresholds or opts.legacy else DataType["FLOAT32"]
        elif not opts.legacy and s.affine() is not None:
            thr = float_thresholds(s, grid, b.node_where(node))  # FINN dev thresholds float inputs
            tdt = idt
        else:
            raise ModelError(
                f"activation quantizer on a {idt.name} stream: FINN {opts.finn_version} needs integer "
                "inputs for thresholds",
                where=b.node_where(node),
                hint="declare the input's integer datatype (e.g. UINT8 for images, as bsopt model export "
                "does with --prepost) or use FINN 'latest', which thresholds float inputs",
            )
        shape = s.nhwc_shape()
        attrs = {
            "NumChannels": shape[-1],
            "PE": 1,
            "inputDataType": idt.name,
            "weightDataType": tdt.name,
            "outputDataType": grid.out_dtype().name,
            "ActVal": 0 if grid.bipolar else grid.qmin,
            "numInputVectors": list(shape[:-1]),
            "numSteps": thr.shape[1],
        }
        layer = b.emit("Thresholding", attrs, [shape], shape, [s.tensor], [node.name])
        layer.thresholds = thr
        out_tensor, out_shape = layer.output, s.shape
    if grid.bipolar:
        scale = np.asarray(grid.scale, dtype=np.float64)
        ops = [Op("affine", _squeeze_param(2 * scale), _squeeze_param(-scale))]
    else:
        scale = np.asarray(grid.scale, dtype=np.float64)
        zp = np.asarray(grid.zeropt, dtype=np.float64)
        ops = [Op("affine", _squeeze_param(scale), _squeeze_param(-zp * scale))]
    b.env[node.output[0]] = Stream(
        DataType["BINARY"] if grid.bipolar else grid.out_dtype(),
        out_shape,
        out_tensor,
        ops,
        None,
        grid.bipolar,
        s.layout,
    )


def _squeeze_param(v):
    arr = np.asarray(v, dtype=np.float64).reshape(-1)
    if arr.size == 1 or np.all(arr == arr[0]):
        return float(arr[0])
    return arr


def _flip_negative_channels(b: Builder, node, s: Stream) -> Stream:
    """FINN factors a negative per-channel scale's sign into the weights (flipping those columns)."""
    aff = s.affine()
    if aff is None:
        return s
    a, c = aff
    a_arr = np.asarray(a, dtype=np.float64)
    if not np.any(a_arr < 0):
        return s
    layer = s.acc_layer
    channels = layer.weights.shape[1]
    a_vec = np.broadcast_to(a_arr, (channels,)).copy()
    c_vec = np.broadcast_to(np.asarray(c, dtype=np.float64), (channels,)).copy()
    neg = a_vec < 0
    if layer.attrs.get("binaryXnorMode"):
        mw = layer.weights.shape[0]
        layer.weights[:, neg] = 1 - layer.weights[:, neg]  # popcount' = MW - popcount
        c_vec[neg] = c_vec[neg] + a_vec[neg] * mw
    else:
        layer.weights[:, neg] = -layer.weights[:, neg]
    a_vec[neg] = -a_vec[neg]
    return Stream(s.dtype, s.shape, s.tensor, [Op("affine", a_vec, c_vec)], layer, s.bipolar, s.layout)


# ---------------------------------------------------------------- elementwise
def handle_elementwise(b: Builder, node) -> None:
    op = node.op_type
    c0, c1 = b.const(node.input[0]), b.const(node.input[1])
    if c0 is None and c1 is None:
        if op == "Add":
            return handle_add_streams(b, node)
        raise UnsupportedOpError(f"{op} of two streamed tensors", where=b.node_where(node))
    stream_first = c1 is not None
    s = b.stream(node.input[0] if stream_first else node.input[1], node)
    c = c1 if stream_first else c0
    c = c.real() if isinstance(c, QConst) else np.asarray(c, dtype=np.float64)
    v = channel_vector(c, s.shape, s.layout, b.node_where(node))
    if op == "Mul":
        new = s.with_op(Op("affine", v, 0.0))
    elif op == "Div":
        if not stream_first:
            raise UnsupportedOpError("division of a constant by a stream", where=b.node_where(node))
        new = s.with_op(Op("affine", 1.0 / np.asarray(v), 0.0))
    elif op == "Add":
        new = s.with_op(Op("affine", 1.0, v))
    else:  # Sub
        new = s.with_op(Op("affine", 1.0, -np.asarray(v)) if stream_first else Op("affine", -1.0, v))
    new.ops[-1] = Op(new.ops[-1].kind, _squeeze_param(new.ops[-1].a), _squeeze_param(new.ops[-1].b))
    b.env[node.output[0]] = new


def handle_batchnorm(b: Builder, node) -> None:
    s = b.stream(node.input[0], node)
    gamma, beta, mean, var = (np.asarray(b.const(n), dtype=np.float64) for n in node.input[1:5])
    eps = float(b.attr(node, "epsilon", 1e-5))
    a = gamma / np.sqrt(var + eps)
    bias = beta - mean * a
    b.env[node.output[0]] = s.with_op(Op("affine", _squeeze_param(a), _squeeze_param(bias)))


def handle_relu(b: Builder, node) -> None:
    s = b.stream(node.input[0], node)
    b.env[node.output[0]] = s.with_op(Op("relu"))


def handle_clip(b: Builder, node) -> None:
    s = b.stream(node.input[0], node)
    lo = b.const(node.input[1]) if len(node.input) > 1 and node.input[1] else b.attr(node, "min", -np.inf)
    hi = b.const(node.input[2]) if len(node.input) > 2 and node.input[2] else b.attr(node, "max", np.inf)
    b.env[node.output[0]] = s.with_op(Op("clip", float(np.asarray(lo)), float(np.asarray(hi))))


def handle_shape_op(b: Builder, node) -> None:
    s = b.stream(node.input[0], node)
    out_shape = b.shape_of(node.output[0])
    rows = s.layout == "ROWS" or len(s.shape) == 3
    if rows and node.op_type == "Transpose":
        return transformer.handle_shuffle(b, node, s)
    if rows and len(out_shape) >= 3:
        # a sequence tensor (batch, positions…, channels): reshapes keep it channels-last
        if s.shape[-1] != out_shape[-1] and not _scalar_ops(s):
            # per-channel scales/biases cannot follow channels split into heads: apply them first
            s = transformer.materialise(b, node, b.close_accumulator(s))
        transformer.note_reshape(b, s, out_shape)
        b.env[node.output[0]] = Stream(s.dtype, out_shape, s.tensor, list(s.ops), s.acc_layer, s.bipolar, "ROWS")
        return
    in_ch = s.channels
    new = Stream(s.dtype, out_shape, s.tensor, list(s.ops), s.acc_layer, s.bipolar, "NCHW")
    if node.op_type == "Transpose":
        perm = list(b.attr(node, "perm", []))
        if len(out_shape) == 4 and perm == [0, 2, 3, 1]:
            new.layout = "NHWC"
        elif len(out_shape) == 4 and perm == [0, 3, 1, 2]:
            new.layout = "NCHW"
        elif len(s.shape) > 2 and perm[-1] != len(s.shape) - 1:
            raise UnsupportedOpError(f"transpose with perm {perm} of a stream", where=b.node_where(node))
    out_ch = new.channels
    if out_ch != in_ch:
        # a flatten/reshape that changes the channel axis: expand per-channel parameters
        reps = out_ch // in_ch if in_ch and out_ch % in_ch == 0 else 0
        ops = []
        for op in s.ops:
            a, c = op.a, op.b
            if isinstance(a, np.ndarray) or isinstance(c, np.ndarray):
                if not reps:
                    raise UnsupportedOpError(
                        "reshape that mixes channels under per-channel scales", where=b.node_where(node)
                    )
                a = np.repeat(a, reps) if isinstance(a, np.ndarray) else a
                c = np.repeat(c, reps) if isinstance(c, np.ndarray) else c
            ops.append(Op(op.kind, a, c))
        new.ops = ops
    b.env[node.output[0]] = new


# ---------------------------------------------------------------- compute
def _weights(b: Builder, node, name: str) -> QConst:
    w = b.const(name)
    if isinstance(w, QConst):
        return w
    if w is not None:
        raise ModelError(
            "weights are not quantized (no Quant node on them): FINN needs integer weights",
            where=b.node_where(node),
            hint="use Brevitas QuantLinear/QuantConv2d layers with a weight bit width",
        )
    raise UnsupportedOpError("matrix product of two streamed tensors (dynamic weights)", where=b.node_where(node))


def _open_mvau(b, node, s, W: QConst, w_int: np.ndarray, w_scale: np.ndarray, out_shape_nhwc, out_shape,
               kind: str, extra: dict, in_shape_nhwc, in_tensor, mw: int, bias, in_bias_term):
    """Create an MVAU/VVAU with an open accumulator and the stream that represents its output."""
    aff = s.affine()
    if aff is None:
        raise ModelError("non-linear function between quantizer and matrix product", where=b.node_where(node))
    a, c = aff
    a_arr = np.asarray(a, dtype=np.float64)
    if a_arr.size > 1 and not np.all(a_arr == a_arr.reshape(-1)[0]):
        raise ModelError(
            "per-channel scale on the input of a matrix product: FINN cannot fold it into integer weights",
            where=b.node_where(node),
            hint="use a per-tensor scale for activation quantizers that feed Linear/Conv layers",
        )
    a_s = float(a_arr.reshape(-1)[0])
    xnor = s.bipolar and W.dtype.name == "BIPOLAR"
    if xnor:
        weights = (w_int + 1) / 2
        idt, wdt = DataType["BINARY"], DataType["BINARY"]
        # real = sw * (a/2) * (2*popcount - MW) for the bipolar input values (a/2)*(2q-1)
        # (the input's bias -a/2 is part of this bipolar encoding)
        sc = w_scale * a_s
        out_a, out_b = sc, bias - sc * mw / 2.0
    else:
        weights = w_int
        idt, wdt = s.dtype, W.dtype
        out_a, out_b = w_scale * a_s, bias + in_bias_term
    attrs = dict(extra)
    attrs.update(
        {
            "PE": 1,
            "SIMD": 1,
            "inputDataType": idt.name,
            "weightDataType": wdt.name,
            "outputDataType": "INT32",
            "accDataType": "INT32",
            "ActVal": 0,
            "noActivation": 1,
            "binaryXnorMode": int(xnor),
            "numInputVectors": list(out_shape_nhwc[:-1]),
        }
    )
    layer = b.emit(kind, attrs, [in_shape_nhwc], out_shape_nhwc, [in_tensor], [node.name])
    layer.weights = _compact(weights)
    b.env[node.output[0]] = Stream(
        INT32, out_shape, layer.output, [Op("affine", _squeeze_param(out_a), _squeeze_param(out_b))], layer,
        False, "NCHW",
    )
    return layer


def _compact(weights) -> np.ndarray:
    """Integer weights in 16 bits (a BERT-base's 85 M weights: 170 MB, not 680 MB), others as float64."""
    w = np.asarray(weights)
    if w.size and np.all(np.abs(w) <= 2**15 - 1) and np.all(w == np.round(w)):
        return w.astype(np.int16)
    return w.astype(np.float64)


def _column_scale(w_scale: np.ndarray, node, b) -> np.ndarray:
    """Weight scale of an MW x MH matrix must be per output column (or per tensor)."""
    if not np.all(w_scale == w_scale[0:1, :]):
        raise ModelError("weight scale varies along the input dimension", where=b.node_where(node))
    return w_scale[0]


def _scalar_ops(s: Stream) -> bool:
    return all(np.asarray(op.a).size == 1 and np.asarray(op.b).size == 1 for op in s.ops)


def handle_matmul(b: Builder, node) -> None:
    if node.op_type == "MatMul" and isinstance(b.env.get(node.input[1]), Stream):
        return transformer.handle_dynamic_matmul(b, node)
    s = b.close_accumulator(b.stream(node.input[0], node))
    W = _weights(b, node, node.input[1])
    vals, scale = W.values, np.broadcast_to(W.scale, W.values.shape)
    bias = 0.0
    if node.op_type == "Gemm":
        if b.attr(node, "transA", 0):
            raise UnsupportedOpError("Gemm with transA=1", where=b.node_where(node))
        if b.attr(node, "transB", 0):
            vals, scale = vals.T, scale.T
        alpha = float(b.attr(node, "alpha", 1.0))
        scale = scale * alpha
        if len(node.input) > 2 and node.input[2]:
            c = b.const(node.input[2])
            c = c.real() if isinstance(c, QConst) else np.asarray(c, dtype=np.float64)
            bias = float(b.attr(node, "beta", 1.0)) * np.broadcast_to(c, (vals.shape[1],)).astype(np.float64)
    if vals.ndim != 2:
        raise UnsupportedOpError(f"MatMul with {vals.ndim}-D weights", where=b.node_where(node))
    mw, mh = vals.shape
    in_shape = s.nhwc_shape()
    if in_shape[-1] != mw:
        raise ModelError(f"input has {in_shape[-1]} features but weights expect {mw}", where=b.node_where(node))
    out_shape = b.shape_of(node.output[0])
    out_nhwc = tuple(in_shape[:-1]) + (mh,)
    w_scale = _column_scale(scale, node, b)
    aff = s.affine()
    in_bias = np.broadcast_to(np.asarray(aff[1] if aff else 0.0, dtype=np.float64), (mw,))
    _open_mvau(b, node, s, W, vals, w_scale, out_nhwc, out_shape, "MVAU",
               {"MW": int(mw), "MH": int(mh)}, in_shape, s.tensor, mw, bias, in_bias @ (vals * scale))


def _pads(b: Builder, node, k: tuple[int, int]):
    auto_pad = b.attr(node, "auto_pad", "NOTSET")
    pads = list(b.attr(node, "pads", [0, 0, 0, 0]))
    if auto_pad not in ("NOTSET", "VALID"):
        raise UnsupportedOpError(f"auto_pad={auto_pad}; export with explicit pads", where=b.node_where(node))
    return pads  # [top, left, bottom, right]


def _emit_padding(b: Builder, node, s: Stream, pads, tensor: str, shape_nhwc):
    n, h, w, c = shape_nhwc
    out = (n, h + pads[0] + pads[2], w + pads[1] + pads[3], c)
    attrs = {
        "ImgDim": [h, w],
        "Padding": [int(p) for p in pads],
        "NumChannels": c,
        "SIMD": c,  # FINN creates padding fully parallel; folding lowers it
        "inputDataType": s.dtype.name,
    }
    layer = b.emit("FMPadding", attrs, [shape_nhwc], out, [tensor], [node.name])
    return layer.output, out


def _emit_swg(b, node, s, tensor, shape_nhwc, k, stride, dilation, out_hw, depthwise):
    n, h, w, c = shape_nhwc
    out = (n, out_hw[0], out_hw[1], k[0] * k[1] * c)
    attrs = {
        "ConvKernelDim": [int(k[0]), int(k[1])],
        "IFMChannels": int(c),
        "IFMDim": [int(h), int(w)],
        "OFMDim": [int(out_hw[0]), int(out_hw[1])],
        "SIMD": int(c),  # FINN's value at creation; SetFolding or a folding config lowers it
        "Stride": [int(stride[0]), int(stride[1])],
        "Dilation": [int(dilation[0]), int(dilation[1])],
        "inputDataType": s.dtype.name,
        "outputDataType": s.dtype.name,
        "depthwise": int(depthwise),
        "is1D": int(h == 1 or w == 1),
    }
    layer = b.emit("ConvolutionInputGenerator", attrs, [shape_nhwc], out, [tensor], [node.name])
    return layer.output, out


def handle_conv(b: Builder, node) -> None:
    s = b.close_accumulator(b.stream(node.input[0], node))
    W = _weights(b, node, node.input[1])
    vals, scale = W.values, np.broadcast_to(W.scale, W.values.shape)
    if vals.ndim != 4:
        raise UnsupportedOpError(f"{vals.ndim - 2}-D convolution", where=b.node_where(node))
    oc, icg, kh, kw = vals.shape
    group = int(b.attr(node, "group", 1))
    stride = list(b.attr(node, "strides", [1, 1]))
    dilation = list(b.attr(node, "dilations", [1, 1]))
    pads = _pads(b, node, (kh, kw))
    in_shape = s.nhwc_shape()
    ic = in_shape[-1]
    out_shape = b.shape_of(node.output[0])
    oh_, ow_ = out_shape[2], out_shape[3]
    depthwise = group > 1
    if depthwise and not (group == ic and icg == 1 and oc == ic):
        raise UnsupportedOpError(
            f"grouped convolution with group={group} (only depthwise, group == channels, is supported)",
            where=b.node_where(node),
        )
    # per-output-channel weight scale
    sc = scale.reshape(oc, -1)
    if not np.all(sc == sc[:, 0:1]):
        raise ModelError("weight scale varies inside an output channel", where=b.node_where(node))
    w_scale = sc[:, 0]
    aff = s.affine()
    in_bias = np.broadcast_to(np.asarray(aff[1] if aff else 0.0, dtype=np.float64), (ic,))
    bias = np.zeros(oc)
    if len(node.input) > 2 and node.input[2]:
        c = b.const(node.input[2])
        bias = np.asarray(c.real() if isinstance(c, QConst) else c, dtype=np.float64).reshape(oc)
    tensor, shape = s.tensor, in_shape
    if any(pads):
        tensor, shape = _emit_padding(b, node, s, pads, tensor, shape)
    out_nhwc = (1, oh_, ow_, oc)
    needs_swg = any(pads) or kh != 1 or kw != 1 or stride != [1, 1] or depthwise
    if needs_swg:
        tensor, shape = _emit_swg(b, node, s, tensor, shape, (kh, kw), stride, dilation, (oh_, ow_), depthwise)
    if depthwise:
        w_real = vals * scale
        in_term = in_bias * w_real.reshape(oc, -1).sum(axis=1)
        # VVAU weights: (kh*kw) x channels
        extra = {"Channels": int(oc), "Kernel": [int(kh), int(kw)], "Dim": [int(oh_), int(ow_)]}
        layer = _open_mvau(b, node, s, W, vals.reshape(oc, kh * kw).T, w_scale, out_nhwc, out_shape, "VVAU",
                           extra, shape, tensor, kh * kw, bias, in_term)
        layer.attrs.pop("numInputVectors", None)  # FINN's VVAU has Dim instead
        layer.attrs["PE"] = int(oc)  # FINN creates VVAUs fully parallel over channels
        return
    mat = vals.transpose(2, 3, 1, 0).reshape(kh * kw * icg, oc)  # (kh, kw, ic) x oc
    w_real = mat * np.repeat(w_scale[None, :], mat.shape[0], axis=0)
    in_bias_vec = np.tile(in_bias, kh * kw)
    mw = kh * kw * icg
    _open_mvau(b, node, s, W, mat, w_scale, out_nhwc, out_shape, "MVAU", {"MW": int(mw), "MH": int(oc)},
               shape, tensor, mw, bias, in_bias_vec @ w_real)


# ---------------------------------------------------------------- pooling, misc
def handle_maxpool(b: Builder, node) -> None:
    s = b.stream(node.input[0], node)
    if s.acc_layer is not None:
        raise UnsupportedOpError(
            "MaxPool between a matrix product and its activation quantizer",
            where=b.node_where(node),
            hint="put the MaxPool after the quantized activation (as in FINN's CNV)",
        )
    k = list(b.attr(node, "kernel_shape"))
    stride = list(b.attr(node, "strides", k))
    pads = _pads(b, node, tuple(k))
    if b.attr(node, "ceil_mode", 0):
        raise UnsupportedOpError("MaxPool with ceil_mode=1", where=b.node_where(node))
    shape = s.nhwc_shape()
    out_shape = b.shape_of(node.output[0])
    n, h, w, c = shape
    oh_, ow_ = out_shape[2], out_shape[3]
    out_nhwc = (n, oh_, ow_, c)
    if b.options.legacy and k == stride and not any(pads) and h % k[0] == 0 and w % k[1] == 0 and k[0] == k[1]:
        attrs = {"ImgDim": [h, w], "PoolDim": [int(k[0]), int(k[1])], "NumChannels": c, "PE": 1,
                 "CeilMode": 0, "dataType": s.dtype.name}
        layer = b.emit("StreamingMaxPool", attrs, [shape], out_nhwc, [s.tensor], [node.name])
    else:
        tensor, ishape = s.tensor, shape
        if any(pads):
            tensor, ishape = _emit_padding(b, node, s, pads, tensor, shape)
        tensor, wshape = _emit_swg(b, node, s, tensor, ishape, k, stride, [1, 1], (oh_, ow_), True)
        attrs = {
            "Channels": c, "PE": c, "KernelSize": [int(k[0]), int(k[1])], "Function": "MaxPool",
            "OutImgDims": [int(oh_), int(ow_)], "InputDataType": s.dtype.name,
            "OutputDataType": s.dtype.name, "AccumBits": 0, "Size": 0, "BatchSize": 1,
        }
        layer = b.emit("Pool", attrs, [wshape], out_nhwc, [tensor], [node.name])
    b.env[node.output[0]] = Stream(s.dtype, out_shape, layer.output, list(s.ops), None, s.bipolar, s.layout)


def handle_global_avg_pool(b: Builder, node) -> None:
    s = b.close_accumulator(b.stream(node.input[0], node))
    shape = s.nhwc_shape()
    n, h, w, c = shape
    idt = s.dtype
    odt = global_acc_pool_dtype(idt, h * w)
    attrs = {"NumChannels": c, "PE": 1, "inputDataType": idt.name, "numInputVectors": [n, h, w]}
    out_shape = b.shape_of(node.output[0])
    layer = b.emit("GlobalAccPool", attrs, [shape], (n, 1, 1, c), [s.tensor], [node.name])
    new = Stream(odt, out_shape, layer.output, list(s.ops), None, False, s.layout)
    b.env[node.output[0]] = new.with_op(Op("affine", 1.0 / (h * w), 0.0)) if not s.ops else _avg_ops(s, h * w, new)


def _avg_ops(s: Stream, n: int, new: Stream) -> Stream:
    aff = s.affine()
    if aff is None:
        raise ModelError("average pooling after a non-linear function without quantization")
    a, c = aff
    new.ops = [Op("affine", _squeeze_param(np.asarray(a) / n), _squeeze_param(c))]
    return new


def handle_topk(b: Builder, node) -> None:
    """TopK (or ArgMax, i.e. top-1) over the classes → LabelSelect, which outputs the indices."""
    s = b.close_accumulator(b.stream(node.input[0], node))
    if node.op_type == "ArgMax":
        axis = int(b.attr(node, "axis", 0))
        if axis not in (-1, len(s.shape) - 1):
            raise UnsupportedOpError("ArgMax over an axis other than the last", where=b.node_where(node))
        k = 1
    else:
        k = int(np.asarray(b.const(node.input[1])).reshape(-1)[0])
    aff = s.affine()
    if aff is None or np.any(np.asarray(aff[0]) <= 0) or np.asarray(aff[0]).size > 1 or np.asarray(aff[1]).size > 1:
        b.warnings.append(
            f"{node.name}: a per-class scale or bias before TopK cannot be absorbed into LabelSelect "
            "(FINN leaves it in software); the hardware ranks the raw accumulator"
        )
    shape = s.nhwc_shape()
    labels = shape[-1]
    odt = label_select_dtype(labels)
    attrs = {"Labels": labels, "PE": 1, "K": k, "inputDataType": s.dtype.name, "outputDataType": odt.name,
             "numInputVectors": list(shape[:-1])}
    out_shape = tuple(shape[:-1]) + (k,)
    layer = b.emit("LabelSelect", attrs, [shape], out_shape, [s.tensor], [node.name])
    idx_out = node.output[1] if len(node.output) > 1 else node.output[0]
    b.env[idx_out] = Stream(odt, out_shape, layer.output, [], None, False, "NHWC")


def handle_add_streams(b: Builder, node) -> None:
    s0 = b.close_accumulator(b.stream(node.input[0], node))
    s1 = b.close_accumulator(b.stream(node.input[1], node))
    a0, a1 = s0.affine(), s1.affine()
    if a0 is None or a1 is None or np.any(np.asarray(a0[0]) != np.asarray(a1[0])):
        raise ModelError(
            "residual Add of streams with different scales: FINN's AddStreams needs equal scales",
            where=b.node_where(node),
            hint="quantize both branches with a shared quantizer before the Add",
        )
    shape = s0.nhwc_shape()
    if b.options.legacy:
        if s0.dtype != s1.dtype:
            raise ModelError(
                f"residual Add of {s0.dtype.name} and {s1.dtype.name} streams: FINN 0.10.1's AddStreams "
                "needs equal input datatypes",
                where=b.node_where(node),
            )
        kind = "AddStreams"
        attrs = {"NumChannels": shape[-1], "PE": 1, "inputDataType": s0.dtype.name,
                 "numInputVectors": list(shape[:-1])}
    else:
        kind = "ElementwiseAdd"
        attrs = {"lhs_shape": list(shape), "rhs_shape": list(shape), "out_shape": list(shape),
                 "lhs_dtype": s0.dtype.name, "rhs_dtype": s1.dtype.name, "out_dtype": "INT32",
                 "lhs_style": "input", "rhs_style": "input", "PE": 1}
    layer = b.emit(kind, attrs, [shape, shape], shape, [s0.tensor, s1.tensor], [node.name])
    odt = add_dtype(s0.dtype, s1.dtype)
    b.env[node.output[0]] = Stream(
        odt, s0.shape, layer.output, [Op("affine", a0[0], np.asarray(a0[1]) + np.asarray(a1[1]))], None, False,
        s0.layout,
    )


def handle_pad(b: Builder, node) -> None:
    s = b.close_accumulator(b.stream(node.input[0], node))
    pads = b.const(node.input[1]) if len(node.input) > 1 else np.asarray(b.attr(node, "pads"))
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
        raise UnsupportedOpError("Pad other than spatial padding of an NCHW tensor", where=b.node_where(node))
    shape = s.nhwc_shape()
    tensor, out = _emit_padding(b, node, s, [pads[2], pads[3], pads[6], pads[7]], s.tensor, shape)
    b.env[node.output[0]] = Stream(s.dtype, b.shape_of(node.output[0]), tensor, list(s.ops), None, s.bipolar,
                                   s.layout)


HANDLERS = {
    "Quant": handle_quant,
    "IntQuant": handle_quant,
    "BipolarQuant": handle_quant,
    "Mul": handle_elementwise,
    "Div": handle_elementwise,
    "Add": handle_elementwise,
    "Sub": handle_elementwise,
    "BatchNormalization": handle_batchnorm,
    "Relu": handle_relu,
    "Clip": handle_clip,
    "MatMul": handle_matmul,
    "Gemm": handle_matmul,
    "Conv": handle_conv,
    "MaxPool": handle_maxpool,
    "GlobalAveragePool": handle_global_avg_pool,
    "TopK": handle_topk,
    "ArgMax": handle_topk,
    "Pad": handle_pad,
    "LayerNormalization": transformer.handle_layernorm,
    "Slice": transformer.handle_slice,
    "Softmax": transformer.handle_softmax,
    **{op: handle_shape_op for op in SHAPE_OPS},
}
