"""Hand-computed combination counts for every entry form, in both blueprint formats."""

from __future__ import annotations

import textwrap

import pytest
from finn_reference import network_dirs, prepost_model

from bsopt.space.design_space import load_design_space

HAVE_REF = bool(network_dirs())


def space(tmp_path, text, name="bp.yaml", model=None):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_design_space(path, model)


def errors(s):
    return [e for e in s.validate() if e.severity == "error"]


def folding_space(tmp_path, network, folding, head=""):
    """A v3 blueprint over a reference network with a folding section (indented YAML lines)."""
    return space(tmp_path, f'''
version: "3.0"
name: fold
model: {prepost_model(network)}
{head}hw_compiler:
  build_steps: [step_streamline, step_minimize_bit_width]
search: {{strategy: tpe}}
folding:
{folding}
''')


V3_HEAD = """
version: "3.0"
name: t
hw_compiler:
  build_steps: [step_streamline, step_minimize_bit_width]
"""


@pytest.mark.parametrize(
    "kernels, expected",
    [
        ("[MatMul]", 1),  # fixed
        ("[[Gemm, [rtl, hls]]]", 2),  # kernel with backends
        ("[[MVAU, Thresholding]]", 2),  # exclusive
        ("[[[LayerNorm, [hls, rtl]], RMSNorm]]", 3),  # exclusive group with backends
        ("[[~, Transpose]]", 2),  # optional, list form
        ("['~Transpose']", 2),  # optional, string form
        ("[[null, Transpose]]", 2),  # unquoted ~ is YAML null
        ("[[['~Softmax', [hls, flash]]]]", 3),  # optional with backends
        ("['(~, MVAU, VVAU)']", 3),  # parenthesised tuple string
        ("[MatMul, [Gemm, [rtl, hls]], '~Transpose', [MVAU, VVAU, ~]]", 1 * 2 * 2 * 3),
    ],
)
def test_v3_kernel_forms(tmp_path, kernels, expected):
    s = space(tmp_path, V3_HEAD + f"  kernels: {kernels}\n")
    assert not errors(s), errors(s)
    assert s.get_total_combinations() == expected


def test_v3_transform_phases_processing_and_their_product(tmp_path):
    s = space(tmp_path, V3_HEAD + """
  kernels: [[Gemm, [rtl, hls]], [[LayerNorm, [standard, quantized]], RMSNorm]]
  transforms:
    cleanup: [RemoveIdentityOps, FoldConstants]
    topology: [[streamline, tidy_up], "(~, ConvertDivToMul, InferShapes)", "~MoveOpPastFork"]
processing:
  preprocessing:
    - name: normalize
      options: [{method: standard}, {method: none}]
  postprocessing:
    - name: report
      options: [{detailed: true}, {detailed: false}, {enabled: false}]
    - name: single
      options: [{}]
""")
    assert not errors(s), errors(s)
    # kernels 2*3, transforms 1*1*2*3*2, processing 2*3*1
    assert s.get_total_combinations() == (2 * 3) * (2 * 3 * 2) * (2 * 3)
    c = s.config(0)
    assert c.kernel_selections == {"Gemm": "rtl", "LayerNorm": "standard"}
    assert c.transform_sequence == ["RemoveIdentityOps", "FoldConstants", "streamline"]
    assert c.processing["preprocessing.normalize"] == {"method": "standard"}
    last = s.config(s.get_total_combinations() - 1)
    assert last.kernel_selections == {"Gemm": "hls", "RMSNorm": None}
    assert last.transform_sequence == ["RemoveIdentityOps", "FoldConstants", "tidy_up", "InferShapes",
                                       "MoveOpPastFork"]
    assert last.processing["postprocessing.report"] == {"enabled": False}


def test_v3_clock_and_typed_parameters_multiply(tmp_path):
    s = space(tmp_path, V3_HEAD + """
target:
  part: xczu7ev-ffvc1156-2-e
  clock_ns: {low: 3.0, high: 10.0, step: 0.5}
parameters:
  finn_config.mvau_wwidth_max: {choices: [36, 72, 144]}
  config_flags.synth_directive: {choices: [default, performance]}
  finn_config.fifo_depth_scale: {low: 1, high: 8}
""")
    assert not errors(s), errors(s)
    assert s.get_total_combinations() == 15 * 3 * 2 * 8
    c = s.config(s.index_of({"target.clock_ns": 4.5, "finn_config.mvau_wwidth_max": 72,
                             "config_flags.synth_directive": "performance", "finn_config.fifo_depth_scale": 3}))
    assert c.target["clock_ns"] == 4.5 and c.target["part"] == "xczu7ev-ffvc1156-2-e"
    assert c.finn_config == {"mvau_wwidth_max": 72, "fifo_depth_scale": 3}
    assert c.config_flags["synth_directive"] == "performance"


def test_v01_step_branches_kernels_and_clock(tmp_path):
    s = space(tmp_path, """
name: t01
clock_ns: 5.0
design_space:
  kernels:
    - LayerNorm
    - {MVAU: [MVAU_hls, MVAU_rtl]}
    - finn:Thresholding
  steps:
    - qonnx_to_finn
    - [streamline, "~"]
    - [minimize_bit_width, tidy_up, "~"]
    - generate_estimate_reports
""")
    assert not errors(s), errors(s)
    assert s.get_total_combinations() == 2 * 2 * 3
    c = s.config(0)
    assert c.build_steps == ["qonnx_to_finn", "streamline", "minimize_bit_width", "generate_estimate_reports"]
    assert c.kernel_selections["MVAU"] == "MVAU_hls" and c.target["clock_ns"] == 5.0


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_per_layer_folding_counts_legal_values_only(tmp_path):
    # TFC-w2a2: Thresholding 784 ch; MVAUs 784x64, 64x64, 64x64, 64x10.
    # divisors: 784 -> 15, 64 -> 7, 10 -> 4. MVAU_hls SIMD >= MW/1024 holds for all divisors here.
    s = folding_space(tmp_path, "tfc_w2a2", """
  kinds:
    MVAU: {PE: all, SIMD: all, ram_style: [auto, distributed]}
    Thresholding: {PE: all}""")
    assert not errors(s), errors(s)
    assert s.get_total_combinations() == 15 * (7 * 15 * 2) * (7 * 7 * 2) ** 2 * (4 * 7 * 2)


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_simd_code_generation_limit_and_stream_width(tmp_path):
    # CNV MVAU_hls_5 has MW = 2304: FINN's HLS code generation needs SIMD >= 2304/1024 -> SIMD >= 3
    s = folding_space(tmp_path, "cnv_w1a1", """
  max_stream_width: 36
  layers:
    MVAU_hls_5: {SIMD: all}
    MVAU_hls_0: {SIMD: all}
    MVAU_hls_3: {SIMD: all}     # MW = 1152: at SIMD = 1 (unset) no configuration would build
    MVAU_hls_4: {SIMD: all}""")
    assert not errors(s), errors(s)
    simd5 = next(p for p in s.parameters if p.name == "folding.MVAU_hls_5.SIMD")
    # divisors of 2304 that are >= 3 and, with 1-bit weights, <= 36
    assert list(simd5.choices) == [d for d in range(3, 37) if 2304 % d == 0]
    simd0 = next(p for p in s.parameters if p.name == "folding.MVAU_hls_0.SIMD")
    # MW = 27 with INT2 weights: SIMD * 2 <= 36
    assert list(simd0.choices) == [1, 3, 9]


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_depthwise_windows_follow_their_consumer(tmp_path):
    s = folding_space(tmp_path, "cnv_w1a1", """
  kinds:
    Pool: {PE: [1, 2, 4]}
  layers:                       # MW >= 1152: FINN's HLS MVAU needs SIMD >= 2 (fixed here)
    MVAU_hls_3: {SIMD: 4}
    MVAU_hls_4: {SIMD: 4}
    MVAU_hls_5: {SIMD: 4}""")
    assert not errors(s), errors(s)
    assert s.get_total_combinations() == 3 * 3
    c = s.config(s.index_of({"folding.Pool_hls_0.PE": 4, "folding.Pool_hls_1.PE": 2}))
    assert c.folding_config["Pool_hls_0"] == {"PE": 4}
    # the pooling window generator in front of each Pool streams SIMD = the Pool's PE
    assert c.folding_config["ConvolutionInputGenerator_rtl_2"] == {"SIMD": 4}
    assert c.folding_config["ConvolutionInputGenerator_rtl_5"] == {"SIMD": 2}


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_backend_choices_rename_layers_as_finn_does(tmp_path):
    s = space(tmp_path, f"""
version: "3.0"
name: be
model: {prepost_model("tfc_w2a2")}
target: {{part: xczu7ev-ffvc1156-2-e}}
hw_compiler:
  kernels: [[Thresholding, [hls, rtl]]]
  build_steps: [step_streamline, step_minimize_bit_width]
search: {{strategy: tpe}}
folding:
  kinds:
    Thresholding: {{PE: 16}}
  layers:
    MVAU_hls_1: {{PE: [1, 64], resType: [lut, dsp]}}
""")
    assert not errors(s), errors(s)
    assert s.get_total_combinations() == 2 * 2 * 2
    c = s.config(s.index_of({"kernel.Thresholding": "Thresholding/hls", "folding.MVAU_hls_1.PE": 64,
                             "folding.MVAU_hls_1.resType": "dsp"}))
    assert c.specialize_config == {"Defaults": {}, "Thresholding_0": {"preferred_impl_style": "hls"}}
    assert c.folding_config == {"Defaults": {}, "Thresholding_hls_0": {"PE": 16},
                                "MVAU_hls_1": {"PE": 64, "resType": "dsp"}}
    rtl = s.config(s.index_of({"kernel.Thresholding": "Thresholding/rtl", "folding.MVAU_hls_1.PE": 1,
                               "folding.MVAU_hls_1.resType": "lut"}))
    assert rtl.specialize_config is None and "Thresholding_rtl_0" in rtl.folding_config


def test_config_ids_round_trip_and_resume(tmp_path):
    s = space(tmp_path, V3_HEAD + "  kernels: [[MVAU, VVAU, ~], '~Thresholding']\ntarget:\n  clock_ns: {choices: [5, 10]}\n")
    n = s.get_total_combinations()
    assert n == 3 * 2 * 2
    ids = [c.config_id for c in s.iter_configs()]
    assert len(set(ids)) == n and ids[7] == s.config(7).config_id
    assert s.index_from_config_id(ids[7]) == 7
    resumed = [c.index for c in s.iter_configs(s.index_from_config_id(ids[9]))]
    assert resumed == [9, 10, 11]
    # a different space gives different ids and refuses foreign ones
    other = space(tmp_path, V3_HEAD + "  kernels: [[MVAU, VVAU]]\n", name="other.yaml")
    assert other.space_id != s.space_id
    with pytest.raises(Exception, match="not a configuration id of this space"):
        other.index_from_config_id(ids[0])
    # content hashes: equal content, equal hash; different content, different hash
    hashes = {c.content_hash() for c in s.iter_configs()}
    assert len(hashes) == n
