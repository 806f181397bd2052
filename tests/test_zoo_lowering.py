"""Zoo models and user modules, exported with Brevitas and lowered: export -> inspect -> layers."""

from __future__ import annotations

import json
import sys

import pytest
from finn_reference import NETWORKS, NON_SEMANTIC, load_json, network_dirs

from bsopt.cli import main
from bsopt.ir.layers import FOLDING_ATTRS
from bsopt.lowering import lower

pytest.importorskip("brevitas")
pytestmark = pytest.mark.models

from bsopt.models import export_model  # noqa: E402

HAVE_REF = bool(network_dirs())


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo_lower")
    cache = {}

    def get(name, w, a):
        if (name, w, a) not in cache:
            cache[(name, w, a)] = export_model(name, w, a, root / f"{name}_w{w}a{a}.onnx")
        return cache[(name, w, a)]

    return get


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
@pytest.mark.parametrize("name, w, a, ref", [("tfc", 2, 2, "tfc_w2a2"), ("cnv", 1, 1, "cnv_w1a1")])
def test_zoo_export_lowers_to_finns_layers(zoo, name, w, a, ref):
    graph = lower(zoo(name, w, a))
    nodes = load_json(NETWORKS / ref / "final_node_attrs.json")
    assert graph.names == [n["name"] for n in nodes]
    for node in nodes:
        layer = graph[node["name"]]
        assert layer.in_shape == tuple(node["normal_input_shape"])
        for key, value in node["attrs"].items():
            if key not in NON_SEMANTIC and key not in FOLDING_ATTRS:
                assert layer.attrs[key] == value, (layer.name, key)


@pytest.mark.parametrize("w, a", [(1, 1), (2, 2), (4, 4), (8, 8)])
def test_tfc_datatypes_follow_the_bit_widths(zoo, w, a):
    graph = lower(zoo("tfc", w, a))
    mvaus = [layer for layer in graph if layer.kind == "MVAU"]
    assert [(m.attrs["MW"], m.attrs["MH"]) for m in mvaus] == [(784, 64), (64, 64), (64, 64), (64, 10)]
    if w == a == 1:
        assert all(m.attrs["binaryXnorMode"] == 1 for m in mvaus)
        assert {m.attrs["inputDataType"] for m in mvaus} == {"BINARY"}
    else:
        assert {m.attrs["inputDataType"] for m in mvaus} == {f"INT{a}"}
        # narrow-range INTw weights use the full [-(2^(w-1)-1), 2^(w-1)-1] range -> INTw after minimisation
        assert {m.attrs["weightDataType"] for m in mvaus} == {f"INT{w}"}
        assert [m.attrs["outputDataType"] for m in mvaus[:3]] == [f"INT{a}"] * 3
        assert all(m.attrs["ActVal"] == -(2 ** (a - 1)) + 1 for m in mvaus[:3])
    assert mvaus[-1].attrs["noActivation"] == 1
    assert graph[-1].op_type == "LabelSelect_hls"
    # 4-bit and wider signed operands with no activation: FINN picks the RTL MVAU for the last layer
    assert mvaus[-1].backend == ("rtl" if w >= 4 and a >= 4 else "hls")


def test_dscnn_lowers_depthwise_convolutions_to_vvau(zoo):
    graph = lower(zoo("dscnn", 4, 4))
    hist = graph.op_histogram()
    assert hist["VVAU_hls"] == 4 and hist["FMPadding_rtl"] == 1 and hist["Pool_hls"] == 3
    for vvau in (layer for layer in graph if layer.kind == "VVAU"):
        swg = graph.producer(vvau.inputs[0])
        assert swg.kind == "ConvolutionInputGenerator" and swg.attrs["depthwise"] == 1
        assert vvau.attrs["Kernel"] == [3, 3]
        assert vvau.attrs["Channels"] == swg.attrs["IFMChannels"]
        assert swg.out_shape[-1] == 9 * vvau.attrs["Channels"]
        assert vvau.weights.shape == (9, vvau.attrs["Channels"])
    pad = graph["FMPadding_rtl_0"]
    assert pad.attrs["Padding"] == [1, 1, 1, 1] and pad.out_shape == (1, 34, 34, 3)


def test_inspect_totals_match_qonnx_for_every_zoo_model(zoo, capsys):
    for name, (w, a) in [("tfc", (1, 1)), ("mlp", (2, 2)), ("cnv", (2, 2)), ("dscnn", (1, 1))]:
        code = main(["model", "inspect", str(zoo(name, w, a)), "--json"])
        out = capsys.readouterr().out
        assert code == 0
        info = json.loads(out)
        assert info["totals"]["dataflow_macs"] == info["totals"]["total_macs"] > 0, name
        assert all("name" in layer and "op_type" in layer for layer in info["layers"])


USER_RESNET = '''
import torch
from torch import nn
import brevitas.nn as qnn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)
        self.c1 = qnn.QuantConv2d(3, 8, 3, padding=1, weight_bit_width=4)
        self.bn1 = nn.BatchNorm2d(8)
        self.a1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.c2 = qnn.QuantConv2d(8, 8, 3, padding=1, weight_bit_width=4)
        self.bn2 = nn.BatchNorm2d(8)
        self.a2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(8, 10, bias=False, weight_bit_width=4)

    def forward(self, x):
        x = self.a1(self.bn1(self.c1(self.inp(x))))
        y = self.a2(self.bn2(self.c2(x)))
        z = self.a2(x + y)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(z, 1), 1))


def make():
    torch.manual_seed(0)
    return Block()
'''


def test_user_module_with_a_residual_block(tmp_path, monkeypatch, capsys):
    (tmp_path / "bsopt_user_resnet.py").write_text(USER_RESNET)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "bsopt_user_resnet", raising=False)
    out = tmp_path / "res.onnx"
    assert main(["model", "export", "--module", "bsopt_user_resnet:make", "--input-shape", "1,3,16,16",
                 "--out", str(out)]) == 0
    graph = lower(out)
    kinds = [layer.op_type for layer in graph]
    assert kinds.count("DuplicateStreams_hls") == 1 and "ElementwiseAdd_hls" in kinds
    dup = graph["DuplicateStreams_hls_0"]
    readers = graph.consumers(dup.output)
    assert dup.attrs["NumOutputStreams"] == len(readers) == 2
    add = graph["ElementwiseAdd_hls_0"]
    assert add.attrs["lhs_dtype"] == add.attrs["rhs_dtype"] == "UINT4" and add.attrs["out_dtype"] == "UINT5"
    assert "GlobalAccPool_hls" in kinds
    # the float input is thresholded directly (FINN dev accepts float thresholds)
    assert graph[0].op_type == "Thresholding_rtl" and graph[0].attrs["inputDataType"] == "FLOAT32"
    # FINN 0.10.1 cannot threshold a float input: a clear error
    from bsopt.errors import ModelError

    with pytest.raises(ModelError, match="needs integer"):
        lower(out, finn_version="0.10.1")
