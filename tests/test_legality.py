"""FINN's legality rules, one implementation: what the design space offers, what the exact solver
keeps, what SetFolding seeds report and what strict estimates reject all come from the cost models'
``issues`` (bsopt.estimate.legality). Expectations are hand-computed from FINN's rules."""

from __future__ import annotations

import pytest
from finn_reference import prepost_model

from bsopt.estimate import legality
from bsopt.estimate.base import EstimateError, estimate_node
from bsopt.space.design_space import load_design_space

U250 = "xcu250-figd2104-2L-e"
Z020 = "xc7z020clg400-1"


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def test_softmax_simd_keeps_its_float_stream_within_ap_int_max_w():
    """HWSoftmax streams FLOAT32 lanes: SIMD * 32 <= 8191, so SIMD <= 255 even where 768 has larger divisors."""
    a = {"ifm_dim": [1, 128, 768], "SIMD": 1, "input_data_type": "FLOAT32"}
    assert legality.legal_values("HWSoftmax_hls", "SIMD", a, U250) == [d for d in _divisors(768) if d * 32 <= 8191]
    with pytest.raises(EstimateError, match="AP_INT_MAX_W"):
        estimate_node("HWSoftmax_hls", {**a, "SIMD": 256}, U250, strict=True)


def test_hls_mvau_simd_needs_mw_over_1024_and_narrow_input_streams():
    a = {"MW": 4096, "MH": 64, "PE": 1, "SIMD": 1, "inputDataType": "INT8", "weightDataType": "INT2",
         "outputDataType": "INT8", "noActivation": 1}
    simd = legality.legal_values("MVAU_hls", "SIMD", a, U250)
    # SIMD >= 4096/1024 and SIMD * 8 input bits <= 8191 (the weight stream depends on PE as well:
    # a joint rule, which the estimates reject, not a single value)
    assert simd == [d for d in _divisors(4096) if d >= 4 and d * 8 <= 8191]
    # the RTL MVAU has neither limit
    assert legality.legal_values("MVAU_rtl", "SIMD", {**a, "weightDataType": "INT4", "inputDataType": "INT4"},
                                 U250) == _divisors(4096)


def test_weight_streams_are_a_joint_rule_strict_estimates_reject():
    """FINN asserts nothing on MVAU_hls' weight stream, but its width goes into the AP_INT_MAX_W
    define, which the ap_int headers cap at 32768 bits (PE * SIMD * weight bits, a rule on two values)."""
    a = {"MW": 1024, "MH": 1024, "PE": 256, "SIMD": 32, "inputDataType": "INT2", "weightDataType": "INT8",
         "outputDataType": "INT2", "noActivation": 1}
    issues = legality.check("MVAU_hls", a, U250)
    assert len(issues) == 1 and issues[0].attrs == {"PE", "SIMD", "mem_mode"}  # 256 * 32 * 8 = 65536 bits
    assert not legality.check("MVAU_hls", {**a, "PE": 128}, U250)  # 32768 bits: the headers' limit
    # embedded weights: only one PE's word (SIMD * bits) sets AP_INT_MAX_W
    assert not legality.check("MVAU_hls", {**a, "mem_mode": "internal_embedded"}, U250)
    with pytest.raises(EstimateError, match="weight stream"):
        estimate_node("MVAU_hls", a, U250, strict=True)
    estimate_node("MVAU_hls", a, U250)  # FINN's estimates accept it


def test_ultra_ram_only_where_the_part_has_it():
    a = {"MW": 64, "MH": 64, "PE": 1, "SIMD": 1, "inputDataType": "INT2", "weightDataType": "INT2",
         "outputDataType": "INT2", "noActivation": 1, "runtime_writeable_weights": 1}
    assert "ultra" in legality.legal_values("MVAU_hls", "ram_style", a, U250)
    assert "ultra" not in legality.legal_values("MVAU_hls", "ram_style", a, Z020)


def test_parallel_window_needs_simd_equal_to_the_channels():
    """FINN's ConvolutionInputGenerator_rtl: parallel_window=1 needs SIMD = IFMChannels (unless
    depthwise); the value is offered with that requirement, and a window whose output is a single
    pixel cannot use it at all (FINN's RTL generator fails sizing its counters)."""
    swg = {"ConvKernelDim": [3, 3], "IFMChannels": 64, "IFMDim": [16, 16], "OFMDim": [14, 14], "SIMD": 1,
           "Stride": [1, 1], "Dilation": [1, 1], "inputDataType": "BIPOLAR", "outputDataType": "BIPOLAR"}
    assert legality.legal_values("ConvolutionInputGenerator_rtl", "parallel_window", swg, U250) == [0, 1]
    assert legality.requirements("ConvolutionInputGenerator_rtl", "parallel_window", 1, swg, U250, "latest",
                                 {"SIMD": (1, 2, 32, 64)}) == {"SIMD": (64,)}
    assert legality.legal_values("ConvolutionInputGenerator_rtl", "parallel_window", swg, U250,
                                 others={"SIMD": (1, 2)}) == [0]
    single = {**swg, "IFMDim": [3, 3], "OFMDim": [1, 1]}
    assert legality.legal_values("ConvolutionInputGenerator_rtl", "parallel_window", single, U250) == [0]


def _cnv_space(tmp_path, folding: str, part: str = U250, clock: float = 2.5):
    bp = tmp_path / "cnv.yaml"
    bp.write_text(f"""
version: "3.0"
name: cnv
model: {prepost_model('cnv_w1a1')}
hw_compiler:
  kernels: [MVAU, ConvolutionInputGenerator, Pool, Thresholding, LabelSelect]
target: {{part: {part}, clock_ns: {clock}}}
folding:
{folding}
objectives: cycles_area
search: {{strategy: exact}}
""")
    return load_design_space(bp)


def test_the_space_offers_parallel_window_with_its_requirement(tmp_path):
    space = _cnv_space(tmp_path, "  defaults: {PE: all, SIMD: all}\n  kinds:\n"
                                 "    ConvolutionInputGenerator: {parallel_window: all}\n").require_valid()
    params = {p.name: p for p in space.parameters}
    pw = [p for n, p in params.items() if n.endswith(".parallel_window")]
    assert pw
    graph = space.model_info.dataflow
    for p in pw:
        layer = graph[p.name.split(".")[1]]
        if layer.attrs["depthwise"]:
            assert not p.requires  # a depthwise window takes any SIMD
            continue
        assert p.requires == ((1, f"folding.{layer.name}.SIMD", (layer.attrs["IFMChannels"],)),)
        # a configuration pairing parallel_window=1 with another SIMD falls back to FINN's default
        base = space.values_at(0)
        simd = params[f"folding.{layer.name}.SIMD"]
        other = next(v for v in simd.choices if v != layer.attrs["IFMChannels"])
        cfg = space.config_from_values({**base, p.name: 1, simd.name: other})
        assert "parallel_window" not in cfg.folding_config.get(layer.name, {})
        cfg = space.config_from_values({**base, p.name: 1, simd.name: layer.attrs["IFMChannels"]})
        assert cfg.folding_config[layer.name]["parallel_window"] == 1


def test_a_folding_factor_left_at_an_illegal_value_is_an_error(tmp_path):
    """An HLS MVAU with MW = 1152 needs SIMD >= 2: a folding section that varies only PE leaves
    SIMD = 1, which FINN's code generation rejects on every configuration."""
    space = _cnv_space(tmp_path, "  kinds:\n    MVAU: {PE: all}\n")
    errors = [str(w) for w in space.errors]
    assert any("MVAU_hls_" in w and "SIMD=1" in w and "code generation" in w for w in errors), errors
    assert not any("MVAU_hls_0" in w for w in errors)  # MW = 27: SIMD = 1 is fine


def test_fixed_values_finn_rejects_together_are_an_error_at_their_line(tmp_path):
    """URAM weights in decoupled mode off Versal need runtime-writeable weights: fixing ram_style and
    mem_mode without them is an error where they are written, naming what else to set."""
    space = _cnv_space(tmp_path, "  defaults: {SIMD: all}\n  kinds:\n"
                                 "    MVAU_hls: {ram_style: ultra, mem_mode: internal_decoupled}\n")
    errors = [e for e in space.errors if "ram_style=ultra" in e.message]
    assert errors and all(e.line == 11 for e in errors), [str(e) for e in space.errors]  # the MVAU_hls line
    assert "runtime_writeable_weights" in errors[0].hint
    ok = _cnv_space(tmp_path, "  defaults: {SIMD: all}\n  kinds:\n    MVAU_hls: {ram_style: ultra, mem_mode: "
                              "internal_decoupled, runtime_writeable_weights: 1}\n")
    assert not ok.errors


def test_the_estimate_backend_marks_what_codegen_rejects_infeasible(tmp_path):
    """A configuration FINN estimates but cannot generate code for is built (its metrics are FINN's
    estimates) and is infeasible: the study's 'FINN code generation' constraint is violated."""
    from bsopt.backends.estimate import EstimateBackend
    from bsopt.study.objectives import CODEGEN_CONSTRAINT, ObjectiveSet

    space = _cnv_space(tmp_path, "  kinds:\n    MVAU: {PE: all, SIMD: all}\n").require_valid()
    objectives = ObjectiveSet.from_space(space)
    assert CODEGEN_CONSTRAINT in [c.name for c in objectives.constraints]
    params = {p.name: p for p in space.parameters}
    widest = {name: p.choices[-1] for name, p in params.items() if name.startswith("folding.MVAU_hls_5.")}
    result = EstimateBackend.for_space(space).build(space.config_from_values({**space.values_at(0), **widest}))
    assert result.ok and result.values["codegen_issues"] >= 1  # PE = 256, SIMD = 2304: a 589,824-bit stream
    assert any("weight stream" in w for w in result.warnings)
    assert objectives.violations(result.values)[CODEGEN_CONSTRAINT] > 0


def test_set_folding_reports_the_same_rules():
    """SetFolding seeds: the folding FINN's SetFolding picks for a slow target is reported with the
    issues the estimates' strict mode raises."""
    from bsopt.estimate.autofold import set_folding
    from bsopt.lowering import lower

    graph = lower(str(prepost_model("cnv_w1a1")))
    auto = set_folding(graph, 10**9)
    assert auto.codegen_issues
    for name, issues in auto.codegen_issues.items():
        layer = graph[name]
        a = {**layer.attrs, **auto.config[name]}
        assert [str(i) for i in legality.check(layer.op_type, a, graph.fpgapart)] == [str(i) for i in issues]


def test_a_value_falls_back_only_where_finn_rejects_the_whole_entry(tmp_path):
    """ram_style=ultra with decoupled weights off Versal needs runtime-writeable weights; with
    external weights it needs nothing. FINN's rule decides per configuration, so 'ultra' is kept
    wherever either alternative holds and falls back to FINN's default only where neither does."""
    bp = tmp_path / "uram.yaml"
    bp.write_text(f"""
version: "3.0"
name: uram
model: {prepost_model('tfc_w2a2')}
target: {{part: xczu7ev-ffvc1156-2-e, clock_ns: 5.0}}
folding:
  layers:
    MVAU_hls_1:
      ram_style: [auto, ultra]
      mem_mode: [internal_decoupled, external]
      runtime_writeable_weights: [0, 1]
""")
    space = load_design_space(bp).require_valid()
    base = space.values_at(0)
    name = "folding.MVAU_hls_1."

    def entry(mode, rww):
        cfg = space.config_from_values({**base, name + "ram_style": "ultra", name + "mem_mode": mode,
                                        name + "runtime_writeable_weights": rww})
        return cfg.folding_config["MVAU_hls_1"]

    assert entry("internal_decoupled", 1)["ram_style"] == "ultra"
    assert entry("external", 0)["ram_style"] == "ultra"
    assert "ram_style" not in entry("internal_decoupled", 0)  # FINN asserts: falls back to its default
    assert not legality.check("MVAU_hls", {**space.model_info.dataflow["MVAU_hls_1"].attrs,
                                           **entry("internal_decoupled", 0)}, "xczu7ev-ffvc1156-2-e")


def test_status_says_what_finn_code_generation_rejects(tmp_path, monkeypatch, capsys):
    """Infeasible because FINN's code generation would reject them: `study status` shows the reasons
    (the builds' warnings), not only the constraint's name."""
    from bsopt.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BSOPT_WORKDIR", raising=False)
    bp = tmp_path / "wide.yaml"
    bp.write_text(f"""
version: "3.0"
name: wide
model: {prepost_model('tfc_w2a2')}
hw_compiler: {{build_steps: [step_streamline, step_minimize_bit_width]}}
target: {{part: {U250}, clock_ns: 5.0}}
folding:
  layers:
    MVAU_hls_0: {{PE: [32, 64], SIMD: [392, 784]}}
search: {{strategy: grid}}
""")
    assert main(["study", "create", "w", "--blueprint", str(bp), "--n-trials", "4", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["study", "status", "w"]) == 0
    out = capsys.readouterr().out
    # 64 * 784 * 2 bits and 32 * 784 * 2 = 50,176 exceed the ap_int headers' 32,768; 32 * 392 * 2 does not
    assert "FINN code generation violated by 3" in out and "FINN's code generation rejects" in out
    assert "weight stream" in out
