"""bsopt's light IR of FINN dataflow layers.

A :class:`DataflowGraph` is the ordered list of hardware layers FINN would build for a model:
``MVAU_hls_0``, ``Thresholding_rtl_0``, ``ConvolutionInputGenerator_rtl_0`` … with FINN's own
attribute names and values (``MW``, ``MH``, ``PE``, ``SIMD``, ``inputDataType`` …), normal shapes in
FINN's channels-last layout, and the tensors that connect them. Layers that hold parameters keep
them (integer weights as an ``MW x MH`` matrix, thresholds as a ``channels x steps`` matrix) because
FINN's bit-width minimisation, and thus its estimates, depend on their values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Attributes that set a layer's folding (parallelism) or implementation choices rather than
#: describing the computation. Lowering leaves them at FINN's defaults; the DesignSpace varies them.
FOLDING_ATTRS = frozenset(
    {
        "PE",
        "SIMD",
        "ram_style",
        "ram_style_thresholds",
        "resType",
        "mem_mode",
        "runtime_writeable_weights",
        "parallel_window",
        "depth_trigger_uram",
        "depth_trigger_bram",
        "deep_pipeline",
    }
)


@dataclass
class Layer:
    """One dataflow layer (one FINN hardware node)."""

    name: str
    op_type: str  # FINN's specialised op type, e.g. "MVAU_hls"
    attrs: dict[str, Any]
    in_shapes: list[tuple[int, ...]]
    out_shape: tuple[int, ...]
    inputs: list[str]
    output: str
    source_nodes: list[str] = field(default_factory=list)
    weights: np.ndarray | None = field(default=None, repr=False)
    thresholds: np.ndarray | None = field(default=None, repr=False)
    #: thresholds as the hardware holds them, after FINN's final rounding and clipping
    hw_thresholds: np.ndarray | None = field(default=None, repr=False)
    #: datatypes as converted, before FINN's bit-width minimisation (which depends on the
    #: folding attributes ``runtime_writeable_weights`` and ``mem_mode``, so it may be redone)
    base_attrs: dict[str, Any] = field(default_factory=dict, repr=False)
    #: the constant operand of an elementwise layer with a constant (e.g. the attention scale)
    params: np.ndarray | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """FINN's generic op type, without the backend suffix (``MVAU`` for ``MVAU_hls``)."""
        base, _, backend = self.op_type.rpartition("_")
        return base if backend in ("hls", "rtl") else self.op_type

    @property
    def backend(self) -> str | None:
        suffix = self.op_type.rpartition("_")[2]
        return suffix if suffix in ("hls", "rtl") else None

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.in_shapes[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: name, op_type, attrs, shapes, connections."""
        return {
            "name": self.name,
            "op_type": self.op_type,
            "kind": self.kind,
            "backend": self.backend,
            "attrs": _jsonable(self.attrs),
            "normal_input_shapes": [list(s) for s in self.in_shapes],
            "normal_output_shape": list(self.out_shape),
            "inputs": list(self.inputs),
            "output": self.output,
            "source_nodes": list(self.source_nodes),
        }


@dataclass
class DataflowGraph:
    """The ordered (topologically sorted) dataflow layers of a model."""

    layers: list[Layer]
    inputs: list[str]
    outputs: list[str]
    finn_version: str = "latest"
    fpgapart: str = ""
    warnings: list[str] = field(default_factory=list)
    #: memoised bit-width minimisations of configured copies (see bsopt.estimate.network)
    minimize_cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name_or_index: str | int) -> Layer:
        if isinstance(name_or_index, int):
            return self.layers[name_or_index]
        for layer in self.layers:
            if layer.name == name_or_index:
                return layer
        raise KeyError(name_or_index)

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def producer(self, tensor: str) -> Layer | None:
        for layer in self.layers:
            if layer.output == tensor:
                return layer
        return None

    def consumers(self, tensor: str) -> list[Layer]:
        return [layer for layer in self.layers if tensor in layer.inputs]

    def op_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for layer in self.layers:
            hist[layer.op_type] = hist.get(layer.op_type, 0) + 1
        return hist

    def folding_config(self) -> dict[str, Any]:
        """A FINN folding-config dict holding every layer's current folding attributes."""
        cfg: dict[str, Any] = {"Defaults": {}}
        for layer in self.layers:
            entry = {k: v for k, v in layer.attrs.items() if k in FOLDING_ATTRS}
            if entry:
                cfg[layer.name] = _jsonable(entry)
        return cfg

    def apply_folding_config(self, config: dict[str, Any], *, where: str = "folding config") -> DataflowGraph:
        """Set per-layer attributes from a FINN folding-config dict (``{"Defaults": …, name: {…}}``,
        defaults first, then per layer, as FINN's ApplyConfig). FINN's bit-width minimisation depends
        on some of them: :func:`bsopt.lowering.passes.apply_folding` applies a config and redoes it."""
        from bsopt.errors import InputError
        from bsopt.ir.folding_config import check_folding_config

        check_folding_config(config, where)
        defaults = config.get("Defaults", {}) or {}
        for key, spec in defaults.items():
            value, kinds = (spec if isinstance(spec, list) and len(spec) == 2 else (spec, ["all"]))
            for layer in self.layers:
                if ("all" in kinds or layer.op_type in kinds or layer.kind in kinds) and key in layer.attrs:
                    layer.attrs[key] = value
        names = set(self.names)
        # FINN folds a transpose as one Shuffle node before step_transpose_decomposition splits it:
        # its entry applies to every Outer/InnerShuffle stage that came from it
        stages = self.transpose_stages()
        for name, entry in config.items():
            if name == "Defaults":
                continue
            if name in stages and name not in names:
                for layer in stages[name]:
                    layer.attrs.update(entry)
                continue
            if name not in names:
                raise InputError(
                    f"layer '{name}' is not in the model's dataflow graph",
                    where=where,
                    hint="known layers: " + ", ".join(self.names),
                )
            self[name].attrs.update(entry)
        return self

    def transpose_stages(self) -> dict[str, list[Layer]]:
        """FINN's Shuffle name -> the Outer/InnerShuffle layers its transpose decomposed into, in order."""
        stages: dict[str, list[Layer]] = {}
        for layer in self.layers:
            if "original_node_name" in layer.attrs:
                stages.setdefault(layer.attrs["original_node_name"], []).append(layer)
        return stages

    def to_dict(self) -> dict[str, Any]:
        return {
            "finn_version": self.finn_version,
            "fpgapart": self.fpgapart,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "layers": [layer.to_dict() for layer in self.layers],
            "warnings": list(self.warnings),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
