"""The finn backend against real FINN (dev 73ba5ed built from ../shared/finn_src: no docker, no Vivado).

Studies whose builds are real ``python -m finn.builder.build_dataflow`` processes, at the estimate
output stage: every build's metrics must equal what bsopt's embedded estimate says for the same
configuration (per-layer folding on TFC and CNV, FINN's own SetFolding from target_fps). And the
folders ``bsopt study export --pareto`` writes must build with FINN unchanged, to the reports bsopt
exported beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from optuna.trial import TrialState
from real_finn import SPACES, finn_command, run_finn, with_real_finn

from bsopt.backends.estimate import EstimateBackend
from bsopt.cli import main
from bsopt.study.engine import load_study

pytest.importorskip("brevitas")
pytestmark = [pytest.mark.finn, pytest.mark.models, pytest.mark.usefixtures("model_cache")]

#: what FINN's estimate reports give a build (bsopt's metric names)
FINN_METRICS = ("throughput_fps", "latency_ns", "max_cycles", "critical_path_cycles", "LUT", "BRAM_18K", "URAM",
                "DSP")


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _study(tmp_path, blueprint: str, n_trials: int, **search):
    bp = with_real_finn(SPACES / blueprint, tmp_path / "bp.yaml", **search)
    name = Path(blueprint).stem
    assert main(["study", "create", name, "--blueprint", str(bp), "--n-trials", str(n_trials), "--seed", "3",
                 "--workers", "2", "--quiet"]) == 0
    return load_study(name)


def _built_by_finn(ctx) -> list:
    trials = ctx.study.get_trials(deepcopy=False)
    assert not [t.user_attrs.get("error") for t in trials if t.state == TrialState.FAIL]
    built = [t for t in trials if t.state == TrialState.COMPLETE and "worker" in t.user_attrs]
    for t in built:
        assert t.user_attrs["backend"] == "finn" and not t.user_attrs["cache_hit"]
        assert "FINN applied no folding" not in t.user_attrs.get("warnings", ""), t.user_attrs["warnings"]
    return built


def _assert_metrics_equal_the_estimate(ctx, trials) -> None:
    target = ctx.space.fixed_target()
    estimator = EstimateBackend(ctx.space.model_path, target["finn_version"], target["part"])
    for t in trials:
        cfg = ctx.space.config_from_values(ctx.ospace.to_values(t.params))
        build = ctx.workdir.resolve() / "builds" / cfg.config_id
        dcfg = json.loads((build / "dataflow_build_config.json").read_text())
        assert dcfg["generate_outputs"] == ["estimate_reports"]
        assert "Completed successfully" in (build / "build.log").read_text()
        finn = {k: t.user_attrs[f"m:{k}"] for k in FINN_METRICS}
        est = estimator.build(cfg)
        assert est.ok, est.error_message
        assert {k: est.values[k] for k in FINN_METRICS} == finn, cfg.config_id


def test_tfc_per_layer_folding_built_by_finn_equals_the_estimate(tmp_path):
    ctx = _study(tmp_path, "tfc_folding.yaml", 6, strategy="random")
    built = _built_by_finn(ctx)
    assert len(built) >= 3  # FINN's SetFolding seeds come first; the gate may prune the odd random one
    _assert_metrics_equal_the_estimate(ctx, built)
    # the folding config bsopt wrote is the one FINN applied: its per-layer cycles are in FINN's report
    t = built[0]
    cfg = ctx.space.config_from_values(ctx.ospace.to_values(t.params))
    out = ctx.workdir.resolve() / "builds" / cfg.config_id / "output"
    cycles = json.loads((out / "report" / "estimate_layer_cycles.json").read_text())
    folding = json.loads((out.parent / "folding_config.json").read_text())
    assert set(folding) - {"Defaults"} <= set(cycles)


def test_cnv_per_layer_folding_built_by_finn_equals_the_estimate(tmp_path):
    ctx = _study(tmp_path, "cnv_folding.yaml", 3, strategy="random")
    built = _built_by_finn(ctx)
    assert built
    _assert_metrics_equal_the_estimate(ctx, built)


def test_finns_own_target_fps_folding_equals_bsopts_set_folding(tmp_path):
    """FINN runs SetFolding itself from target_fps (the build steps vary too); bsopt's estimate runs
    its own reproduction of it: both must give the same design."""
    ctx = _study(tmp_path, "tfc_brainsmith.yaml", 4, strategy="random")
    built = _built_by_finn(ctx)
    # a flow that skips step_minimize_bit_width keeps fractional thresholds, which FINN's code
    # generation rejects: the estimate gate keeps such a configuration from FINN
    pruned = [t for t in ctx.study.get_trials(deepcopy=False) if t.state == TrialState.PRUNED]
    assert all("integer thresholds" in t.user_attrs["pruned_reason"] for t in pruned)
    assert all(t.params["step.minimize_bit_width"] == "~" for t in pruned if "step.minimize_bit_width" in t.params)
    assert len(built) + len(pruned) == 4 and len(built) >= 2
    _assert_metrics_equal_the_estimate(ctx, built)
    assert len({t.user_attrs["m:max_cycles"] for t in built}) > 1  # different targets, different designs


def test_exported_pareto_folders_build_with_finn_unchanged(tmp_path):
    bp = SPACES / "tfc_folding.yaml"
    assert main(["study", "create", "exp", "--blueprint", str(bp), "--n-trials", "12", "--seed", "0",
                 "--quiet"]) == 0
    assert main(["study", "export", "exp", "--pareto", "--out", str(tmp_path / "pareto")]) == 0
    folders = sorted((tmp_path / "pareto").iterdir())
    assert folders
    for d in folders[:: max(1, len(folders) // 3)][:3]:  # a spread of the front: FINN takes ~4 s each
        before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
        proc = run_finn(d)
        assert proc.returncode == 0 and "Completed successfully" in proc.stdout, proc.stdout[-3000:] + proc.stderr
        for name in ("estimate_network_performance.json", "estimate_layer_resources.json",
                     "estimate_layer_cycles.json"):
            finn = json.loads((d / "output" / "report" / name).read_text())
            ours = json.loads((d / "report" / name).read_text())
            assert ours == finn, (d.name, name)
        assert {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()} == before  # FINN read them as they are


def test_skipped_or_disabled_bit_width_minimisation_equals_finn(tmp_path):
    """FINN's step_minimize_bit_width minimises weights/accumulators (its minimize_bit_width option) and
    always rounds thresholds; a flow without the step does neither. Every combination with the step is
    built by FINN; without it the thresholds stay fractional, which FINN's code generation rejects, so
    the estimate gate keeps those from FINN (their estimates equal FINN's all the same: the reference
    networks' tests)."""
    bp = tmp_path / "bits.yaml"
    bp.write_text(f"""
name: bit-widths
clock_ns: 10.0
board: Pynq-Z1
output: estimates
model: zoo:tfc?w=2&a=2
design_space:
  kernels: [finn:MVAU, finn:Thresholding, finn:LabelSelect]
  steps: [qonnx_to_finn, tidy_up, streamline, convert_to_hw, create_dataflow_partition, specialize_layers,
          apply_folding_config, [minimize_bit_width, "~"], generate_estimate_reports]
parameters:
  finn_config.minimize_bit_width: {{choices: [true, false]}}
folding:
  layers:
    MVAU_hls_0: {{PE: [16], SIMD: [49]}}
    Thresholding_rtl_0: {{PE: [8]}}
objectives: [throughput_fps, LUT, BRAM_18K]
search: {{strategy: grid}}
backend: {{name: finn, options: {{command: {json.dumps(finn_command())}}}}}
""")
    assert main(["study", "create", "bits", "--blueprint", str(bp), "--n-trials", "4", "--workers", "2",
                 "--quiet"]) == 0
    ctx = load_study("bits")
    built = _built_by_finn(ctx)
    assert len(built) == 2
    _assert_metrics_equal_the_estimate(ctx, built)
    assert len({t.user_attrs["m:LUT"] for t in built}) == 2  # the option minimises or not
    pruned = [t for t in ctx.study.get_trials(deepcopy=False) if t.state == TrialState.PRUNED]
    assert len(pruned) == 2 and all("integer thresholds" in t.user_attrs["pruned_reason"] for t in pruned)


def test_the_build_cache_key_names_the_finn_that_builds(tmp_path):
    """A cached FINN result is reused only by the same FINN: its location, source and Vivado setting
    are in the key, as the command's own Python reports them."""
    from finn_reference import prepost_model

    from bsopt.backends.finn import FinnBackend

    def identity(**env):
        b = FinnBackend(str(prepost_model("tfc_w2a2")), options={"command": finn_command(), "env": env},
                        workdir=tmp_path)
        b.check_environment()
        return b.cache_identity()

    tools = identity()["tools"]
    assert Path(tools["finn"]["path"]).name == "build_dataflow.py" and tools["finn"]["mtime"] > 0
    assert Path(tools["qonnx"]["path"]).name == "modelwrapper.py"
    assert tools["vivado"].endswith("2024.2")  # FINN's wrapper points XILINX_VIVADO at a version folder
    assert identity(FINN_EXTRA="1") != identity()  # the environment is part of it too


PW_BLUEPRINT = """
version: "3.0"
name: cnv-parallel-window
model: zoo:cnv?w=1&a=1
hw_compiler:
  kernels: [MVAU, ConvolutionInputGenerator, Pool, Thresholding, LabelSelect]
target: {{part: xcu250-figd2104-2L-e, clock_ns: 2.5}}
folding:
  defaults: {{PE: all, SIMD: all}}
  kinds:
    ConvolutionInputGenerator: {{parallel_window: all}}
objectives: cycles_area
search: {{strategy: exact}}
backend: {{name: finn, options: {{command: {command}}}}}
global: {{output_stage: estimates}}
"""


def test_parallel_window_front_points_built_by_finn_have_bsopts_metrics(tmp_path):
    """A CNV on a large part at a fast clock with 'parallel_window: all': the exact front holds
    designs whose sliding windows use FINN's parallel implementation, and real FINN, given their
    folding configs, reports the metrics bsopt's front says (a sample of them;
    benchmarks/finn_front_check.py checks every point)."""
    from bsopt.backends.finn import FinnBackend
    from bsopt.explore.exact import exact_front
    from bsopt.space.design_space import load_design_space
    from bsopt.study.objectives import ObjectiveSet

    bp = tmp_path / "pw.yaml"
    bp.write_text(PW_BLUEPRINT.format(command=json.dumps(finn_command())))
    space = load_design_space(bp, for_builds=True).require_valid()
    objectives = ObjectiveSet.from_space(space)
    front = exact_front(space, objectives)
    cfgs = [(p, space.config_from_values(p["values"])) for p in front.points]
    windowed = [(p, c) for p, c in cfgs
                if any(isinstance(e, dict) and e.get("parallel_window") == 1 for e in c.folding_config.values())]
    assert windowed, "no front point uses parallel_window=1"
    sample = cfgs[:: max(1, len(cfgs) // 5)][:5]  # spread over the front (at 400 MHz every point windows)
    target = space.fixed_target()
    finn = FinnBackend(space.model_path, target["finn_version"], target["part"], space.blueprint.backend_options,
                       workdir=tmp_path / "builds")
    for point, cfg in sample:
        result = finn.build(cfg)
        assert result.ok, result.error_message
        for metric in ("max_cycles", "LUT", "BRAM_18K", "URAM", "DSP"):
            assert result.values[metric] == point["metrics"][metric], (cfg.config_id, metric)


def test_co_design_designs_export_as_trained_models_finn_builds_to_bsopts_numbers(tmp_path, monkeypatch):
    """Issue 21's acceptance: the digits co-design study's Pareto designs export as a trained QONNX model
    + FINN folding config, and FINN builds them unchanged to the estimates bsopt reported."""
    pytest.importorskip("sklearn")
    monkeypatch.setenv("BSOPT_MODEL_CACHE", str(tmp_path / "models"))
    bp = tmp_path / "digits.yaml"
    bp.write_text((SPACES / "digits_codesign.yaml").read_text().replace("epochs: 20", "epochs: 3"))
    assert main(["study", "create", "qd", "--blueprint", str(bp), "-n", "3", "--quiet"]) == 0
    assert main(["study", "export", "qd", "--pareto", "--out", str(tmp_path / "pareto")]) == 0
    folders = sorted((tmp_path / "pareto").iterdir())
    models = {}
    for d in folders:  # one design per trained model, plus the front's extremes
        models.setdefault((d / "model.onnx").read_bytes(), d)
    chosen = list(models.values())[:3]
    assert len(models) >= 2  # designs of several quantisations are on the front
    for d in chosen:
        metrics = json.loads((d / "metrics.json").read_text())
        assert 0 < metrics["metrics"]["accuracy"] <= 1
        proc = run_finn(d)
        assert proc.returncode == 0 and "Completed successfully" in proc.stdout, proc.stdout[-3000:] + proc.stderr
        finn = json.loads((d / "output" / "report" / "estimate_network_performance.json").read_text())
        res = json.loads((d / "output" / "report" / "estimate_layer_resources.json").read_text())["total"]
        assert finn["max_cycles"] == metrics["metrics"]["max_cycles"]
        assert {k: res[k] for k in ("LUT", "BRAM_18K")} == {k: metrics["metrics"][k] for k in ("LUT", "BRAM_18K")}
