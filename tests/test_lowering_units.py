"""Hand-computed expectations for the pieces of the lowering."""

from __future__ import annotations

import numpy as np
import pytest
from finn_reference import NETWORKS, network_dirs, prepost_model
from qonnx.core.datatype import DataType

from bsopt.errors import ModelError
from bsopt.hw.parts import dsp_block, is_versal
from bsopt.ir.bitwidths import minimize_bit_widths
from bsopt.ir.datatypes import accumulator_dtype, label_select_dtype, rac_threshold_dtype
from bsopt.lowering import LoweringOptions, lower
from bsopt.lowering.passes import apply_folding
from bsopt.lowering.state import Op, Stream
from bsopt.lowering.thresholds import ActQuant, compute_thresholds

HAVE_REF = bool(network_dirs())


def test_thresholds_of_a_2bit_activation_on_uint8_pixels():
    # x in 0..255, real = 2*x/255 - 1, narrow signed 2-bit quant with scale 1:
    # level 0 from real >= -0.5 -> x >= 63.75 -> 64; level 1 from real >= 0.5 -> x >= 191.25 -> 192
    s = Stream(DataType["UINT8"], (1, 784), "in", [Op("affine", 2 / 255, -1.0)])
    grid = ActQuant(-1, 1, 1.0, 0.0, "ROUND", False)
    thr = compute_thresholds(s, grid, 0, 256)
    assert thr.shape == (784, 2)
    assert np.all(thr == [64, 192])


def test_thresholds_clip_to_the_domain_and_follow_per_channel_scales():
    # channel 0: real = x, channel 1: real = x / 4; unsigned 2-bit quant, scale 1 (levels at .5, 1.5, 2.5)
    s = Stream(DataType["UINT4"], (1, 2), "in", [Op("affine", np.array([1.0, 0.25]), 0.0)])
    grid = ActQuant(0, 3, 1.0, 0.0, "ROUND", False)
    thr = compute_thresholds(s, grid, 0, 16)
    assert thr[0].tolist() == [1, 2, 3]
    assert thr[1].tolist() == [2, 6, 10]
    # a level never reached inside the domain gets max+1
    s2 = Stream(DataType["UINT2"], (1, 1), "in", [Op("affine", 0.25, 0.0)])
    assert compute_thresholds(s2, grid, 0, 4)[0].tolist() == [2, 4, 4]


def test_bipolar_threshold_is_the_sign_change():
    s = Stream(DataType["INT8"], (1, 1), "in", [Op("affine", 1.0, -10.0)])
    grid = ActQuant(-1, 1, 1.0, 0.0, "ROUND", True)
    assert compute_thresholds(s, grid, -128, 128)[0].tolist() == [10]


@pytest.mark.parametrize("seed", range(6))
def test_narrowed_threshold_search_equals_the_whole_domain_search(seed):
    """The closed-form bracket only narrows the binary search: on random affine accumulators (scales of
    both signs' rounding edges, per-channel scales, bipolar and multi-bit grids, levels outside the
    domain) the thresholds equal those of the search over the whole INT32 domain."""
    rng = np.random.default_rng(seed)
    channels = 64
    a = rng.uniform(1e-4, 2.0, channels) * rng.choice([1.0, 1e-3, 1e3], channels)
    b = rng.normal(0, 50, channels)
    b[:8] = np.round(b[:8]) * a[:8]  # boundaries landing exactly on integers
    s = Stream(DataType["INT32"], (1, channels), "acc", [Op("affine", a, b)])
    for grid in (ActQuant(-128, 127, rng.uniform(0.01, 1, channels), 0.0, "ROUND", False),
                 ActQuant(0, 15, 0.5, 0.0, "FLOOR", False), ActQuant(-1, 1, 1.0, 0.0, "ROUND", True),
                 ActQuant(-2, 1, 1e-9, 0.0, "CEIL", False)):
        lo, hi = -(2**31), 2**31
        fast = compute_thresholds(s, grid, lo, hi)
        full = compute_thresholds(s, grid, lo, hi, narrow=False)
        np.testing.assert_array_equal(fast, full)


def test_datatype_rules():
    assert accumulator_dtype(-1568, 3136).name == "INT13"  # 784 x INT2 x INT2 worst case
    assert accumulator_dtype(0, 784).name == "UINT10"
    assert rac_threshold_dtype(DataType["UINT8"]).name == "UINT9"
    assert rac_threshold_dtype(DataType["INT8"]).name == "INT9"
    assert label_select_dtype(10).name == "UINT8"
    assert label_select_dtype(1000).name == "UINT16"
    assert label_select_dtype(2).name == "BINARY"


def test_part_families():
    assert dsp_block("xc7z020clg400-1") == "DSP48E1"
    assert dsp_block("xczu7ev-ffvc1156-2-e") == "DSP48E2"
    assert dsp_block("xcve2802-vsvh1760-2MP-e-S") == "DSP58"
    assert is_versal("xcv80-lsva4737-2MHP-e-S") and not is_versal("xcu250-figd2104-2L-e")


def test_unknown_finn_version_is_an_input_error():
    with pytest.raises(ModelError, match="unknown FINN version"):
        LoweringOptions(finn_version="0.9")


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_runtime_writeable_weights_widen_datatypes_as_finn_does():
    g = lower(prepost_model("tfc_w2a2"))
    assert g["MVAU_hls_0"].attrs["accDataType"] == "INT11"
    assert g["Thresholding_rtl_0"].attrs["weightDataType"] == "UINT8"
    # worst case of 784 INT2 x INT2 products: [-1568, 3136] -> INT13 (hand computed)
    apply_folding(g, {"MVAU_hls_0": {"runtime_writeable_weights": 1},
                            "Thresholding_rtl_0": {"runtime_writeable_weights": 1}})
    assert g["MVAU_hls_0"].attrs["accDataType"] == "INT13"
    assert g["Thresholding_rtl_0"].attrs["weightDataType"] == "UINT9"
    # external weights: the last layer (64 x INT2 x INT2 worst case [-128, 256]) -> INT10 output
    apply_folding(g, {"MVAU_hls_3": {"mem_mode": "external"}})
    assert g["MVAU_hls_3"].attrs["outputDataType"] == "INT10"
    assert g["LabelSelect_hls_0"].attrs["inputDataType"] == "INT10"
    # and back: minimisation is recomputed from the base datatypes
    apply_folding(g, {"MVAU_hls_0": {"runtime_writeable_weights": 0},
                            "Thresholding_rtl_0": {"runtime_writeable_weights": 0},
                            "MVAU_hls_3": {"mem_mode": "internal_decoupled"}})
    assert g["MVAU_hls_0"].attrs["accDataType"] == "INT11"
    assert g["MVAU_hls_3"].attrs["outputDataType"] == "INT8"


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_unknown_layer_in_folding_config_names_the_known_layers():
    from bsopt.errors import InputError

    g = lower(prepost_model("tfc_w2a2"))
    with pytest.raises(InputError, match="MVAU_hls_9") as exc:
        g.apply_folding_config({"MVAU_hls_9": {"PE": 2}}, where="cfg.json")
    assert "MVAU_hls_0" in str(exc.value)


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_maxpool_lowering_depends_on_the_finn_version():
    path = prepost_model("cnv_w1a1")
    dev = lower(path).op_histogram()
    old = lower(path, finn_version="0.10.1").op_histogram()
    assert dev["Pool_hls"] == 2 and "StreamingMaxPool_hls" not in dev
    assert old["StreamingMaxPool_hls"] == 2 and "Pool_hls" not in old
    assert dev["ConvolutionInputGenerator_rtl"] == old["ConvolutionInputGenerator_rtl"] + 2


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_standalone_thresholds_and_rtl_preference():
    g = lower(prepost_model("tfc_w2a2"), standalone_thresholds=True, fpgapart="xczu7ev-ffvc1156-2-e",
              preferred_impl_style={"MVAU": "rtl"})
    assert [layer.op_type for layer in g] == ["Thresholding_rtl", "MVAU_rtl", "Thresholding_rtl", "MVAU_rtl",
                                              "Thresholding_rtl", "MVAU_rtl", "Thresholding_rtl", "MVAU_rtl",
                                              "LabelSelect_hls"]
    # FINN refuses MVAU_rtl for 2-bit operands unless asked: default stays hls
    g2 = lower(prepost_model("tfc_w2a2"), standalone_thresholds=True, fpgapart="xczu7ev-ffvc1156-2-e")
    assert g2.op_histogram()["MVAU_hls"] == 4


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_model_info_macs_match_qonnx_inference_cost():
    from bsopt.lowering.info import inspect_model

    for name in ("tfc_w1a1", "cnv_w1a1"):
        info = inspect_model(prepost_model(name))
        assert info.totals["dataflow_macs"] == info.totals["total_macs"] > 0
        assert info.totals["dataflow_params"] == info.totals["total_mem_w_elems"]
        d = info.to_dict()
        assert [layer["name"] for layer in d["layers"]] == info.dataflow.names
        assert d["inputs"][0]["datatype"] == "UINT8"


def test_minimize_is_idempotent_on_reference():
    if not HAVE_REF:
        pytest.skip("reference data missing")
    g = lower(NETWORKS / "cnv_w1a1" / "model_qonnx_prepost.onnx.gz")
    before = [dict(layer.attrs) for layer in g]
    minimize_bit_widths(g)
    assert before == [dict(layer.attrs) for layer in g]


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_argmax_becomes_a_top1_label_select(tmp_path):
    import onnx
    from onnx import helper

    model = onnx.load(str(prepost_model("tfc_w2a2")))
    graph = model.graph
    topk = next(n for n in graph.node if n.op_type == "TopK")
    index = list(graph.node).index(topk)
    graph.node.remove(topk)
    graph.node.insert(index, helper.make_node("ArgMax", [topk.input[0]], ["cls"], name="argmax", axis=-1,
                                              keepdims=1))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("cls", onnx.TensorProto.INT64, [1, 1]))
    onnx.save(model, tmp_path / "argmax.onnx")
    g = lower(tmp_path / "argmax.onnx")
    last = g[-1]
    assert last.op_type == "LabelSelect_hls" and last.attrs["K"] == 1 and last.attrs["Labels"] == 10
    assert last.source_nodes == ["argmax"] and g.outputs == [last.output]


def test_part_resources_by_family():
    from bsopt.hw.parts import part_resources

    assert part_resources("xc7z020clg400-1")["URAM"] == 0
    assert part_resources("xczu7ev-ffvc1156-2-e")["URAM"] == 92
    assert part_resources("xc7k325t-ffg900-2") is None


def test_finn_names_count_each_op_type_in_graph_order():
    from bsopt.lowering.passes import FinnNames

    names = FinnNames()
    got = [names.next(t) for t in ("MVAU_hls", "Thresholding_rtl", "MVAU_rtl", "MVAU_hls", "Thresholding_rtl")]
    assert got == ["MVAU_hls_0", "Thresholding_rtl_0", "MVAU_rtl_0", "MVAU_hls_1", "Thresholding_rtl_1"]


def test_finalization_passes_run_in_finns_order():
    from bsopt.lowering import LoweringOptions
    from bsopt.lowering.passes import finalization

    order = [p.name for p in finalization(LoweringOptions(keep_parameters=True))]
    assert order == ["InsertDuplicateStreams", "SpecializeLayers", "SetImplDefaults", "NameLayers", "MinimizeBitWidths"]
    # by default the matrices are summarised (bsopt's own step) before the target-specific passes read them
    order = [p.name for p in finalization(LoweringOptions())]
    assert order == ["InsertDuplicateStreams", "SummariseParameters", "SpecializeLayers", "SetImplDefaults",
                     "NameLayers", "MinimizeBitWidths"]
    assert "MinimizeBitWidths" not in [p.name for p in finalization(LoweringOptions(minimize_bit_width=False))]


@pytest.mark.parametrize("seed", range(5))
def test_parameter_summaries_answer_as_the_matrices_do(seed):
    """WeightSummary/ThresholdSummary against numpy on the matrices themselves: extremes, accumulator
    ranges over signed/unsigned/binary inputs (also FINN's XNOR encoding), column slices, worst cases,
    clipped thresholds."""
    from bsopt.ir.params import ThresholdSummary, WeightSummary, accumulator_range

    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(1, 40), rng.integers(1, 30)
    w = rng.integers(-8, 8, size=(rows, cols)).astype(np.float64)
    binary = rng.integers(0, 2, size=(rows, cols)).astype(np.float64)
    for matrix, xnor in ((w, False), (binary, False), (binary, True)):
        s = WeightSummary.of(matrix)
        assert (s.min(), s.max(), s.shape, s.size) == (matrix.min(), matrix.max(), matrix.shape, matrix.size)
        for dt in ("INT4", "UINT3", "BINARY", "BIPOLAR", "INT9"):
            expected = accumulator_range(matrix, DataType[dt], xnor)  # evaluated entry by entry
            assert accumulator_range(s, DataType[dt], xnor) == expected, (dt, xnor)
            lo, hi = int(rng.integers(0, cols)), cols
            assert accumulator_range(s.columns(lo, hi), DataType[dt], xnor) == \
                accumulator_range(matrix[:, lo:hi], DataType[dt], xnor)
        flip = 2 * matrix - 1
        if xnor:
            assert (s.xnor().min(), s.xnor().max()) == (flip.min(), flip.max())
    for value in (-3.0, 0.0, 5.0):
        const = np.full((rows, cols), value)
        assert accumulator_range(WeightSummary.constant((rows, cols), value), DataType["INT4"]) == \
            accumulator_range(const, DataType["INT4"])
    t = rng.normal(0, 100, size=(cols, 7))
    ts = ThresholdSummary.of(t)
    for lo, hi in ((-50, 50), (-1000, 1000), (10, 20), (200, 300), (-300, -200), (-1e4, -5e3), (5e3, 1e4)):
        c = np.clip(t, lo, hi)
        assert (ts.clip(lo, hi).min(), ts.clip(lo, hi).max(), ts.clip(lo, hi).size) == (c.min(), c.max(), c.size)
