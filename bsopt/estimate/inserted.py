"""The nodes a real FINN build inserts between layers: data-width converters and FIFOs.

FINN's ``step_set_fifo_depths`` (with ``auto_fifo_depths`` off, before any FIFO sizing) runs
``InsertDWC``, ``InsertFIFO(create_shallow_fifos=True)``, ``SpecializeLayers`` and
``GiveUniqueNodeNames`` on the folded model. This module reproduces what those transformations add
to bsopt's IR, so that the network estimate can include them (the estimate backend's ``insert``
option) and equal FINN's ``res_estimation`` of that model:

* **InsertDWC**: for each producer/consumer pair of layers whose streams carry a different number
  of elements per transfer (the folded shapes' last axes), a ``StreamingDataWidthConverter`` from
  the producer's output width to the consumer's input width (bits), right after the producer;
  SpecializeLayers makes it ``_rtl`` when one width is a multiple of the other, else ``_hls``.
* **InsertFIFO**: a ``StreamingFIFO_rtl`` on every edge between two nodes (DWCs included), of depth
  ``max(producer outFIFODepths, consumer inFIFODepths)`` (FINN's default 2), as wide as the
  producer's output; then, in FINN's next pass, one before the first node (depth
  ``max(inFIFODepths, 2)``) and one after the last.
* **GiveUniqueNodeNames**: every node is named ``<op type>_<n>`` in graph order, so the layers keep
  their names and the inserted nodes are numbered where they stand.

Stream facts come from each cost model's :meth:`~bsopt.estimate.base.NodeModel.streams`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.choices import INSERT_MODES
from bsopt.estimate.base import REGISTRY, EstimateError


@dataclass
class Node:
    """One node of the graph after insertion: a layer or an inserted DWC/FIFO."""

    name: str
    op_type: str
    attrs: dict[str, Any]
    inserted: bool = False
    layer: str = ""  # the IR layer's name (FINN may number it differently after insertion)
    shape: tuple[int, ...] = ()  # the (unfolded) output shape
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    # (elements per transfer, dtype) of each input / output stream
    ins: list[tuple[int, str] | None] = field(default_factory=list)
    outs: list[tuple[int, str]] = field(default_factory=list)


def _bits(dtype: str) -> int:
    return DataType[dtype].bitwidth()


def _streams(op_type: str, attrs: dict[str, Any], version: str, name: str):
    from bsopt.estimate import nodes  # noqa: F401  (registers the cost models)

    model = REGISTRY.get(op_type)
    found = model.streams({**model.defaults(version), **attrs}) if model is not None else None
    if found is None:
        raise EstimateError(f"layer {name}: bsopt does not know the streams of {op_type}, so it cannot place the "
                            "data-width converters and FIFOs FINN inserts around it",
                            hint="estimate without them (the estimate backend's insert: none)")
    return found


def _dwc(stream_in: tuple[int, str], stream_out: tuple[int, str], shape) -> Node:
    in_width = stream_in[0] * _bits(stream_in[1])
    out_width = stream_out[0] * _bits(stream_out[1])
    impl = "rtl" if max(in_width, out_width) % min(in_width, out_width) == 0 else "hls"
    dtype = stream_in[1]
    elems = out_width // _bits(dtype) if out_width % _bits(dtype) == 0 else stream_out[0]
    return Node("", f"StreamingDataWidthConverter_{impl}",
                {"inWidth": in_width, "outWidth": out_width, "shape": list(shape), "dataType": dtype},
                inserted=True, ins=[stream_in], outs=[(elems, dtype)])


def _fifo(stream: tuple[int, str], depth: int) -> Node:
    return Node("", "StreamingFIFO_rtl", {"depth": int(depth), "folded_shape": [stream[0]], "dataType": stream[1],
                                          "impl_style": "rtl", "ram_style": "auto"},
                inserted=True, ins=[stream], outs=[stream])


def _depth(attrs: dict[str, Any], key: str, index: int) -> int:
    """A node's ``inFIFODepths``/``outFIFODepths`` entry (FINN's default [2]; the last one for a
    stream past the list's end)."""
    value = attrs.get(key, [2])
    depths = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])] or [2]
    return depths[min(index, len(depths) - 1)]


def with_inserted(layers, version: str, mode: str = "dwc_fifo") -> list[Node]:
    """The graph's nodes in FINN's order after InsertDWC (and, for ``dwc_fifo``, InsertFIFO), with
    FINN's names. ``layers``: the configured layers (FINN attributes set, bit widths minimised)."""
    if mode not in INSERT_MODES:
        raise EstimateError(f"unknown insert mode {mode!r}", hint="modes: " + ", ".join(INSERT_MODES))
    nodes = []
    readers: dict[str, list[Node]] = {}
    for layer in layers:
        ins, outs = _streams(layer.op_type, layer.attrs, version, layer.name)
        node = Node(layer.name, layer.op_type, layer.attrs, inputs=list(layer.inputs), outputs=[layer.output],
                    ins=list(ins), outs=list(outs), layer=layer.name, shape=tuple(layer.out_shape))
        nodes.append(node)
        for t in node.inputs:
            readers.setdefault(t, []).append(node)
    for node in nodes:
        if len(node.outs) > 1:
            # bsopt's IR gives a DuplicateStreams one output tensor read by every consumer; FINN gives
            # each consumer its own output, in graph order
            tensor = node.outputs[0]
            users = readers.get(tensor, [])
            node.outputs = [f"{tensor}#{k}" for k in range(len(node.outs))]
            for k, user in enumerate(users[:len(node.outs)]):
                user.inputs = [node.outputs[k] if t == tensor else t for t in user.inputs]
    if mode == "none":
        return nodes
    counter = [0]

    def fresh() -> str:
        counter[0] += 1
        return f"__inserted_{counter[0]}"

    def consumers_of(tensor: str) -> list[tuple[Node, int]]:
        return [(n, i) for n in nodes for i, t in enumerate(n.inputs) if t == tensor]

    def splice(at: int, producer: Node, out_idx: int, consumer: Node, in_idx: int, new: Node) -> None:
        tensor = producer.outputs[out_idx]
        new.inputs, new.outputs = [tensor], [fresh()]
        consumer.inputs[in_idx] = new.outputs[0]
        nodes.insert(at, new)

    # InsertDWC: one pass over the layers (a DWC is never followed by another)
    i = 0
    while i < len(nodes):
        n = nodes[i]
        if not n.inserted:
            for out_idx, tensor in enumerate(n.outputs):
                cons = consumers_of(tensor)
                if len(cons) != 1:
                    continue
                c, in_idx = cons[0]
                stream_in = c.ins[in_idx] if in_idx < len(c.ins) else None
                if stream_in is None or c.inserted:
                    continue
                stream_out = n.outs[out_idx] if out_idx < len(n.outs) else n.outs[0]
                if stream_out[0] != stream_in[0]:
                    splice(i + 1, n, out_idx, c, in_idx, _dwc(stream_out, stream_in, n.shape))
        i += 1
    nodes = _sort(nodes)
    if mode == "dwc_fifo":
        # InsertFIFO, first pass: every edge between two non-FIFO nodes
        i = 0
        while i < len(nodes):
            n = nodes[i]
            if n.op_type != "StreamingFIFO_rtl":
                for out_idx, tensor in enumerate(n.outputs):
                    cons = consumers_of(tensor)
                    if not cons or cons[0][0].op_type == "StreamingFIFO_rtl":
                        continue
                    c, in_idx = cons[0]
                    if in_idx >= len(c.ins) or c.ins[in_idx] is None:
                        continue
                    depth = max(_depth(n.attrs, "outFIFODepths", out_idx), _depth(c.attrs, "inFIFODepths", in_idx))
                    # FINN sizes every output's FIFO from output 0's folded shape and datatype
                    splice(i + 1, n, out_idx, c, in_idx, _fifo(n.outs[0], depth))
            i += 1
        # InsertFIFO, next pass: the graph input's and output's FIFOs
        produced = {t for n in nodes for t in n.outputs}
        consumed = {t for n in nodes for t in n.inputs}
        def graph_input(n: Node) -> int | None:
            return next((k for k, t in enumerate(n.inputs) if k < len(n.ins) and n.ins[k] and t not in produced), None)

        first = next((n for n in nodes if graph_input(n) is not None), None)
        if first is not None and first.op_type != "StreamingFIFO_rtl":
            idx = graph_input(first)
            depth = max(_depth(first.attrs, "inFIFODepths", idx), 2)
            fifo = _fifo(first.ins[idx], depth)
            fifo.inputs, fifo.outputs = [first.inputs[idx]], [fresh()]
            first.inputs[idx] = fifo.outputs[0]
            nodes.insert(0, fifo)
        last = next((n for n in reversed(nodes) if any(t not in consumed for t in n.outputs)), None)
        if last is not None and last.op_type != "StreamingFIFO_rtl":
            idx = next(k for k, t in enumerate(last.outputs) if t not in consumed)
            depth = max(_depth(last.attrs, "outFIFODepths", idx), 2)
            fifo = _fifo(last.outs[min(idx, len(last.outs) - 1)], depth)
            fifo.inputs, fifo.outputs = [fresh()], [last.outputs[idx]]
            last.outputs[idx] = fifo.inputs[0]
            nodes.append(fifo)
        nodes = _sort(nodes)
    # GiveUniqueNodeNames: every node numbered per op type in the (re-sorted) graph order; on a
    # branching graph a layer can get another layer's number (FINN's report then names it so)
    seen: dict[str, int] = {}
    for n in nodes:
        k = seen.get(n.op_type, 0)
        seen[n.op_type] = k + 1
        n.name = f"{n.op_type}_{k}"
    return nodes


def _sort(nodes: list[Node]) -> list[Node]:
    """qonnx's SortGraph (run by every transformation's cleanup): a topological order by levels —
    the nodes whose producers are all placed, in their current order, level after level."""
    producer = {t: i for i, n in enumerate(nodes) for t in n.outputs}
    deps = {i: {producer[t] for t in n.inputs if t in producer} for i, n in enumerate(nodes)}
    order: list[int] = []
    while deps:
        ready = sorted(i for i, d in deps.items() if not d)
        if not ready:  # a cycle: keep the rest as it is
            order += sorted(deps)
            break
        order += ready
        for i in ready:
            del deps[i]
        done = set(ready)
        for d in deps.values():
            d -= done
    return [nodes[i] for i in order]


# ---------------------------------------------------------------------------- per edge (exact solver)
def stream_key(op_type: str, attrs: dict[str, Any], version: str, name: str = "",
               shape: tuple[int, ...] = ()) -> tuple:
    """What decides the nodes FINN inserts around a layer: its streams, FIFO depth attributes and
    output shape."""
    ins, outs = _streams(op_type, attrs, version, name or op_type)
    return (tuple(ins), tuple(outs), tuple(_depth(attrs, "inFIFODepths", i) for i in range(max(len(ins), 1))),
            tuple(_depth(attrs, "outFIFODepths", i) for i in range(max(len(outs), 1))), tuple(shape))


def edge_nodes(producer: tuple, out_idx: int, consumer: tuple, in_idx: int, mode: str) -> list[Node]:
    """The nodes FINN puts on one edge between two layers (given by :func:`stream_key`): a converter
    where the elements per transfer differ, and (``dwc_fifo``) a FIFO on each side of it."""
    p_ins, p_outs, _, p_out_depths, p_shape = producer
    c_ins, _, c_in_depths, _, _ = consumer
    out = p_outs[min(out_idx, len(p_outs) - 1)]
    into = c_ins[in_idx]
    nodes = []
    dwc = _dwc(out, into, p_shape) if out[0] != into[0] else None
    if dwc is not None:
        nodes.append(dwc)
    if mode == "dwc_fifo":
        p_depth = p_out_depths[min(out_idx, len(p_out_depths) - 1)]
        c_depth = c_in_depths[min(in_idx, len(c_in_depths) - 1)]
        if dwc is not None:  # a DWC's own FIFO depths are FINN's default [2]
            nodes += [_fifo(p_outs[0], max(p_depth, 2)), _fifo(dwc.outs[0], max(2, c_depth))]
        else:
            nodes.append(_fifo(p_outs[0], max(p_depth, c_depth)))
    return nodes


def boundary_nodes(key: tuple, side: str, index: int, mode: str) -> list[Node]:
    """The FIFO FINN puts before the graph's first layer (``side="in"``) or after its last (``"out"``)."""
    if mode != "dwc_fifo":
        return []
    ins, outs, in_depths, out_depths, _ = key
    if side == "in":
        return [_fifo(ins[index], max(in_depths[min(index, len(in_depths) - 1)], 2))]
    return [_fifo(outs[min(index, len(outs) - 1)], max(out_depths[min(index, len(out_depths) - 1)], 2))]
