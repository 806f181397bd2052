"""A DesignSpace's BuildConfigs evaluated by the estimate backend, end to end."""

from __future__ import annotations

import pytest
from finn_reference import NETWORKS, load_json, network_dirs, prepost_model

from bsopt.backends.estimate import EstimateBackend
from bsopt.backends.result import BuildMetrics
from bsopt.estimate.network import estimate_network
from bsopt.space.design_space import load_design_space

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")


def test_target_fps_mode_reproduces_finns_build(tmp_path):
    bp = tmp_path / "fps.yaml"
    bp.write_text(f"""
name: tfc-fps
clock_ns: 10.0
board: Pynq-Z1
model: {prepost_model("tfc_w2a2")}
folding:
  mode: target_fps
  target_fps: {{choices: [50000, 100000]}}
""")
    space = load_design_space(bp)
    assert not space.errors
    cfg = space.config_from_values({"folding.target_fps": 50000})
    est = EstimateBackend(space.model_path).estimate(cfg)
    report = NETWORKS / "tfc_w2a2" / "report"
    assert est.layer_cycles == load_json(report / "estimate_layer_cycles.json")
    assert est.resources_report() == load_json(report / "estimate_layer_resources.json")
    assert est.performance() == load_json(report / "estimate_network_performance.json")
    faster = EstimateBackend(space.model_path).estimate(space.config_from_values({"folding.target_fps": 100000}))
    assert faster.max_cycles < est.max_cycles


def test_per_layer_configs_and_backend_choices(tmp_path):
    bp = tmp_path / "pl.yaml"
    bp.write_text(f"""
version: "3.0"
name: pl
model: {prepost_model("tfc_w2a2")}
target: {{part: xczu7ev-ffvc1156-2-e, clock_ns: 5.0}}
hw_compiler:
  kernels: [[Thresholding, [rtl, hls]]]
  build_steps: [step_streamline, step_minimize_bit_width]
search: {{strategy: tpe}}
folding:
  kinds:
    MVAU: {{PE: [1, 2], SIMD: [4, 16]}}
""")
    space = load_design_space(bp)
    assert not space.errors
    backend = EstimateBackend(space.model_path)
    for k in (0, 7, space.get_total_combinations() - 1):
        cfg = space.config(k)
        est = backend.estimate(cfg)
        graph = backend.graph_for(cfg, cfg.target["part"], "latest")
        direct = estimate_network(graph, cfg.folding_config, part="xczu7ev-ffvc1156-2-e", clock_ns=5.0)
        assert est.layer_cycles == direct.layer_cycles and est.total == direct.total
        assert set(est.layer_resources) == {name for name in graph.names}
        thr = "Thresholding_hls_0" if cfg.kernel_selections["Thresholding"] == "hls" else "Thresholding_rtl_0"
        assert thr in est.layer_resources
    m = BuildMetrics.from_estimate(est)
    assert m.throughput == est.estimated_throughput_fps and m.clock_frequency == 200.0
    assert m.total_power is None and 0 < m.lut_utilization < 1

