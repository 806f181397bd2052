"""BERT-style encoders end to end: export -> inspect -> lower -> count -> study, and the transformer
kernels' estimates against values computed independently from FINN's and Brainsmith's formulas.

Expected values come from three independent sources:
* hand counts of the encoder's structure (layers per encoder layer, divisors of the folded dims);
* closed formulas of the kernels, written out here (not imported from bsopt);
* numbers produced by running FINN dev 73ba5ed's own estimate code on the same nodes (OuterShuffle's
  cycle simulation, the dynamic MVAU examples), noted where they are used.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from bsopt.errors import InputError
from bsopt.estimate.base import EstimateError, estimate_node

pytest.importorskip("brevitas")
pytestmark = [pytest.mark.models, pytest.mark.usefixtures("model_cache")]

from bsopt.models import ZOO, build_model, export_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BRAINSMITH = Path(__file__).resolve().parent / "data" / "brainsmith"
ZU7 = "xczu7ev-ffvc1156-2-e"
V80 = "xcv80-lsva4737-2MHP-e-S"


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """``bert(w, a, **options)`` -> path of the exported encoder, once per module."""
    root = tmp_path_factory.mktemp("bert")
    cache = {}

    def get(w=8, a=8, **options):
        key = (w, a, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = export_model("bert", w, a, root / f"bert_{len(cache)}.onnx", **options)
        return cache[key]

    return get


def _lower(path, **kwargs):
    from bsopt.lowering import lower

    return lower(path, fpgapart=kwargs.pop("fpgapart", ZU7), **kwargs)


# ------------------------------------------------------------------------------------ export
@pytest.mark.parametrize("w, a, options", [(8, 8, {}), (4, 8, {"layers": 2, "seq": 16}),
                                           (2, 4, {"hidden": 64, "heads": 2, "ff": 128})])
def test_export_computes_the_torch_model_exactly(bert, w, a, options):
    import torch
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    path = bert(w, a, **options)
    onnx.checker.check_model(str(path))
    model = ModelWrapper(str(path))
    shape = tuple(model.get_tensor_shape("global_in"))
    assert shape == ZOO["bert"].shape_for(options)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    out = execute_onnx(model, {"global_in": x.numpy()})[model.graph.output[0].name]
    with torch.no_grad():
        expected = build_model("bert", w, a, **options)(x).numpy()
    # both on the output quantiser's grid; onnxruntime and torch may round a float LayerNorm result
    # that lies on a rounding tie differently: at most one step, for a handful of elements
    step = 4 / (2 ** (a - 1) - 1)
    assert np.allclose(np.round(out / step) * step, out, atol=1e-5)
    diff = np.abs(out - expected)
    assert diff.max() <= step * 1.001
    assert (diff > 1e-5).mean() < 0.005


@pytest.mark.parametrize("layers", [1, 2])
def test_exported_graph_has_the_encoder_structure(bert, layers):
    model = onnx.load(str(bert(8, 8, layers=layers)))
    ops = [n.op_type for n in model.graph.node]
    # per layer: Q, K, V, output, FF1, FF2 (weights) + QK^T, attn x V (dynamic)
    assert ops.count("MatMul") == 8 * layers
    assert ops.count("LayerNormalization") == 2 * layers  # opset 17 keeps it whole
    assert ops.count("Softmax") == layers
    assert ops.count("Transpose") == 4 * layers  # q, k, v split into heads; context merged back
    # 6 weight quantisers and 10 activation quantisers per layer, plus the input quantiser
    assert ops.count("Quant") == 16 * layers + 1
    assert {imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")} == {17}


def test_cli_exports_with_architecture_options(tmp_path, capsys):
    from qonnx.core.modelwrapper import ModelWrapper

    from bsopt.cli import main

    out = tmp_path / "b.onnx"
    assert main(["model", "export", "bert", "-o", str(out), "--set", "layers=2", "--set", "seq=16"]) == 0
    model = ModelWrapper(str(out))
    assert model.get_tensor_shape("global_in") == [1, 16, 128]
    assert [n.op_type for n in model.graph.node].count("LayerNormalization") == 4
    assert "bert w8a8" in capsys.readouterr().out  # the model's default bits
    assert main(["model", "export", "bert", "-o", str(out), "--set", "depth=2"]) == 2
    assert "options of bert: layers, hidden, heads, seq, ff" in capsys.readouterr().err


def test_bad_zoo_requests_are_clear(tmp_path):
    with pytest.raises(InputError, match="heads"):
        build_model("bert", 8, 8, hidden=128, heads=3)
    with pytest.raises(InputError, match="unknown option 'depth'"):
        build_model("bert", 8, 8, depth=2)
    with pytest.raises(InputError, match="allowed values: 2, 4, 8"):
        build_model("bert", 1, 8)
    with pytest.raises(InputError, match="pre/post-processing"):
        export_model("bert", 8, 8, tmp_path / "x.onnx", prepost=True)
    with pytest.raises(InputError, match="tfc has no architecture options"):
        build_model("tfc", 2, 2, layers=2)


@pytest.mark.parametrize("w, options", [(8, {}), (4, {"layers": 2, "hidden": 64, "heads": 2, "seq": 16, "ff": 256})])
def test_inspect_counts_macs_and_weights(bert, w, options):
    from bsopt.lowering.info import inspect_model

    o = ZOO["bert"].resolve_options(options)
    L, h, heads, s, ff = o["layers"], o["hidden"], o["heads"], o["seq"], o["ff"]
    weights = L * (4 * h * h + 2 * h * ff)  # Q, K, V, output projections and the feed-forward pair
    attention = L * 2 * heads * s * s * (h // heads)  # QK^T and attn x V per head
    info = inspect_model(bert(w, 8, **options))
    assert info.totals["dataflow_params"] == weights  # the attention products have no parameters
    assert info.totals["dataflow_param_bits"] == weights * w
    assert info.totals["dataflow_macs"] == s * weights + attention == info.totals["total_macs"]


# ------------------------------------------------------------------------------------ lowering
def _expected_histogram(layers: int, standalone: bool) -> dict[str, int]:
    per_layer = {
        "MVAU": 8,  # 6 weight MatMuls + QK^T + attn x V
        "DuplicateStreams": 2,  # x -> Q, K, V, residual; LN1 output -> FF, residual
        "OuterShuffle": 4,  # q, k, v head split, context merge
        "InnerShuffle": 1,  # K^T: swap of the last two axes
        "ElementwiseMul": 1,  # 1/sqrt(d) * scales before the softmax
        "HWSoftmax": 1,
        "ElementwiseAdd": 2,  # residual adds
        "LayerNorm": 2,
        # quantisers not absorbed: softmax output, context (after the shuffle), two LayerNorm outputs;
        # with standalone thresholds also the six after the weight MatMuls
        "Thresholding": 10 if standalone else 4,
    }
    out = {k: v * layers for k, v in per_layer.items()}
    out["Thresholding"] += 1  # the input quantiser
    return out


@pytest.mark.parametrize("layers, standalone", [(1, False), (2, False), (1, True)])
def test_lowering_emits_brainsmiths_bert_kernels(bert, layers, standalone):
    graph = _lower(bert(8, 8, layers=layers), standalone_thresholds=standalone)
    hist: dict[str, int] = {}
    for layer in graph:
        hist[layer.kind] = hist.get(layer.kind, 0) + 1
    assert hist == _expected_histogram(layers, standalone)
    mvaus = [layer for layer in graph if layer.kind == "MVAU"]
    assert sum(m.attrs["dynamic_input"] for m in mvaus) == 2 * layers
    assert all(m.attrs["noActivation"] == (1 if standalone or m.attrs["dynamic_input"] else 0) for m in mvaus)


def test_attention_products_are_dynamic_mvaus(bert):
    hidden, heads, seq = 96, 3, 24
    d = hidden // heads
    graph = _lower(bert(8, 8, hidden=hidden, heads=heads, seq=seq, ff=192))
    qk, av = [layer for layer in graph if layer.kind == "MVAU" and layer.attrs["dynamic_input"]]
    # QK^T: the second operand is K^T (d x seq); attn x V: V is (seq x d)
    assert (qk.attrs["MW"], qk.attrs["MH"]) == (d, seq)
    assert (av.attrs["MW"], av.attrs["MH"]) == (seq, d)
    for m in (qk, av):
        assert m.attrs["numInputVectors"] == [1, heads, seq]
        assert m.weights is None and len(m.inputs) == 2
        assert m.backend == "rtl"  # 8-bit signed operands, no thresholds, DSP48E2
    assert (qk.attrs["inputDataType"], qk.attrs["weightDataType"]) == ("INT8", "INT8")
    assert (av.attrs["inputDataType"], av.attrs["weightDataType"]) == ("UINT8", "INT8")  # probabilities

    def acc_bits(lo, hi):  # FINN's worst case over the operand types
        return math.ceil(math.log2(max(-lo, hi + 1))) + 1

    assert qk.attrs["accDataType"] == f"INT{acc_bits(d * -128 * 127, d * 128 * 128)}"
    assert av.attrs["accDataType"] == f"INT{acc_bits(seq * 255 * -128, seq * 255 * 127)}"
    # K reaches QK^T through an outer (head split) and an inner (last two axes) shuffle
    inner = graph.producer(qk.inputs[1])
    assert inner.kind == "InnerShuffle" and inner.attrs["perm"] == [0, 1, 3, 2]
    assert inner.attrs["in_shape"] == [1, heads, seq, d] and (inner.attrs["I"], inner.attrs["J"]) == (seq, d)
    outer = graph.producer(inner.inputs[0])
    assert outer.kind == "OuterShuffle" and outer.attrs["perm"] == [0, 2, 1, 3]
    assert outer.attrs["in_shape"] == [1, seq, hidden] and outer.attrs["transpose_in_shape"] == [1, seq, heads, d]
    assert outer.attrs["loop_coeffs"] == [seq * hidden, d, hidden, 1]


def test_layernorm_normalises_the_integer_residual(bert):
    graph = _lower(bert(8, 8))
    scale = 4 / 127  # the residual branches' quantiser: 8 bits over [-4, 4], narrow range
    for ln in (layer for layer in graph if layer.kind == "LayerNorm"):
        add = graph.producer(ln.inputs[0])
        assert add.kind == "ElementwiseAdd" and add.attrs["out_dtype"] == "INT9"  # INT8 + INT8
        assert ln.attrs["inputDataType"] == "INT9" and ln.attrs["outputDataType"] == "FLOAT32"
        # LN(s*q) = LN(q) with epsilon / s^2
        assert ln.attrs["epsilon"] == pytest.approx(1e-5 / scale**2, rel=1e-6)
        assert ln.backend == "hls"  # FINN's LayerNorm_rtl needs float inputs on Versal


def test_softmax_gets_the_attention_scale_as_an_elementwise_mul(bert):
    graph = _lower(bert(8, 8))
    softmax = next(layer for layer in graph if layer.kind == "HWSoftmax")
    mul = graph.producer(softmax.inputs[0])
    assert mul.kind == "ElementwiseMul" and mul.attrs["rhs_style"] == "const"
    q_scale = k_scale = 4 / 127
    assert mul.params[0] == pytest.approx(q_scale * k_scale / math.sqrt(32))
    assert (mul.attrs["lhs_dtype"], mul.attrs["out_dtype"]) == ("INT21", "FLOAT32")
    assert softmax.attrs["input_data_type"] == "FLOAT32"


# ------------------------------------------------------------------------------------ counting
def _write(tmp_path, text: str, name: str = "bp") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("query, expected", [
    # LayerNorm SIMD | 128 (x2 layers), HWSoftmax SIMD | seq 32, InnerShuffle SIMD | gcd(I=32, J=32)
    ("w=8&a=8", 8 * 8 * 6 * 6),
    # hidden 96 -> 12 divisors (x2); seq 24 -> 8; K^T inner shuffle on (1, 3, 24, 32): gcd(24, 32) = 8 -> 4
    ("w=8&a=8&hidden=96&heads=3&seq=24&ff=192", 12 * 12 * 8 * 4),
])
def test_space_count_matches_hand_count(tmp_path, query, expected):
    from bsopt.space.design_space import load_design_space

    bp = _write(tmp_path, f"""
version: "3.0"
name: bert-count
model: zoo:bert?{query}
hw_compiler:
  kernels: [finn:MVAU, LayerNorm, Softmax, Shuffle]
target: {{board: ZCU104}}
folding:
  kinds:
    LayerNorm: {{SIMD: all}}
    HWSoftmax: {{SIMD: all}}
    InnerShuffle: {{SIMD: all}}
""")
    space = load_design_space(bp)
    assert not space.errors, [str(e) for e in space.errors]
    assert space.get_total_combinations() == expected


def test_zoo_reference_options_are_checked(tmp_path, monkeypatch):
    """In the blueprint and given as --model alike: one located error each, nothing exported."""
    from bsopt.space.design_space import load_design_space

    monkeypatch.setenv("BSOPT_MODEL_CACHE", str(tmp_path / "models"))
    cases = (("bert?w=8&a=8&depth=2", "unknown zoo option 'depth'"), ("bert?w=1&a=8", "bits are one of 2, 4, 8"),
             ("bert?w=8&a=8&heads=3", "not a multiple of heads=3"),
             ("bert?w=8&a=8&layers=abc", "bad value for zoo option layers: 'abc'"),
             ("bert?w=x&a=8", "bad value for zoo option w: 'x'"), ("nope", "unknown zoo model 'nope'"),
             ("bert?layers=2&layers=3", "zoo option 'layers' is given twice"),
             ("bert?layers=\uff12", "bad value for zoo option layers"),  # a full-width digit
             ("bert?LAYERS=2", "did you mean 'layers'?"))
    folding = "folding: {kinds: {MVAU: {PE: all}}}\n"  # the space needs the model's layers
    for k, (ref, fragment) in enumerate(cases):
        bp = _write(tmp_path, f"version: '3.0'\nname: x\nmodel: zoo:{ref}\nhw_compiler: {{kernels: [MVAU]}}\n"
                    + folding, f"bp{k}")
        errors = [str(e) for e in load_design_space(bp).validate()]
        assert any(fragment in e for e in errors), errors
        plain = _write(tmp_path, "version: '3.0'\nname: x\nmodel: zoo:bert\nhw_compiler: {kernels: [MVAU]}\n"
                       + folding, f"p{k}")
        errors = [str(e) for e in load_design_space(plain, f"zoo:{ref}").validate()]
        assert len(errors) == 1 and errors[0].startswith("--model") and fragment in errors[0], errors
    assert not any((tmp_path / "models").glob("*.onnx"))


# ------------------------------------------------------------------------------------ studies
def test_bert_exploration_study_has_a_pareto_set(tmp_path, monkeypatch, capsys):
    from bsopt.cli import main
    from bsopt.study.engine import load_study
    from bsopt.study.results import pareto

    monkeypatch.chdir(tmp_path)
    bp = ROOT / "search_spaces" / "bert_exploration.yaml"
    assert main(["study", "create", "bert", "--blueprint", str(bp), "--n-trials", "12", "--seed", "0",
                 "--quiet"]) == 0
    assert "feasible Pareto set" in capsys.readouterr().out
    ctx = load_study("bert")
    front = pareto(ctx.study)
    assert front, "empty Pareto set"
    # every front design meets the blueprint's device constraints (U250: 1.728 M LUT, 12,288 DSP)
    for row in front:
        assert row["LUT"] <= 0.8 * 4 * 375000


def test_bert_folding_study_with_a_sampler(tmp_path, monkeypatch):
    from bsopt.cli import main
    from bsopt.study.engine import load_study
    from bsopt.study.results import pareto

    monkeypatch.chdir(tmp_path)
    bp = ROOT / "search_spaces" / "bert_folding.yaml"
    assert main(["study", "create", "bertf", "--blueprint", str(bp), "--n-trials", "16", "--seed", "1",
                 "--sampler", "nsga2", "--quiet"]) == 0
    ctx = load_study("bertf")
    assert len(ctx.study.trials) == 16
    assert pareto(ctx.study)


# ------------------------------------------------------------------------------------ Brainsmith blueprints
@pytest.mark.parametrize("name", ["examples/blueprints/bert.yaml", "examples/bert/bert_demo.yaml",
                                  "examples/bert/bert_quicktest.yaml", "brainsmith/blueprints/bert.yaml"])
def test_brainsmiths_bert_blueprints_validate_against_the_zoo_encoder(bert, monkeypatch, name):
    from bsopt.space.design_space import load_design_space

    monkeypatch.setenv("BSMITH_DIR", str(BRAINSMITH))
    space = load_design_space(BRAINSMITH / name, model=bert(8, 8))
    problems = space.validate()
    assert not [p for p in problems if p.severity == "error"], [str(p) for p in problems]
    # the only warnings: the custom steps Brainsmith's example defines in its own custom_steps.py
    unknown = {str(p).split("unknown step '")[1].split("'")[0] for p in problems if p.severity == "warning"}
    assert unknown <= {"remove_head", "remove_tail", "generate_reference_io"}
    cfg = space.config(0)
    assert len(cfg.kernel_selections) == 7
    if "examples" in name:
        assert {"finn:MVAU", "finn:Thresholding", "Shuffle", "ElementwiseBinaryOp"} <= set(cfg.kernel_selections)
        assert "transpose_decomposition" in cfg.build_steps


def test_brainsmith_demo_target_fps_is_met_by_the_estimate(bert, monkeypatch):
    from bsopt.backends.estimate import EstimateBackend
    from bsopt.space.design_space import load_design_space

    monkeypatch.setenv("BSMITH_DIR", str(BRAINSMITH))
    space = load_design_space(BRAINSMITH / "examples/bert/bert_demo.yaml", model=bert(8, 8))
    cfg = space.config(0)
    assert cfg.finn_config["target_fps"] == 3000
    result = EstimateBackend(space.model_path, "latest", space.blueprint.part).build(cfg)
    assert result.status == "SUCCESS", result.error_message
    assert result.values["throughput_fps"] >= 3000  # FINN's SetFolding met the demo's target at 5 ns


# ------------------------------------------------------------------------------------ kernel estimates
def _layernorm_rtl(shape, simd):  # FINN dev rtl/layernorm_rtl.py, written out
    c, n = shape[-1], math.prod(shape)
    return 2 * (c // simd) + 4 * math.ceil(math.log2(simd)) + 31 + 5 + n // simd


@pytest.mark.parametrize("shape, simd, finn_value", [((1, 32, 128), 1, 4388), ((1, 32, 128), 4, 1132),
                                                     ((1, 32, 128), 128, 98), ((1, 128, 768), 8, 12528),
                                                     ((1, 128, 768), 3, 33324)])
def test_layernorm_estimates(shape, simd, finn_value):
    assert _layernorm_rtl(shape, simd) == finn_value  # the formula reproduces FINN's own runs
    a = {"ifm_dim": list(shape), "SIMD": simd, "inputDataType": "INT8", "outputDataType": "FLOAT32"}
    rtl = estimate_node("LayerNorm_rtl", a, V80)
    assert rtl["cycles"] == finn_value
    hls = estimate_node("LayerNorm_hls", a, ZU7)
    assert hls["cycles"] == math.prod(shape) // simd  # Brainsmith's initiation interval
    for est in (rtl, hls):
        assert (est["LUT"], est["BRAM_18K"], est["URAM"], est["DSP"]) == (0, 0, 0, 0)


@pytest.mark.parametrize("shape, simd", [((1, 32, 128), 1), ((1, 32, 128), 4), ((1, 4, 32, 32), 32),
                                         ((1, 12, 128, 128), 16)])
def test_softmax_estimates(shape, simd):
    est = estimate_node("HWSoftmax_hls", {"ifm_dim": list(shape), "SIMD": simd, "input_data_type": "FLOAT32"}, ZU7)
    assert est["cycles"] == math.prod(shape[:-1]) * (shape[-1] // simd)
    assert est["LUT"] == est["BRAM_18K"] == est["DSP"] == 0


@pytest.mark.parametrize("shape, perm, simd, finn_cycles", [
    # FINN dev's OuterShuffle.get_exp_cycles (its HLS pipeline simulation), run with Vivado 2024.2
    ((1, 32, 4, 32), (0, 2, 1, 3), 1, 7076), ((1, 32, 4, 32), (0, 2, 1, 3), 4, 1772),
    ((1, 32, 4, 32), (0, 2, 1, 3), 32, 225), ((1, 128, 12, 64), (0, 2, 1, 3), 1, 187716),
    ((1, 128, 12, 64), (0, 2, 1, 3), 4, 46932), ((1, 128, 12, 64), (0, 2, 1, 3), 32, 5870),
])
def test_outer_shuffle_cycles_match_finns_simulation(shape, perm, simd, finn_cycles):
    out = [shape[p] for p in perm]
    a = {"in_shape": [shape[0], shape[1], shape[2] * shape[3]], "transpose_in_shape": list(shape), "perm": list(perm),
         "out_shape": out, "transpose_out_shape": out, "data_type": "INT8", "SIMD": simd}
    est = estimate_node("OuterShuffle_hls", a, ZU7)
    assert est["cycles"] == finn_cycles
    assert est["LUT"] == est["BRAM_18K"] == 0
    assert finn_cycles >= math.prod(shape) // simd  # never faster than one element per lane and cycle


@pytest.mark.parametrize("in_shape, simd, finn_cycles", [
    # FINN dev's InnerShuffle.get_exp_cycles on these shapes
    ((1, 12, 128, 64), 1, 204800), ((1, 12, 128, 64), 4, 51200), ((1, 12, 128, 64), 32, 6400),
    ((1, 32, 128), 1, 12288), ((1, 32, 128), 4, 3072), ((1, 32, 128), 32, 384),
])
def test_inner_shuffle_cycles(in_shape, simd, finn_cycles):
    n = len(in_shape)
    a = {"in_shape": list(in_shape), "SIMD": simd, "data_type": "INT8", "perm": list(range(n - 2)) + [n - 1, n - 2]}
    est = estimate_node("InnerShuffle_rtl", a, ZU7)
    i, j = in_shape[-2:]
    # two passes over the data (double-buffered pages) plus one page of latency
    assert est["cycles"] == 2 * math.prod(in_shape) // simd + i * j // simd == finn_cycles
    assert est["LUT"] == est["BRAM_18K"] == 0


@pytest.mark.parametrize("op, rhs_shape, rhs_dtype, pe, ram_style, lut, bram", [
    # Brainsmith ElementwiseBinaryOp_hls: LUT = max(wl, wr)*PE (+ PE*wr*ceil(tmem/64) distributed),
    # BRAM = ceil(wr*PE/16)*ceil(tmem/1024) (block), tmem = prod(rhs_shape[:-1])
    ("Add", (1, 32, 128), "INT8", 1, "auto", 8, 0),
    ("Add", (1, 32, 128), "INT8", 8, "auto", 64, 0),
    ("Add", (1, 32, 128), "INT8", 128, "auto", 1024, 0),
    ("Add", (1, 32, 128), "INT8", 8, "distributed", 64 + 8 * 8 * 1, 0),
    ("Add", (1, 32, 128), "INT8", 8, "block", 64, 4),
    ("Add", (1, 32, 128), "UINT2", 8, "distributed", 64 + 8 * 2 * 1, 0),
    ("Add", (1, 32, 128), "UINT2", 1, "block", 8, 1),
    ("Mul", (128,), "INT8", 8, "block", 64, 0),  # per-channel constant: tmem = 1, no memory term
    ("Mul", (1,), "FLOAT32", 1, "auto", 32, 0),  # the attention scale
])
def test_elementwise_estimates(op, rhs_shape, rhs_dtype, pe, ram_style, lut, bram):
    lhs = (1, 32, 128)
    a = {"lhs_shape": list(lhs), "rhs_shape": list(rhs_shape), "out_shape": list(lhs), "lhs_dtype": "INT8",
         "rhs_dtype": rhs_dtype, "out_dtype": "INT9", "PE": pe, "ram_style": ram_style}
    est = estimate_node(f"Elementwise{op}_hls", a, ZU7)
    assert (est["LUT"], est["BRAM_18K"], est["DSP"], est["URAM"]) == (lut, bram, 0, 0)
    assert est["cycles"] == math.prod(lhs) // pe
    rtl = estimate_node(f"Elementwise{op}_rtl", a, V80)
    assert rtl["cycles"] == est["cycles"] and rtl["LUT"] == 0  # FINN estimates no resources


@pytest.mark.parametrize("backend, pe, simd, part, cycles, bram, lut, dsp", [
    # QK^T with 4 heads, seq 32, head dim 32, INT8 x INT8, acc INT21: numbers from FINN dev's own
    # node_res_estimation / get_exp_cycles on the converted node
    ("rtl", 1, 1, ZU7, 131072, 1, 0, 1), ("rtl", 1, 1, V80, 131072, 1, 0, 1),
    ("rtl", 4, 4, ZU7, 8192, 4, 0, 4), ("rtl", 4, 4, V80, 8192, 4, 0, 8),
    ("rtl", 32, 32, ZU7, 128, 228, 0, 256), ("rtl", 32, 32, V80, 128, 228, 0, 352),
    ("hls", 1, 1, ZU7, 131072, 1, 428, 0), ("hls", 4, 4, ZU7, 8192, 4, 2293, 0),
    ("hls", 32, 32, ZU7, 128, 228, 126632, 0),
])
def test_dynamic_mvau_estimates(backend, pe, simd, part, cycles, bram, lut, dsp):
    a = {"MW": 32, "MH": 32, "PE": pe, "SIMD": simd, "inputDataType": "INT8", "weightDataType": "INT8",
         "outputDataType": "INT21", "accDataType": "INT21", "noActivation": 1, "ActVal": 0, "binaryXnorMode": 0,
         "numInputVectors": [1, 4, 32], "dynamic_input": 1, "mem_mode": "internal_decoupled", "ram_style": "auto"}
    if backend == "hls":
        a["resType"] = "lut"
    est = estimate_node(f"MVAU_{backend}", a, part)
    assert (est["cycles"], est["BRAM_18K"], int(est["LUT"]), est["DSP"]) == (cycles, bram, lut, dsp)
    assert cycles == (32 // pe) * (32 // simd) * 128  # (MH/PE) * (MW/SIMD) * vectors


@pytest.mark.parametrize("op, attrs", [
    ("LayerNorm_hls", {"ifm_dim": [1, 32, 128], "SIMD": 3}),
    ("HWSoftmax_hls", {"ifm_dim": [1, 32, 128], "SIMD": 5, "input_data_type": "FLOAT32"}),
    ("OuterShuffle_hls", {"in_shape": [1, 32, 128], "transpose_in_shape": [1, 32, 4, 32], "perm": [0, 2, 1, 3],
                          "SIMD": 64, "data_type": "INT8"}),
    ("InnerShuffle_rtl", {"in_shape": [1, 4, 32, 32], "SIMD": 3, "data_type": "INT8"}),
    ("ElementwiseAdd_hls", {"lhs_shape": [1, 32, 128], "rhs_shape": [1, 32, 128], "out_shape": [1, 32, 128],
                            "lhs_dtype": "INT8", "rhs_dtype": "INT8", "PE": 3}),
])
def test_illegal_folding_is_rejected(op, attrs):
    with pytest.raises(EstimateError, match="does not divide"):
        estimate_node(op, attrs, ZU7)


def test_design_space_offers_only_legal_transformer_folding(bert):
    from bsopt.space.folding import impl_choices, layer_attrs, legal_fold_values

    graph = _lower(bert(8, 8, hidden=96, heads=3, seq=24, ff=192))
    for layer in graph:
        for attr in ("PE", "SIMD"):
            for v in legal_fold_values(layer, attr):
                a = {**layer.attrs, attr: v}
                estimate_node(layer.op_type, a, ZU7, strict=True)  # raises if FINN would reject it
    dyn = next(layer for layer in graph if layer.kind == "MVAU" and layer.attrs["dynamic_input"])
    assert "mem_mode" not in layer_attrs(dyn) and impl_choices(dyn, "ram_style", None) == ()
    inner = next(layer for layer in graph if layer.kind == "InnerShuffle")
    assert legal_fold_values(inner, "SIMD") == [1, 2, 4, 8]  # divisors of gcd(I=24, J=32)


def test_a_transposes_stages_share_one_simd(tmp_path, bert, monkeypatch):
    """FINN folds a transpose as one Shuffle before decomposing it: the K^T transpose (an outer and an
    inner stage) is one parameter whose values both stages accept, and the FINN backend writes it
    under the Shuffle's name."""
    from bsopt.backends.finn import FinnBackend
    from bsopt.space.design_space import load_design_space

    bp = _write(tmp_path, """
version: "3.0"
name: bert-shuffles
model: zoo:bert?w=8&a=8&hidden=96&heads=3&seq=24&ff=192
hw_compiler: {kernels: [finn:MVAU, Shuffle]}
target: {board: ZCU104}
folding:
  kinds:
    InnerShuffle: {SIMD: all}
""")
    space = load_design_space(bp)
    assert not space.errors, [str(e) for e in space.errors]
    (param,) = [p for p in space.parameters if p.group == "folding"]
    graph = space.model_info.dataflow
    inner = next(layer for layer in graph if layer.kind == "InnerShuffle")
    outer = graph.producer(inner.inputs[0])
    assert param.name == f"folding.{outer.name}.SIMD"
    # outer stage: SIMD | gcd(96, 32); inner stage: SIMD | gcd(I=24, J=32)
    assert param.choices == (1, 2, 4, 8)
    cfg = space.config_from_values({**space.values_at(0), param.name: 8})
    assert cfg.folding_config[outer.name]["SIMD"] == cfg.folding_config[inner.name]["SIMD"] == 8
    assert cfg.folding_config[inner.attrs["original_node_name"]] == {"SIMD": 8}  # FINN's Shuffle name
    assert inner.attrs["original_node_name"] == outer.attrs["original_node_name"] == "Shuffle_2"  # the K path
    monkeypatch.setattr("shutil.which", lambda exe: exe)
    backend = FinnBackend(space.model_path, "latest", space.blueprint.part, {"command": "finn-build"},
                          workdir=tmp_path)
    build_dir, _ = backend.prepare(cfg)
    written = json.loads((build_dir / "folding_config.json").read_text())
    assert written["Shuffle_2"] == {"SIMD": 8}
    # a FINN folding config that names the Shuffle folds all of its stages in bsopt's estimate too
    from bsopt.estimate.network import configured_graph

    g = configured_graph(graph, {"Shuffle_2": {"SIMD": 4}})
    assert g[outer.name].attrs["SIMD"] == g[inner.name].attrs["SIMD"] == 4


def test_relative_metrics_on_a_part_of_unknown_size_are_refused(tmp_path):
    """Brainsmith's V80: the part is known (DSP58) but FINN's tables have no resource totals for it."""
    from bsopt.space.design_space import load_design_space

    bp = _write(tmp_path, """
version: "3.0"
name: v80
model: zoo:bert?w=8&a=8
hw_compiler: {kernels: [finn:MVAU], config_flags: {target_device: V80}}
objectives: [throughput_fps, LUT]
search:
  constraints:
    - {metric: DSP_util, operator: "<=", value: 0.5}
""")
    errors = [e for e in load_design_space(bp).validate() if e.severity == "error"]
    assert len(errors) == 1 and "DSP_util needs the resources of part xcv80-lsva4737-2MHP-e-S" in str(errors[0])
    assert errors[0].line == 9  # the constraint's line


def test_matmul_backend_choice_selects_the_mvau_backend():
    """A v3 ``[MatMul, [rtl, hls]]`` entry chooses the backend of every MVAU FINN can build either way."""
    from bsopt.space.design_space import load_design_space

    space = load_design_space(ROOT / "search_spaces" / "bert_exploration.yaml")
    (param,) = [p for p in space.parameters if p.group == "kernels"]
    assert param.choices == ("MatMul/rtl", "MatMul/hls")
    base = space.values_at(0)
    rtl = space.config_from_values({**base, param.name: "MatMul/rtl"})
    hls = space.config_from_values({**base, param.name: "MatMul/hls"})
    n = sum(1 for layer in space.model_info.dataflow if layer.kind == "MVAU")
    assert sum(k.startswith("MVAU_rtl_") for k in rtl.folding_config) == n  # standalone thresholds: all can be rtl
    assert sum(k.startswith("MVAU_hls_") for k in hls.folding_config) == n
    assert hls.specialize_config["MVAU_0"] == {"preferred_impl_style": "hls"}


def test_backend_only_attributes_are_no_choice_for_a_fixed_backend():
    from bsopt.space.design_space import load_design_space

    space = load_design_space(ROOT / "search_spaces" / "bert_folding.yaml")
    graph = space.model_info.dataflow
    res_type = {p.name.split(".")[1] for p in space.parameters if p.name.endswith(".resType")}
    # resType exists on MVAU_hls only; the dynamic MVAUs are rtl here and no kernel entry changes that
    assert res_type == {layer.name for layer in graph if layer.op_type == "MVAU_hls"}
    assert len(res_type) == 6


def test_user_transformer_module_needs_opset_17(tmp_path, monkeypatch):
    """Your own Brevitas encoder: at opset 13 LayerNorm is decomposed (a clear error says what to do),
    at opset 17 it lowers like the zoo encoder."""
    from bsopt.errors import UnsupportedOpError
    from bsopt.models import export_module

    (tmp_path / "my_encoder.py").write_text(
        "from torch import nn\n"
        "from bsopt.models._nets import QuantEncoderLayer, _qact, snap_weights_to_grid\n"
        "def encoder():\n"
        "    return nn.Sequential(_qact(8), QuantEncoderLayer(64, 2, 128, 8, 8))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    old = export_module("my_encoder:encoder", (1, 16, 64), tmp_path / "e13.onnx")
    with pytest.raises(UnsupportedOpError) as info:
        _lower(old)
    assert "opset 17" in info.value.hint
    new = export_module("my_encoder:encoder", (1, 16, 64), tmp_path / "e17.onnx", opset=17)
    hist: dict[str, int] = {}
    for layer in _lower(new):
        hist[layer.kind] = hist.get(layer.kind, 0) + 1
    assert hist == _expected_histogram(1, False)


def test_exact_front_of_a_bert_space_equals_brute_force(tmp_path):
    """The exact strategy on a transformer space (dynamic MVAUs with two inputs, a transpose's stages
    sharing one SIMD, a global MatMul backend choice) finds the front enumeration finds."""
    from bsopt.backends.estimate import EstimateBackend
    from bsopt.explore.exact import exact_front, why_not_separable
    from bsopt.space.design_space import load_design_space
    from bsopt.study import queries
    from bsopt.study.objectives import ObjectiveSet

    bp = _write(tmp_path, """
version: "3.0"
name: bert-exact
model: zoo:bert?w=8&a=8&hidden=64&heads=2&seq=16&ff=128
hw_compiler:
  kernels: [[MatMul, [rtl, hls]], LayerNorm, Softmax, Shuffle, ElementwiseBinaryOp, finn:Thresholding]
  config_flags: {target_device: ZCU104, target_clock_ns: 5.0, standalone_thresholds: true}
objectives: [throughput_fps, LUT, DSP, BRAM_18K]
search:
  strategy: auto
  constraints: [{metric: DSP, operator: "<=", value: 40}]
folding:
  defaults: {PE: 8, SIMD: 8}      # every other layer fixed at 8 lanes
  layers:
    MVAU_rtl_3: {PE: [1, 4, 16], SIMD: [1, 4]}
    MVAU_rtl_0: {PE: [1, 8]}
    HWSoftmax_hls_0: {SIMD: [1, 4]}
    InnerShuffle_rtl_0: {SIMD: [1, 2]}
    ElementwiseAdd_hls_0: {PE: [1, 16]}
""")
    space = load_design_space(bp)
    assert not space.errors, [str(e) for e in space.errors]
    objectives = ObjectiveSet.from_space(space)
    assert why_not_separable(space, objectives) is None
    n = space.get_total_combinations()
    assert n == 2 * 6 * 2 * 2 * 2 * 2  # MatMul backend x QK^T PE/SIMD x ... (layer names follow rtl)
    backend = EstimateBackend(space.model_path, "latest", space.blueprint.part)
    rows = []
    for k in range(n):
        r = backend.build(space.config(k))
        if r.ok and all(v <= 0 for v in objectives.violations(r.values).values()):
            rows.append([(-1 if d == "maximize" else 1) * r.values[m]
                         for m, d in zip(objectives.metrics, objectives.directions, strict=True)])
    pts = np.array(rows, dtype=float)
    brute = {tuple(pts[i]) for i in queries.front_indices(pts)}
    front = exact_front(space, objectives, backend)
    exact = {tuple((-1 if d == "maximize" else 1) * p["metrics"][m]
                   for m, d in zip(objectives.metrics, objectives.directions, strict=True)) for p in front.points}
    assert exact == brute
    assert len({v[0] for v in exact}) >= 3  # a real trade-off: several throughput levels


MHA_MODULE = """
import torch
from torch import nn
from brevitas.nn import QuantIdentity, QuantMultiheadAttention
from brevitas.quant import Int8ActPerTensorFloat


class Block(nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.inp = QuantIdentity(act_quant=Int8ActPerTensorFloat)
        self.mha = QuantMultiheadAttention(64, 2, batch_first=True, in_proj_input_quant=Int8ActPerTensorFloat)
        if bias:
            with torch.no_grad():
                self.mha.in_proj.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        x = self.inp(x)
        return self.mha(x, x, x, need_weights=False)[0]


def block(bias=False):
    torch.manual_seed(0)
    return Block(bias)


def biased():
    return block(True)
"""


@pytest.mark.parametrize("factory", ["block", "biased"])
def test_brevitas_multihead_attention_lowers(tmp_path, monkeypatch, factory):
    """Brevitas' QuantMultiheadAttention: a fused in_proj sliced into Q, K, V (one MVAU per slice of the
    weight columns), batch-first <-> sequence-first transposes of a batch of 1 (no data movement)."""
    from bsopt.lowering.info import inspect_model
    from bsopt.models import export_module

    (tmp_path / "mha_block.py").write_text(MHA_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = export_module(f"mha_block:{factory}", (1, 16, 64), tmp_path / "mha.onnx", opset=17)
    info = inspect_model(path)
    graph = info.dataflow
    hist: dict[str, int] = {}
    for layer in graph:
        hist[layer.kind] = hist.get(layer.kind, 0) + 1
    # in_proj as three 64x64 slices, QK^T, attn x V, out_proj
    assert hist["MVAU"] == 6 and sum(m.attrs["dynamic_input"] for m in graph if m.kind == "MVAU") == 2
    assert sorted(m.attrs["MH"] for m in graph if m.kind == "MVAU" and not m.attrs["dynamic_input"]) == [64] * 4
    assert hist["DuplicateStreams"] == 1  # the quantised input feeds the three slices
    assert hist["OuterShuffle"] == 4 and hist["InnerShuffle"] == 1  # q, k (K^T: two stages), v, context
    # a per-channel bias cannot follow the channels into the heads: it is applied before the split
    assert hist.get("ElementwiseAdd", 0) == (3 if factory == "biased" else 0)
    assert info.totals["dataflow_macs"] == info.totals["total_macs"]  # the slices add up to the fused MatMul
    assert info.totals["dataflow_params"] == 4 * 64 * 64


def test_identical_encoder_blocks_share_their_option_tables(tmp_path, monkeypatch):
    """The exact front of a 2-layer encoder (its blocks are copies) is the same when every block
    tabulates its own options as when copies share one table: the same metrics from the same
    parameter values (a shared table's options are named by each copy's own parameters)."""
    from bsopt.explore import exact
    from bsopt.space.design_space import load_design_space
    from bsopt.study.objectives import ObjectiveSet

    monkeypatch.chdir(tmp_path)
    bp = _write(tmp_path, """version: "3.0"
name: shared
model: zoo:bert?w=4&a=4&layers=2&hidden=64&heads=2&seq=16&ff=128
hw_compiler:
  kernels: [MatMul, LayerNorm, Softmax, Shuffle, ElementwiseBinaryOp, finn:Thresholding, DuplicateStreams]
  config_flags: {target_device: U250, target_clock_ns: 5.0, standalone_thresholds: true}
folding:
  kinds:
    MVAU: {PE: all, SIMD: [1, 2, 4]}
    Thresholding: {PE: [1, 2]}
objectives: [max_cycles, LUT, BRAM_18K]
""")
    space = load_design_space(bp).require_valid()
    objectives = ObjectiveSet.from_space(space)
    shared = exact.exact_front(space, objectives)
    exact._TABLES.clear()
    monkeypatch.setattr(exact, "_signature", lambda *a, **k: None)
    alone = exact.exact_front(space, objectives)
    assert len(shared.points) > 1
    assert [(p["values"], p["metrics"]) for p in shared.points] == [(p["values"], p["metrics"]) for p in alone.points]


@pytest.mark.parametrize("style", ["rtl", "hls"])
def test_backend_variants_from_the_cached_generic_graph_equal_fresh_lowerings(bert, tmp_path, monkeypatch, style):
    from bsopt.lowering import LoweringOptions, lower

    monkeypatch.setenv("BSOPT_MODEL_CACHE", str(tmp_path / "models"))
    path = bert(4, 8, layers=2, seq=16)
    lower(path, LoweringOptions(fpgapart=ZU7, standalone_thresholds=True))  # the generic graph, cached
    options = LoweringOptions(fpgapart=ZU7, standalone_thresholds=True, preferred_impl_style={"MVAU": style})
    variant = lower(path, options)
    assert {layer.op_type for layer in variant if layer.kind == "MVAU"} == {f"MVAU_{style}"}
    monkeypatch.setenv("BSOPT_LOWERING_CACHE", "0")
    assert variant.to_json() == lower(path, options).to_json()
