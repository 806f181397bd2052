"""Lowering QONNX -> dataflow layers must reproduce FINN's own builds of the reference networks."""

from __future__ import annotations

import gzip

import numpy as np
import onnx
import pytest
from finn_reference import (
    NETWORKS,
    NON_SEMANTIC,
    load_json,
    lowering_kwargs,
    network_dirs,
    prepost_model,
    require_reference,
)
from onnx import numpy_helper

from bsopt.ir.layers import FOLDING_ATTRS
from bsopt.lowering import lower
from bsopt.lowering.passes import apply_folding

NETS = network_dirs()
pytestmark = pytest.mark.skipif(not NETS, reason="FINN reference data (../shared/finn_reference) not found")


def _non_folding(cfg: dict) -> dict:
    """A folding config without PE/SIMD: the attributes that change bit-width minimisation stay."""
    return {k: ({a: v for a, v in e.items() if a not in ("PE", "SIMD")} if k != "Defaults" else e)
            for k, e in cfg.items()}


_cache: dict[str, object] = {}


def lowered(name: str):
    if name not in _cache:
        require_reference()
        graph = lower(prepost_model(name), keep_parameters=True, **lowering_kwargs(name))
        cfg = NETWORKS / name / "folding_config.json"
        if cfg.exists():
            apply_folding(graph, _non_folding(load_json(cfg)), where=str(cfg))
        _cache[name] = graph
    return _cache[name]


@pytest.mark.parametrize("name", NETS)
def test_layers_types_order_and_names_match_finn(name):
    ref = load_json(NETWORKS / name / "final_node_attrs.json")
    graph = lowered(name)
    assert graph.names == [n["name"] for n in ref]
    assert [layer.op_type for layer in graph] == [n["op_type"] for n in ref]


@pytest.mark.parametrize("name", NETS)
def test_shapes_datatypes_and_attributes_match_finn(name):
    ref = load_json(NETWORKS / name / "final_node_attrs.json")
    graph = lowered(name)
    mismatches = []
    for node in ref:
        layer = graph[node["name"]]
        if tuple(node["normal_input_shape"]) != layer.in_shape:
            mismatches.append((layer.name, "input shape", node["normal_input_shape"], layer.in_shape))
        if tuple(node["normal_output_shape"]) != layer.out_shape:
            mismatches.append((layer.name, "output shape", node["normal_output_shape"], layer.out_shape))
        for key, value in node["attrs"].items():
            if key in NON_SEMANTIC or key in FOLDING_ATTRS:
                continue
            if layer.attrs.get(key, "<unset>") != value:
                mismatches.append((layer.name, key, value, layer.attrs.get(key, "<unset>")))
        for key in layer.attrs:
            if key not in node["attrs"] and key not in FOLDING_ATTRS:
                mismatches.append((layer.name, "extra attribute", key, layer.attrs[key]))
    assert not mismatches


@pytest.mark.parametrize("name", NETS)
def test_weights_and_thresholds_equal_finns_final_model(name):
    graph = lowered(name)
    model = onnx.load_model_from_string(gzip.decompress((NETWORKS / name / "final_model.onnx.gz").read_bytes()))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    checked = 0
    for node in model.graph.node:
        layer = graph[node.name]
        if layer.kind in ("MVAU", "VVAU"):
            np.testing.assert_array_equal(inits[node.input[1]], layer.weights, err_msg=node.name)
            checked += 1
        thr_input = node.input[1] if layer.kind == "Thresholding" else (node.input[2] if len(node.input) > 2 else None)
        if thr_input:
            ref = inits[thr_input]
            np.testing.assert_array_equal(np.broadcast_to(ref, layer.hw_thresholds.shape), layer.hw_thresholds,
                                          err_msg=node.name)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("name", [n for n in NETS if (NETWORKS / n / "final_hw_config.json").exists()])
def test_folding_config_template_names_every_configurable_layer(name):
    ref = load_json(NETWORKS / name / "final_hw_config.json")
    cfg = lowered(name).folding_config()
    assert set(cfg) - {"Defaults"} <= set(ref) - {"Defaults"}
    for layer, entry in cfg.items():
        if layer == "Defaults":
            continue
        for key in ("PE", "SIMD"):
            if key in ref[layer]:
                assert key in entry, (layer, key)


def _minimising_variants(graph) -> list[dict]:
    """Folding configs under which FINN minimises bit widths differently: as lowered, runtime-writeable
    weights and thresholds, external weights (the accumulator's worst case of the weight type)."""
    params = [layer for layer in graph.layers if layer.weights is not None or layer.thresholds is not None]
    mv = [layer for layer in params if layer.kind in ("MVAU", "VVAU")]
    return [{}, {layer.name: {"runtime_writeable_weights": 1} for layer in params},
            {layer.name: {"mem_mode": "external"} for layer in mv},
            {layer.name: {"runtime_writeable_weights": 1} for layer in params[::2]}]


@pytest.mark.parametrize("name", NETS)
def test_summarised_parameters_give_what_the_matrices_give(name):
    """The IR keeps per-column summaries of weights and the extremes of thresholds, not the matrices:
    the datatypes FINN's minimisation derives, per-layer figures and the network estimate are those of
    the matrices, under every attribute that changes the minimisation."""
    from bsopt.estimate.network import configured_graph, estimate_network
    from bsopt.ir.params import ThresholdSummary, WeightSummary
    from bsopt.lowering.info import layer_costs

    require_reference()
    kwargs = lowering_kwargs(name)
    full = lower(prepost_model(name), keep_parameters=True, **kwargs)
    small = lower(prepost_model(name), **kwargs)
    assert any(isinstance(layer.weights, WeightSummary) for layer in small.layers)
    assert all(not isinstance(layer.weights, np.ndarray) and not isinstance(layer.thresholds, np.ndarray)
               for layer in small.layers)
    assert any(isinstance(layer.thresholds, ThresholdSummary) for layer in small.layers)
    part = kwargs.get("fpgapart", "xc7z020clg400-1")
    for folding in _minimising_variants(full):
        a, b = configured_graph(full, folding or None), configured_graph(small, folding or None)
        for la, lb in zip(a.layers, b.layers, strict=True):
            assert la.attrs == lb.attrs, (la.name, folding and next(iter(folding.values())))
            assert layer_costs(la) == layer_costs(lb), la.name
        ea = estimate_network(full, folding or None, part=part, finn_version=full.finn_version)
        eb = estimate_network(small, folding or None, part=part, finn_version=small.finn_version)
        assert ea.total == eb.total
