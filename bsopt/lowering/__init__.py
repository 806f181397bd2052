"""Lower a QONNX model to bsopt's dataflow-layer IR, with FINN's semantics and names."""

from __future__ import annotations

from pathlib import Path

from bsopt.ir.layers import DataflowGraph
from bsopt.lowering.options import LoweringOptions


def __getattr__(name: str):
    # the builder imports onnx (over a second): only when a model is really lowered
    if name == "SUPPORTED_OPS":
        from bsopt.lowering.builder import HANDLERS

        return tuple(sorted(HANDLERS))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def lower(model, options: LoweringOptions | None = None, *, where: str | None = None, **kwargs) -> DataflowGraph:
    """Lower a QONNX model (a path, a qonnx ``ModelWrapper``, an ONNX ``ModelProto`` or an
    :class:`~bsopt.intake.graph.OnnxGraph`) to a :class:`DataflowGraph`.

    Keyword arguments are :class:`LoweringOptions` fields (``finn_version``, ``fpgapart``,
    ``standalone_thresholds``, ``preferred_impl_style``, ``minimize_bit_width``). A model given as a
    path is lowered once per content and options (:mod:`bsopt.lowering.cache`).
    """
    if options is None:
        options = LoweringOptions(**kwargs)
    elif kwargs:
        raise TypeError("pass either options or keyword arguments, not both")
    if isinstance(model, (str, Path)):
        from bsopt.lowering.cache import cached

        path = model
        if options.keep_parameters:
            return cached(path, "graph", options, lambda: _lower(path, options, str(path)))
        return cached(path, "graph", options, lambda: _variant(path, options))
    return _lower(model, options, where or "model")


def walk_options(options: LoweringOptions) -> LoweringOptions:
    """The options the walk and the target-independent passes read; the others (part, backend
    preferences, bit-width minimisation) only specialise their result."""
    return LoweringOptions(finn_version=options.finn_version, standalone_thresholds=options.standalone_thresholds,
                           round_thresholds=options.round_thresholds)


def _variant(path, options: LoweringOptions, loaded=None) -> DataflowGraph:
    """A model file lowered for ``options`` from its generic graph (cached once for every part,
    backend preference and minimisation choice: a second variant of BERT-base takes a fraction of a
    second instead of a whole lowering). ``loaded``: the file already read (an OnnxGraph)."""
    import copy

    from bsopt.lowering.cache import cached
    from bsopt.lowering.passes import specialize

    generic = cached(path, "generic", walk_options(options),
                     lambda: _lower(path if loaded is None else loaded, options, str(path), generic=True))
    return specialize(copy.deepcopy(generic), options)


def lower_loaded(path, loaded, options: LoweringOptions) -> DataflowGraph:
    """:func:`lower` of the model file ``path``, already read as ``loaded`` (an OnnxGraph): the
    generic graph is cached for the file as :func:`lower` caches it."""
    if options.keep_parameters:
        return _lower(loaded, options, str(path))
    return _variant(path, options, loaded)


def _lower(model, options: LoweringOptions, where: str, *, generic: bool = False) -> DataflowGraph:
    from bsopt.intake.graph import OnnxGraph
    from bsopt.intake.load import load_graph, prepare
    from bsopt.lowering import passes
    from bsopt.lowering.builder import Builder

    if isinstance(model, (str, Path)):
        model = load_graph(model)
    elif not isinstance(model, OnnxGraph):  # a qonnx ModelWrapper or an onnx ModelProto
        model = prepare(getattr(model, "model", model), where=where)
    builder = Builder(model, options, where=where).run()
    graph = passes.generic(builder.layers, builder.graph_inputs, builder.graph_outputs, options, builder.warnings)
    return graph if generic else passes.specialize(graph, options)


def standalone_thresholds(config_flags: dict | None, finn_config: dict | None) -> bool:
    """FINN's ``standalone_thresholds`` build option as a blueprint sets it (finn_config wins over
    Brainsmith's config_flags, as in the FINN build config bsopt writes)."""
    for source in (finn_config or {}, config_flags or {}):
        if "standalone_thresholds" in source:
            return bool(source["standalone_thresholds"])
    return False


def bit_width_passes(config_flags: dict | None, finn_config: dict | None,
                     steps: list[str] | None) -> tuple[bool, bool]:
    """(minimize_bit_width, round_thresholds) of a FINN flow: ``step_minimize_bit_width`` minimises
    weight and accumulator widths when FINN's ``minimize_bit_width`` option is on (default; finn_config
    wins over config_flags), and rounds thresholds either way; a flow whose steps leave the step out
    does neither."""
    from bsopt.blueprint.registry import finn_step_name

    if steps and "step_minimize_bit_width" not in {finn_step_name(s) for s in steps}:
        return False, False
    for source in (finn_config or {}, config_flags or {}):
        if "minimize_bit_width" in source:
            return bool(source["minimize_bit_width"]), True
    return True, True


__all__ = ["bit_width_passes", "standalone_thresholds", "lower", "lower_loaded", "LoweringOptions", "SUPPORTED_OPS", "DataflowGraph"]
