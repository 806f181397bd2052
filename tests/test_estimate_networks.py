"""Whole-network estimates and FINN's auto folding against FINN's own reports."""

from __future__ import annotations

import json
import math

import pytest
from finn_reference import NETWORKS, load_json, lowering_kwargs, network_dirs, prepost_model

from bsopt.estimate.autofold import set_folding, target_cycles
from bsopt.estimate.network import estimate_network
from bsopt.lowering import lower

NETS = network_dirs()
pytestmark = pytest.mark.skipif(not NETS, reason="FINN reference data not found")


def _setup(name):
    meta = load_json(NETWORKS / name / "meta.json")
    graph = lower(prepost_model(name), **lowering_kwargs(name))
    d = NETWORKS / name
    folding = load_json(d / "folding_config.json") if (d / "folding_config.json").exists() else \
        load_json(d / "auto_folding_config.json")
    return meta, graph, folding


def _same(a, b):
    if isinstance(a, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


@pytest.mark.parametrize("name", NETS)
def test_reports_equal_finns(name, tmp_path):
    meta, graph, folding = _setup(name)
    est = estimate_network(graph, folding, part=meta["fpga_part"], clock_ns=meta["synth_clk_period_ns"])
    report = NETWORKS / name / "report"
    est.write_reports(tmp_path)
    for fname in ("estimate_layer_resources.json", "estimate_layer_cycles.json",
                  "estimate_network_performance.json"):
        ours = json.loads((tmp_path / fname).read_text())
        theirs = load_json(report / fname)
        assert _same(theirs, ours), fname
        assert list(ours) == list(theirs), f"{fname}: layer order"


@pytest.mark.parametrize("name", [n for n in NETS if (NETWORKS / n / "auto_folding_config.json").exists()])
def test_auto_folding_equals_finns(name):
    meta, graph, expected = _setup(name)
    target = target_cycles(meta["target_fps"], meta["synth_clk_period_ns"])
    result = set_folding(graph, target, mvau_wwidth_max=36, part=meta["fpga_part"])
    assert result.config == expected


def test_auto_folding_flags_what_finn_codegen_rejects():
    # CNV-w1a1 at a low target: SetFolding leaves MVAU_hls_5 (MW=2304) at a SIMD < 2304/1024
    meta, graph, _ = _setup("cnv_w1a1")
    result = set_folding(graph, target_cycles(100, 10.0), part="xc7z020clg400-1")
    assert not result.buildable
    assert any("1024" in msg for issues in result.codegen_issues.values() for msg in issues)
    assert set_folding(graph, target_cycles(3000, 10.0), part="xc7z020clg400-1").buildable


def test_device_fit():
    meta, graph, folding = _setup("cnv_w1a1")
    est = estimate_network(graph, folding, part="xc7z020clg400-1", clock_ns=10.0)
    # 25785 LUT of 53200, 140 BRAM18 of 280 (FINN's part table)
    assert math.isclose(est.fit.utilisation["LUT"], 25785 / 53200)
    assert math.isclose(est.fit.utilisation["BRAM_18K"], 140 / 280)
    assert est.fit.fits
    tight = estimate_network(graph, folding, part="xc7z020clg400-1", clock_ns=10.0,
                             resource_limits={"LUT": 0.4})
    assert tight.fit.exceeded == ["LUT"] and not tight.fit.fits


def test_folding_defaults_apply_first_then_per_layer_entries():
    meta, graph, _ = _setup("tfc_w2a2")
    cfg = {"Defaults": {"SIMD": [4, ["MVAU_hls"]]}, "MVAU_hls_0": {"SIMD": 16}}
    est = estimate_network(graph, cfg, part=meta["fpga_part"], clock_ns=10.0)
    assert est.layer_cycles["MVAU_hls_0"] == 64 * 784 // 16  # the per-layer entry wins, as in FINN's ApplyConfig
    assert est.layer_cycles["MVAU_hls_1"] == 64 * 64 // 4
