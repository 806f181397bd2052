"""The lowering's finalisation as small named passes, in the order FINN's flow applies them.

After the walk over the QONNX graph (:mod:`bsopt.lowering.builder`) the layers are generic (``MVAU``)
and unnamed. Each pass below does one thing, like a qonnx ``Transformation``: ``apply(graph)``
changes the graph in place and returns it. :func:`finalize` runs them in FINN's order;
:func:`apply_folding` is ApplyConfig then the bit-width minimisation; the design space names layers
with :class:`FinnNames` (FINN's naming rule) instead of re-deriving it.
"""

from __future__ import annotations

from typing import Any

from bsopt.ir.bitwidths import DT_ATTRS, minimize_bit_widths
from bsopt.ir.layers import DataflowGraph
from bsopt.ir.params import summarise
from bsopt.lowering.finalize import IMPL_DEFAULTS, choose_backend, insert_duplicate_streams


class FinnNames:
    """FINN's node names: ``<op type>_<n>``, counting the nodes of each op type in graph order (each
    of FINN's ``Infer…`` and ``SpecializeLayers`` transformations renames this way)."""

    def __init__(self):
        self._counters: dict[str, int] = {}

    def index(self, op_type: str) -> int:
        """The next index of ``op_type`` (0 for its first node)."""
        n = self._counters.get(op_type, 0)
        self._counters[op_type] = n + 1
        return n

    def next(self, op_type: str) -> str:
        return f"{op_type}_{self.index(op_type)}"


class Pass:
    """One finalisation step (``name`` is what it is called in FINN's flow)."""

    name = ""

    def apply(self, graph: DataflowGraph) -> DataflowGraph:
        raise NotImplementedError


class InsertDuplicateStreams(Pass):
    """A stream read by several layers gets a DuplicateStreams layer (FINN's InsertDuplicateStreams)."""

    name = "InsertDuplicateStreams"

    def apply(self, graph):
        graph.layers = insert_duplicate_streams(graph.layers, graph.inputs, graph.outputs, graph.finn_version)
        return graph


class SpecializeLayers(Pass):
    """Each generic layer gets its backend, ``MVAU`` → ``MVAU_hls``/``MVAU_rtl`` (FINN's
    SpecializeLayers: the preferred style where the part and the layer allow it, else the default)."""

    name = "SpecializeLayers"

    def __init__(self, preferred_impl_style: dict[str, str] | None = None):
        self.preferred = preferred_impl_style or {}

    def apply(self, graph):
        for layer in graph.layers:
            pref = self.preferred.get(layer.name) or self.preferred.get(layer.kind, "")
            layer.op_type = f"{layer.kind}_{choose_backend(layer, graph.finn_version, graph.fpgapart, pref)}"
        return graph


class SetImplDefaults(Pass):
    """FINN's defaults of the implementation attributes bsopt varies (memory mode, RAM styles, …)."""

    name = "SetImplDefaults"

    def apply(self, graph):
        legacy = graph.finn_version == "0.10.1"
        for layer in graph.layers:
            for key, value in IMPL_DEFAULTS.get(layer.kind, {}).items():
                layer.attrs.setdefault(key, value)
            backend = layer.backend
            if layer.kind == "MVAU":  # FINN dev's MVAU_hls defaults resType to "lut"; elsewhere "auto"
                layer.attrs.setdefault("resType", "lut" if not legacy and backend == "hls" else "auto")
                if not legacy and not layer.attrs["binaryXnorMode"]:
                    layer.attrs.setdefault("dynamic_input", 0)  # set by InferQuantizedMVAU only
            if layer.kind == "VVAU":
                layer.attrs.setdefault("resType", "auto")
            if layer.kind == "Pool" and not legacy:
                layer.attrs.setdefault("cpp_interface", "hls_vector")
            if layer.kind == "ConvolutionInputGenerator" and backend == "rtl":
                layer.attrs.setdefault("ram_style", "distributed")
            layer.base_attrs = {k: v for k, v in layer.attrs.items() if k in DT_ATTRS}
        return graph


class NameLayers(Pass):
    """Layers named as FINN names them (:class:`FinnNames`), tensors after their producers."""

    name = "NameLayers"

    def apply(self, graph):
        names = FinnNames()
        for layer in graph.layers:
            layer.name = names.next(layer.op_type)
        rename = {layer.output: f"{layer.name}_out" for layer in graph.layers}
        for layer in graph.layers:
            layer.output = rename[layer.output]
            layer.inputs = [rename.get(t, t) for t in layer.inputs]
        graph.outputs = [rename.get(t, t) for t in graph.outputs]
        return graph


class ApplyFolding(Pass):
    """A FINN folding config (``{"Defaults": …, name: {…}}``, FINN's ApplyConfig), without redoing
    the bit-width minimisation (run :class:`MinimizeBitWidths` after it where that matters)."""

    name = "ApplyConfig"

    def __init__(self, config: dict[str, Any], where: str = "folding config"):
        self.config, self.where = config, where

    def apply(self, graph):
        return graph.apply_folding_config(self.config, where=self.where)


class SummariseParameters(Pass):
    """Weights and thresholds reduced to what FINN's estimates read of them (bsopt.ir.params)."""

    name = "SummariseParameters"

    def apply(self, graph):
        for layer in graph.layers:
            summarise(layer)
        return graph


class MinimizeBitWidths(Pass):
    """FINN's MinimizeWeightBitWidth, MinimizeAccumulatorWidth and threshold rounding."""

    name = "MinimizeBitWidths"

    def apply(self, graph):
        minimize_bit_widths(graph)
        return graph


def apply_folding(graph: DataflowGraph, config: dict[str, Any], *, where: str = "folding config",
                  minimize: bool = True) -> DataflowGraph:
    """A folding config applied as FINN's flow does: ApplyConfig, then (unless ``minimize=False``)
    the bit-width minimisation that depends on some of its attributes."""
    graph = ApplyFolding(config, where).apply(graph)
    return MinimizeBitWidths().apply(graph) if minimize else graph


def generic_passes(options) -> list[Pass]:
    """The passes after the walk that do not depend on the target (part, backend preferences,
    bit-width minimisation): their result is shared by every variant of a model (see :func:`lower`)."""
    passes: list[Pass] = [InsertDuplicateStreams()]
    if not options.keep_parameters:  # what the later passes and the estimates read of the matrices
        passes.append(SummariseParameters())
    return passes


def target_passes(options) -> list[Pass]:
    """The passes that specialise the generic layers for a target: backends, FINN's defaults and
    names, the bit-width minimisation."""
    passes: list[Pass] = [SpecializeLayers(options.preferred_impl_style), SetImplDefaults(), NameLayers()]
    if options.minimize_bit_width:
        passes.append(MinimizeBitWidths())
    return passes


def finalization(options) -> list[Pass]:
    """The passes after the walk, for these :class:`~bsopt.lowering.builder.LoweringOptions`."""
    return generic_passes(options) + target_passes(options)


def finalize(layers, inputs, outputs, options, warnings) -> DataflowGraph:
    """The walk's generic layers → the specialised, named, minimised DataflowGraph FINN would build."""
    return specialize(generic(layers, inputs, outputs, options, warnings), options)


def generic(layers, inputs, outputs, options, warnings) -> DataflowGraph:
    """The walk's layers with the target-independent passes applied (not yet specialised)."""
    graph = DataflowGraph(list(layers), list(inputs), list(outputs), finn_version=options.finn_version,
                          fpgapart=options.fpgapart, warnings=list(warnings))
    for p in generic_passes(options):
        graph = p.apply(graph)
    return graph


def specialize(graph: DataflowGraph, options) -> DataflowGraph:
    """A generic graph specialised for ``options``' target (in place)."""
    graph.fpgapart = options.fpgapart
    for p in target_passes(options):
        graph = p.apply(graph)
    return graph
