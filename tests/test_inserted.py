"""The nodes a real FINN build inserts (InsertDWC + InsertFIFO), against FINN's own res_estimation.

Reference: tests/data/finn_inserted/ (see its README): for TFC, CNV, DS-CNN, an MLP and a BERT
encoder at several foldings, real FINN (dev 73ba5ed) ran its estimate-only flow, then InsertDWC,
InsertFIFO(create_shallow_fifos=True), SpecializeLayers and GiveUniqueNodeNames, and recorded every
node's estimate. bsopt's network estimate with ``insert="dwc_fifo"`` must report the same nodes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bsopt.estimate.network import estimate_network
from bsopt.lowering import LoweringOptions, lower

pytest.importorskip("brevitas")

from bsopt.models import export_model  # noqa: E402

DATA = Path(__file__).parent / "data" / "finn_inserted"
CASES = sorted(p.stem for p in DATA.glob("*.json") if p.stem != "index")
CHAINS = [c for c in CASES if not c.startswith("bert")]
RESOURCES = ("LUT", "BRAM_18K", "URAM", "DSP")
#: op types whose LUT bsopt deliberately takes from Brainsmith's formulas, not FINN's (docs/cost_models)
OWN_FORMULAS = ("ElementwiseAdd", "ElementwiseSub", "ElementwiseMul")


def _case(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def graph_of(tmp_path_factory):
    root = tmp_path_factory.mktemp("inserted_models")
    graphs: dict[tuple, object] = {}

    def make(case: dict):
        ref = case["model"].removeprefix("zoo:")
        name, _, query = ref.partition("?")
        opts = dict(kv.split("=") for kv in query.split("&") if kv)
        w, a = int(opts.pop("w")), int(opts.pop("a"))
        key = (ref, case["part"], json.dumps(case.get("specialize_config"), sort_keys=True))
        if key not in graphs:
            path = root / f"{name}_{w}_{a}_{'_'.join(f'{k}{v}' for k, v in sorted(opts.items()))}.onnx"
            if not path.exists():
                export_model(name, w, a, path, seed=0, **{k: int(v) for k, v in opts.items()})
            pref = {k: v["preferred_impl_style"] for k, v in (case.get("specialize_config") or {}).items()
                    if k != "Defaults"}
            graphs[key] = lower(str(path), LoweringOptions(fpgapart=case["part"], preferred_impl_style=pref))
        return graphs[key]
    return make


def _estimate(graph_of, case: dict, insert: str):
    return estimate_network(graph_of(case), case["folding_config"], part=case["part"], clock_ns=case["clock_ns"],
                            insert=insert)


def _num(v) -> float:
    return float(v)


@pytest.mark.parametrize("name", CHAINS)
def test_every_node_equals_finns_after_insertion(graph_of, name):
    """Chain-shaped networks: the same nodes, in FINN's order, with FINN's names and estimates."""
    case = _case(name)
    est = _estimate(graph_of, case, "dwc_fifo")
    assert list(est.layer_resources) == [n["name"] for n in case["after"]]
    for node in case["after"]:
        mine = est.layer_resources[node["name"]]
        assert {k: _num(mine[k]) for k in RESOURCES} == {k: _num(node["estimate"][k]) for k in RESOURCES}, node["name"]
    assert {k: _num(est.total[k]) for k in RESOURCES} == {k: _num(case["total"][k]) for k in RESOURCES}
    # the estimate without inserted nodes is FINN's own report of the folded model
    plain = estimate_network(graph_of(case), case["folding_config"], part=case["part"], clock_ns=case["clock_ns"])
    assert {k: _num(plain.total[k]) for k in RESOURCES} == {k: _num(case["finn_report_total_before"][k])
                                                             for k in RESOURCES}


def _inserted(nodes):
    out = []
    for op, attrs, est in nodes:
        if op.startswith("StreamingDataWidthConverter"):
            key = (op, attrs["inWidth"], attrs["outWidth"])
        elif op.startswith("StreamingFIFO"):
            key = (op, attrs["depth"], attrs["dataType"], attrs["folded_shape"][-1])
        else:
            continue
        out.append(key + tuple(_num(est[k]) for k in RESOURCES))
    return sorted(out)


@pytest.mark.parametrize("name", [c for c in CASES if c.startswith("bert")])
def test_a_branching_encoder_gets_finns_converters_and_fifos(graph_of, name):
    """BERT (branches at every residual and attention head): the same converters and FIFOs with the
    same estimates, and the same network total apart from the elementwise LUTs bsopt takes from
    Brainsmith's formulas. (On branching graphs qonnx's re-sorting may number nodes of one level
    differently.)"""
    case = _case(name)
    est = _estimate(graph_of, case, "dwc_fifo")
    from bsopt.estimate.inserted import with_inserted
    from bsopt.estimate.network import configured_graph

    g = configured_graph(graph_of(case), case["folding_config"])
    nodes = [n for n in with_inserted(g.layers, "latest") if n.inserted]
    mine = _inserted([(n.op_type, n.attrs, est.layer_resources[n.name]) for n in nodes])
    theirs = _inserted([(n["op_type"], n["attrs"], n["estimate"]) for n in case["after"]])
    assert mine == theirs
    assert len(est.layer_resources) == len(case["after"])

    def total(nodes, key):
        return sum(_num(r[key]) for name, r in nodes if not (key == "LUT" and name.startswith(OWN_FORMULAS)))

    for key in RESOURCES:
        assert total(est.layer_resources.items(), key) == total([(n["name"], n["estimate"]) for n in case["after"]], key)


def test_converters_only(graph_of):
    """insert='dwc': FINN's data-width converters without the FIFOs."""
    case = _case("cnv_w1a1_pw")
    est = _estimate(graph_of, case, "dwc")
    dwcs = [n for n in case["after"] if n["op_type"].startswith("StreamingDataWidthConverter")]
    mine = {k: v for k, v in est.layer_resources.items() if k.startswith("StreamingDataWidthConverter")}
    assert sorted(mine) == sorted(n["name"] for n in dwcs)
    assert not [k for k in est.layer_resources if k.startswith("StreamingFIFO")]
    extra = sum(_num(n["estimate"]["LUT"]) for n in dwcs)
    assert _num(est.total["LUT"]) == _num(case["finn_report_total_before"]["LUT"]) + extra


@pytest.mark.parametrize("name", CASES)
def test_stream_shapes_are_finns(graph_of, name):
    """Every layer's streams (elements per transfer, datatype) are FINN's folded shapes' last axes and
    datatypes (parallel_window sliding windows send k*k*SIMD, VVAUs take SIMD*PE, …)."""
    from bsopt.estimate.base import REGISTRY
    from bsopt.estimate.network import configured_graph

    case = _case(name)
    ref = {n["name"]: n for n in case["before"]}
    g = configured_graph(graph_of(case), case["folding_config"])
    checked = 0
    for layer in g.layers:
        node = ref[layer.name]
        model = REGISTRY[layer.op_type]
        ins, outs = model.streams({**model.defaults("latest"), **layer.attrs})
        for i, shape in enumerate(node["folded_input_shapes"]):
            if shape is None or i >= len(ins) or ins[i] is None:
                continue
            assert (ins[i][0], ins[i][1]) == (shape[-1], node["input_datatypes"][i]), (layer.name, i)
            checked += 1
        for i, shape in enumerate(node["folded_output_shapes"][:1]):
            assert (outs[i][0], outs[i][1]) == (shape[-1], node["output_datatypes"][i]), layer.name
    assert checked >= len(g.layers)
