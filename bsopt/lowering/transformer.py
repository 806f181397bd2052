"""Transformer operators: LayerNorm, Softmax, matrix products of two streams, and data movement.

FINN dev (the ``latest`` version bsopt mirrors) builds these with the kernels Brainsmith
contributed and its own dynamic-weight MVAU:

* ``LayerNormalization`` -> ``LayerNorm`` (no scale/bias: FINN extracts them into elementwise
  ops, which streamlining absorbs into the next quantiser; here they stay on the stream's value
  function and end up in the next Thresholding layer the same way);
* ``Softmax`` -> ``HWSoftmax`` (FLOAT32 output); a scale in front of it is a real multiplication,
  an ``ElementwiseMul`` layer;
* ``MatMul`` of two streams (QK^T, attention x V) -> ``MVAU`` with ``dynamic_input=1``: ``MW`` and
  ``MH`` are the last two dimensions of the second operand, which streams in as the weights;
* ``Transpose`` of a sequence tensor -> FINN's ``Shuffle``, which the ``transpose_decomposition``
  step splits into ``OuterShuffle`` (swap two outer axes, HLS) and ``InnerShuffle`` (swap the last
  two axes, RTL) layers; the IR holds the decomposed layers, as FINN's estimate reports do.

Sequence tensors (rank 3, and rank-4 tensors reshaped from them) have the layout ``"ROWS"``:
channels last, and a transpose moves data instead of relabelling an image layout.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from qonnx.core.datatype import DataType

from bsopt.errors import ModelError, UnsupportedOpError
from bsopt.lowering.state import INT32, Op, Stream

FLOAT32 = DataType["FLOAT32"]


def _scalar(v) -> float | None:
    arr = np.asarray(v, dtype=np.float64).reshape(-1)
    return float(arr[0]) if arr.size == 1 or np.all(arr == arr[0]) else None


def _producer(b, tensor: str):
    for layer in reversed(b.layers):
        if layer.output == tensor:
            return layer
    return None


# ---------------------------------------------------------------- elementwise with a constant
def emit_const_op(b, node, s: Stream, op: str, value) -> Stream:
    """An ``Elementwise<op>`` layer of a stream with a constant (scalar or per channel): FLOAT32 out
    unless both operands are integers."""
    shape = s.nhwc_shape()
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if v.size > 1 and np.all(v == v[0]):
        v = v[:1]
    rhs_shape = [1] if v.size == 1 else [int(v.size)]
    integral = bool(np.all(v == np.round(v)))
    rhs_dt = DataType.get_smallest_possible(float(v.min())) if integral else FLOAT32
    if integral and v.max() > rhs_dt.max():
        rhs_dt = DataType.get_smallest_possible(float(v.max()))
    out_dt = INT32 if (integral and s.dtype.is_integer()) else FLOAT32
    attrs = {"lhs_shape": list(shape), "rhs_shape": rhs_shape, "out_shape": list(shape),
             "lhs_dtype": s.dtype.name, "rhs_dtype": rhs_dt.name, "out_dtype": out_dt.name,
             "lhs_style": "input", "rhs_style": "const", "PE": 1, "mem_mode": "internal_embedded"}
    layer = b.emit(f"Elementwise{op}", attrs, [shape], shape, [s.tensor], [node.name])
    layer.params = v.copy()
    return Stream(out_dt, s.shape, layer.output, [], None, False, s.layout)


def materialise(b, node, s: Stream, *, keep_shift: bool = True) -> Stream:
    """Turn a stream's pending affine value function into real values with Mul/Add layers."""
    aff = s.affine()
    if aff is None:
        raise ModelError("non-linear function on a stream without a quantiser in between",
                         where=b.node_where(node), hint="quantise the tensor (QuantIdentity) first")
    a, c = aff
    out = s
    if _scalar(a) != 1.0:
        out = emit_const_op(b, node, out, "Mul", a)
    if keep_shift and _scalar(c) != 0.0:
        out = emit_const_op(b, node, out, "Add", c)
    return out


# ---------------------------------------------------------------- LayerNorm / Softmax
def _last_axis(b, node, s: Stream, default: int = -1) -> None:
    axis = int(b.attr(node, "axis", default))
    if axis not in (-1, len(s.shape) - 1):
        raise UnsupportedOpError(f"{node.op_type} over axis {axis}: FINN's kernel normalises the last axis",
                                 where=b.node_where(node))


def handle_layernorm(b, node) -> None:
    s = b.close_accumulator(b.stream(node.input[0], node))
    _last_axis(b, node, s)
    channels = s.channels
    gamma = b.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    beta = b.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if (len(node.input) > 1 and node.input[1] and gamma is None) or (len(node.input) > 2 and node.input[2]
                                                                     and beta is None):
        raise ModelError("LayerNormalization with a streamed scale or bias", where=b.node_where(node))
    gamma = np.ones(channels) if gamma is None else np.broadcast_to(np.asarray(gamma, np.float64), (channels,))
    beta = np.zeros(channels) if beta is None else np.broadcast_to(np.asarray(beta, np.float64), (channels,))
    eps = float(b.attr(node, "epsilon", 1e-5))
    aff = s.affine()
    a = _scalar(aff[0]) if aff is not None else None
    if aff is not None and a is not None and a != 0 and _scalar(aff[1]) is not None:
        # LN(a*q + c) = sign(a) * LN(q) with epsilon / a^2: the per-tensor scale and shift of the
        # integer stream fold into the kernel exactly, so it normalises the integers themselves
        eps = eps / (a * a)
        gamma = gamma * np.sign(a)
    else:
        s = materialise(b, node, s)
    shape = s.nhwc_shape()
    attrs = {"SIMD": 1, "ifm_dim": list(shape), "epsilon": eps, "inputDataType": s.dtype.name,
             "outputDataType": "FLOAT32"}
    layer = b.emit("LayerNorm", attrs, [shape], shape, [s.tensor], [node.name])
    g, bb = gamma.copy(), beta.copy()
    ops = [Op("affine", float(g[0]) if np.all(g == g[0]) else g, float(bb[0]) if np.all(bb == bb[0]) else bb)]
    b.env[node.output[0]] = Stream(FLOAT32, s.shape, layer.output, ops, None, False, s.layout)


def handle_softmax(b, node) -> None:
    s = b.close_accumulator(b.stream(node.input[0], node))
    _last_axis(b, node, s)
    # softmax is shift invariant along its axis but not scale invariant: a per-tensor shift is
    # dropped, a scale becomes an ElementwiseMul in front of the kernel
    aff = s.affine()
    shift_free = aff is not None and _scalar(aff[1]) is not None
    s = materialise(b, node, s, keep_shift=not shift_free)
    shape = s.nhwc_shape()
    attrs = {"ifm_dim": list(shape), "input_data_type": s.dtype.name, "SIMD": 1, "NumChannels": shape[-1],
             "cpp_interface": "hls_vector", "hls_style": "freerunning"}
    layer = b.emit("HWSoftmax", attrs, [shape], shape, [s.tensor], [node.name])
    b.env[node.output[0]] = Stream(FLOAT32, s.shape, layer.output, [], None, False, s.layout)


# ---------------------------------------------------------------- MatMul of two streams
def handle_dynamic_matmul(b, node) -> None:
    """MatMul of two streams: FINN's MVAU with ``dynamic_input=1`` (operand 2 streams as weights)."""
    s0 = b.close_accumulator(b.stream(node.input[0], node))
    s1 = b.close_accumulator(b.stream(node.input[1], node))
    scales = []
    for s, which in ((s0, "first"), (s1, "second")):
        aff = s.affine()
        a = _scalar(aff[0]) if aff is not None else None
        if aff is None or a is None or _scalar(aff[1]) != 0.0:
            raise ModelError(
                f"matrix product of two streams: the {which} operand must be a quantised tensor with a "
                "per-tensor scale and no zero point",
                where=b.node_where(node),
                hint="quantise both operands with a symmetric per-tensor quantiser (e.g. Int8ActPerTensorFloat)",
            )
        if not s.dtype.is_integer():
            raise ModelError(f"matrix product of two streams: the {which} operand is {s.dtype.name}; FINN "
                             "converts it only for integer operands", where=b.node_where(node),
                             hint="put a quantiser on the operand (e.g. after Softmax)")
        scales.append(a)
    sh0, sh1 = s0.nhwc_shape(), s1.nhwc_shape()
    if len(sh1) < 2 or sh0[-1] != sh1[-2]:
        raise ModelError(f"matrix product of shapes {sh0} and {sh1}", where=b.node_where(node))
    if len(sh0) != len(sh1) or tuple(sh0[:-2]) != tuple(sh1[:-2]):
        raise UnsupportedOpError(f"batched matrix product with broadcasting ({sh0} x {sh1})",
                                 where=b.node_where(node))
    mw, mh = int(sh1[-2]), int(sh1[-1])
    out_shape = tuple(sh0[:-1]) + (mh,)
    attrs = {"MW": mw, "MH": mh, "PE": 1, "SIMD": 1, "inputDataType": s0.dtype.name,
             "weightDataType": s1.dtype.name, "outputDataType": "INT32", "accDataType": "INT32", "ActVal": 0,
             "noActivation": 1, "binaryXnorMode": 0, "numInputVectors": list(sh0[:-1]), "dynamic_input": 1,
             "inFIFODepths": [2, 2]}
    layer = b.emit("MVAU", attrs, [sh0, sh1], out_shape, [s0.tensor, s1.tensor], [node.name])
    b.env[node.output[0]] = Stream(INT32, b.shape_of(node.output[0]), layer.output,
                                   [Op("affine", scales[0] * scales[1], 0.0)], layer, False, s0.layout)


# ---------------------------------------------------------------- transposes
def decompose_perm(perm: list[int]) -> list[list[int]]:
    """FINN's transpose decomposition: the shortest sequence of inner moves (swap the last two axes)
    and outer moves (swap two axes, neither the last) whose composition is ``perm``."""
    n = len(perm)
    target = tuple(perm)
    start = tuple(range(n))
    moves = []
    for i in range(n - 1):
        for j in range(i + 1, n - 1):
            moves.append((i, j))
    moves.append((n - 2, n - 1))
    prev: dict[tuple, tuple] = {start: None}
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        if cur == target:
            break
        for i, j in moves:
            nxt = list(cur)
            nxt[i], nxt[j] = nxt[j], nxt[i]
            nxt = tuple(nxt)
            if nxt not in prev:
                prev[nxt] = (cur, (i, j))
                queue.append(nxt)
    steps = []
    cur = target
    while prev[cur] is not None:
        cur, (i, j) = prev[cur]
        p = list(range(n))
        p[i], p[j] = p[j], p[i]
        steps.append(p)
    return steps[::-1]


def loop_coeffs(shape, perm) -> list[int]:
    """Row-major strides of ``shape`` permuted by ``perm`` (the loop nest of FINN's OuterShuffle)."""
    strides = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
    return [strides[p] for p in perm]


def handle_shuffle(b, node, s: Stream) -> None:
    perm = [int(p) for p in b.attr(node, "perm", list(range(len(s.shape)))[::-1])]
    out_shape = b.shape_of(node.output[0])
    if perm == sorted(perm):
        b.env[node.output[0]] = Stream(s.dtype, out_shape, s.tensor, list(s.ops), s.acc_layer, s.bipolar, "ROWS")
        return
    moved = [p for p in perm if s.shape[p] != 1]
    if moved == sorted(moved) and s.shape[perm[-1]] == s.shape[-1]:
        # only axes of size 1 move (e.g. batch-first <-> sequence-first with batch 1): a relabelling
        b.env[node.output[0]] = Stream(s.dtype, out_shape, s.tensor, list(s.ops), s.acc_layer, s.bipolar, "ROWS")
        return
    s = b.close_accumulator(s)
    aff = s.affine()
    if aff is None or _scalar(aff[0]) is None or _scalar(aff[1]) is None:
        raise UnsupportedOpError("transpose of a stream with per-channel scales", where=b.node_where(node),
                                 hint="quantise the tensor with a per-tensor quantiser before the transpose")
    producer = _producer(b, s.tensor)
    in_shape = list(producer.out_shape) if producer is not None and np.prod(producer.out_shape) == np.prod(
        s.shape) else list(s.shape)
    shape = list(s.shape)
    steps = decompose_perm(perm)
    tensor = s.tensor
    # FINN folds the Shuffle (named Shuffle_<i> in graph order) before splitting it; the stages keep
    # its name, and bsopt's design space gives them one SIMD
    earlier = {layer.attrs["original_node_name"] for layer in b.layers if "original_node_name" in layer.attrs}
    original = f"Shuffle_{len(earlier)}"
    for k, p in enumerate(steps):
        t_out = [shape[i] for i in p]
        step_in = in_shape if k == 0 else shape
        if p[-1] != len(p) - 1:  # inner move
            attrs = {"in_shape": list(step_in), "data_type": s.dtype.name, "perm": p, "SIMD": 1,
                     "I": int(step_in[-2]) if len(step_in) > 1 else 1, "J": int(step_in[-1]),
                     "original_node_name": original}
            layer = b.emit("InnerShuffle", attrs, [tuple(step_in)], tuple(t_out), [tensor], [node.name])
        else:
            attrs = {"in_shape": list(step_in), "transpose_in_shape": list(shape), "perm": p,
                     "out_shape": list(t_out), "transpose_out_shape": list(t_out), "data_type": s.dtype.name,
                     "loop_coeffs": loop_coeffs(shape, p), "SIMD": 1, "NumChannels": int(shape[-1]),
                     "cpp_interface": "hls_vector", "hls_style": "freerunning", "original_node_name": original}
            layer = b.emit("OuterShuffle", attrs, [tuple(step_in)], tuple(t_out), [tensor], [node.name])
        tensor, shape = layer.output, t_out
    b.env[node.output[0]] = Stream(s.dtype, out_shape, tensor, list(s.ops), None, s.bipolar, "ROWS")


def note_reshape(b, s: Stream, new_shape) -> None:
    """A Reshape right after a shuffle is part of it (FINN's InferShuffle absorbs it): record the shape."""
    layer = _producer(b, s.tensor)
    if layer is not None and layer.kind == "OuterShuffle":
        layer.attrs["out_shape"] = [int(v) for v in new_shape]
        layer.out_shape = tuple(int(v) for v in new_shape)


# ---------------------------------------------------------------- slices
def handle_slice(b, node) -> None:
    """A slice of the channels of a weight matrix product's output (a fused projection, e.g. the
    in_proj of ``nn.MultiheadAttention`` split into Q, K, V): an MVAU of the weights' columns."""
    s = b.stream(node.input[0], node)
    consts = [b.const(i) if i else None for i in node.input[1:]]
    if len(node.input) < 3 or any(c is None for c in consts[:2]):
        raise UnsupportedOpError("Slice with streamed bounds", where=b.node_where(node))
    starts, ends = (np.asarray(c).reshape(-1) for c in consts[:2])
    axes = np.asarray(consts[2]).reshape(-1) if len(consts) > 2 and consts[2] is not None else np.arange(len(starts))
    steps = np.asarray(consts[3]).reshape(-1) if len(consts) > 3 and consts[3] is not None else np.ones(len(starts))
    rank = len(s.shape)
    layer = s.acc_layer
    channels = s.shape[-1]
    if (len(axes) != 1 or int(axes[0]) % rank != rank - 1 or int(steps[0]) != 1 or layer is None
            or layer.kind != "MVAU" or layer.weights is None):
        raise UnsupportedOpError(
            "Slice of a stream: bsopt maps only a slice of the channels of a weight matrix product's output "
            "(a fused projection) to FINN layers", where=b.node_where(node),
            hint="use separate Linear layers for Q, K and V, or slice right after the fused projection")
    lo = int(starts[0]) + (channels if int(starts[0]) < 0 else 0)
    hi = min(int(ends[0]) + (channels if int(ends[0]) < 0 else 0), channels)
    attrs = dict(layer.attrs)
    attrs["MH"] = hi - lo
    out_shape = tuple(layer.out_shape[:-1]) + (hi - lo,)
    part = b.emit("MVAU", attrs, layer.in_shapes, out_shape, layer.inputs, layer.source_nodes + [node.name])
    part.weights = layer.weights[:, lo:hi].copy()
    ops = []
    for op in s.ops:
        a = op.a[lo:hi] if isinstance(op.a, np.ndarray) else op.a
        c = op.b[lo:hi] if isinstance(op.b, np.ndarray) else op.b
        ops.append(Op(op.kind, a, c))
    b.env[node.output[0]] = Stream(s.dtype, b.shape_of(node.output[0]), part.output, ops, part, s.bipolar, s.layout)
