"""The finn backend against a fake FINN that replays the recorded FINN runs in ../shared/finn_reference,
plus FINN's failure modes; and studies whose expensive stage is FINN."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
from finn_reference import REFERENCE, network_dirs, prepost_model
from optuna.trial import TrialState

from bsopt.backends.estimate import EstimateBackend
from bsopt.backends.finn import FinnBackend
from bsopt.cli import main
from bsopt.errors import InputError
from bsopt.space.design_space import load_design_space

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")

FAKE = Path(__file__).with_name("fake_finn.py")
STEPS = ["step_qonnx_to_finn", "step_tidy_up", "step_streamline", "step_convert_to_hw",
         "step_create_dataflow_partition", "step_specialize_layers", "step_target_fps_parallelization",
         "step_apply_folding_config", "step_minimize_bit_width", "step_generate_estimate_reports"]


def reference(name="tfc_w2a2") -> Path:
    return Path(REFERENCE) / "networks" / name


def blueprint(tmp_path: Path, *, stage="estimates", options="", folding="{mode: target_fps, target_fps: 50000}",
              extra="") -> Path:
    path = tmp_path / "finn.yaml"
    path.write_text(f"""
version: "3.0"
name: finn-test
model: {prepost_model("tfc_w2a2")}
hw_compiler:
  build_steps: {json.dumps(STEPS)}
target: {{board: Pynq-Z1, clock_ns: 10.0}}
global: {{output_stage: {stage}}}
backend:
  name: finn
  options:
    command: [{sys.executable}, {FAKE}, "{{build_dir}}"]
    env: {{FAKE_FINN_REFERENCE: {reference()}}}
{options}
folding: {folding}
{extra}""")
    return path


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAKE_FINN_MODE", raising=False)
    return tmp_path


def backend_and_config(tmp_path, **kw):
    space = load_design_space(blueprint(tmp_path, **kw)).require_valid()
    t = space.fixed_target()
    backend = FinnBackend(space.model_path, t["finn_version"], t["part"], space.blueprint.backend_options,
                          workdir=tmp_path / "studies" / "s")
    return backend, space.config(0), space


def test_estimate_stage_replays_finns_reports_and_matches_bsopts_estimate(tmp_path):
    backend, cfg, space = backend_and_config(tmp_path)
    result = backend.build(cfg)
    assert result.ok, result.error_message
    ref = reference()
    perf = json.loads((ref / "report" / "estimate_network_performance.json").read_text())
    total = json.loads((ref / "report" / "estimate_layer_resources.json").read_text())["total"]
    assert result.values["throughput_fps"] == perf["estimated_throughput_fps"]
    assert result.values["max_cycles"] == perf["max_cycles"] == 1792
    assert result.values["latency_ns"] == perf["estimated_latency_ns"]
    assert {k: result.values[k] for k in ("LUT", "BRAM_18K", "URAM", "DSP")} == total
    assert result.values["LUT_util"] == pytest.approx(total["LUT"] / 53200)
    assert result.metrics.raw_metrics["sources"] == {"throughput_fps": "estimate", "resources": "estimate"}
    # what bsopt's embedded estimate says for the same configuration is what FINN reported
    est = EstimateBackend(space.model_path, "latest", "xc7z020clg400-1").build(cfg)
    assert {k: est.values[k] for k in result.values} == result.values
    # the build folder is FINN's: model, configs, log; products linked into artifacts/
    build = Path(result.artifacts["build_dir"])
    assert build == (tmp_path / "studies" / "s" / "builds" / cfg.config_id).resolve()
    dcfg = json.loads((build / "dataflow_build_config.json").read_text())
    assert dcfg["target_fps"] == 50000 and dcfg["synth_clk_period_ns"] == 10.0 and dcfg["board"] == "Pynq-Z1"
    assert dcfg["generate_outputs"] == ["estimate_reports"] and dcfg["steps"] == STEPS
    assert dcfg["enable_build_pdb_debug"] is False and dcfg["fpga_part"] == "xc7z020clg400-1"
    reports = Path(result.artifacts["reports"])
    assert json.loads((reports / "estimate_network_performance.json").read_text()) == perf
    assert "Completed successfully" in (reports / "build.log").read_text()
    assert "ip_blocks" not in result.artifacts and "bitstream" not in result.artifacts


def test_rtl_stage_takes_rtlsim_throughput_and_synthesis_resources(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FINN_WNS", "-0.4")
    backend, cfg, _ = backend_and_config(tmp_path, stage="rtl")
    result = backend.build(cfg)
    assert result.ok, result.error_message
    perf = json.loads((reference() / "report" / "estimate_network_performance.json").read_text())
    build = Path(result.artifacts["build_dir"])
    rtlsim = json.loads((build / "output" / "report" / "rtlsim_performance.json").read_text())
    ooc = json.loads((build / "output" / "report" / "ooc_synth_and_timing.json").read_text())
    assert result.values["throughput_fps"] == rtlsim["stable_throughput[images/s]"] != perf["estimated_throughput_fps"]
    assert result.values["latency_ns"] == pytest.approx((perf["critical_path_cycles"] + 17) * 10.0)
    assert result.values["LUT"] == ooc["LUT"] and result.values["FF"] == ooc["FF"]
    assert result.values["BRAM_18K"] == 5 + 2 * 3  # RAMB18 plus two per RAMB36
    assert result.values["fmax_mhz"] == pytest.approx(1e3 / 10.4)
    assert result.metrics.raw_metrics["estimate"]["max_cycles"] == perf["max_cycles"]  # estimates kept beside
    assert any("timing not met: WNS -0.4" in w for w in result.warnings)
    for group in ("reports", "ip_blocks", "synthesis"):
        assert Path(result.artifacts[group]).is_dir()
    assert (Path(result.artifacts["ip_blocks"]) / "stitched_ip" / "finn_design_wrapper.v").exists()
    assert (Path(result.artifacts["synthesis"]) / "results_finn_design_wrapper" / "res.txt").exists()
    # a timing constraint turns the negative slack into a failure
    backend, cfg, _ = backend_and_config(tmp_path, stage="rtl", options="    timing_constraint: true")
    failed = backend.build(cfg)
    assert failed.status == "FAILED" and "timing not met: WNS -0.4" in failed.error_message
    assert not failed.recoverable


def test_bitfile_stage_takes_post_synthesis_resources_power_and_the_bitstream(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FINN_POWER", "1.734")
    backend, cfg, _ = backend_and_config(tmp_path, stage="bitfile")
    result = backend.build(cfg)
    assert result.ok, result.error_message
    total = json.loads((reference() / "report" / "estimate_layer_resources.json").read_text())["total"]
    assert result.values["LUT"] == total["LUT"] + 4000 and result.values["BRAM_18K"] == 7 + 2 * 4
    assert result.values["power_w"] == 1.734 and result.metrics.total_power == 1.734
    assert result.metrics.raw_metrics["sources"]["resources"] == "post_synth"
    bit = Path(result.artifacts["bitstream"])
    assert (bit / "finn-accel.bit").read_bytes().endswith(b"bitstream") and (bit / "driver").is_dir()
    assert (Path(result.artifacts["synthesis"]) / "post_synth_resources.xml").exists()


@pytest.mark.parametrize("mode, status, recoverable, message", [
    ("fail", "FAILED", False, "FINN exception: AssertionError: Thresholding_hls_0: PE does not divide"),
    ("vivado", "FAILED", False, "Vivado/HLS error: ERROR: [Synth 8-439]"),
    ("license", "FAILED", True, "tool license unavailable"),
    ("oom", "FAILED", True, "FINN was killed by SIGKILL (out of memory?)"),
    ("missing", "FAILED", False, "without writing report/estimate_network_performance.json"),
    ("corrupt", "FAILED", False, "corrupt JSON in report/estimate_layer_resources.json"),
])
def test_failure_modes_are_classified(tmp_path, monkeypatch, mode, status, recoverable, message):
    monkeypatch.setenv("FAKE_FINN_MODE", mode)
    backend, cfg, _ = backend_and_config(tmp_path)
    result = backend.build(cfg)
    assert result.status == status and result.recoverable is recoverable
    assert message in result.error_message
    if mode in ("fail", "vivado", "license"):
        assert "Running step: step_qonnx_to_finn" in result.logs  # the log tail travels with the result


def test_partial_outputs_fall_back_to_the_estimate_with_warnings(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FINN_MODE", "partial")
    backend, cfg, _ = backend_and_config(tmp_path, stage="rtl")
    result = backend.build(cfg)
    assert result.ok and result.values["max_cycles"] == 1792
    assert result.metrics.raw_metrics["sources"] == {"throughput_fps": "estimate", "resources": "estimate"}
    assert len(result.warnings) == 2 and "rtlsim_performance.json missing" in result.warnings[0]


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_hang_times_out_and_kills_finn_with_its_children(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("FAKE_FINN_MODE", "hang")
    # 3 s: on a loaded machine the fake FINN may need more than a second to start its child
    backend, cfg, _ = backend_and_config(tmp_path, options="    timeout_s: 3")
    result = backend.build(cfg)
    assert result.status == "TIMEOUT" and "timed out after 3 s" in result.error_message
    child = int((Path(result.artifacts["build_dir"]) / "child.pid").read_text())
    deadline = time.time() + 5
    while time.time() < deadline and not _gone(child):  # the kill is delivered asynchronously
        time.sleep(0.1)
    assert _gone(child)


def test_a_study_build_timeout_kills_finn_with_the_worker(tmp_path, monkeypatch):
    import time

    from bsopt.execute.base import BackendSpec, Task
    from bsopt.execute.local import LocalExecutor

    monkeypatch.setenv("FAKE_FINN_MODE", "hang")
    _, cfg, space = backend_and_config(tmp_path)
    t = space.fixed_target()
    spec = BackendSpec("finn", space.model_path, t["finn_version"], t["part"], space.blueprint.backend_options,
                       str(tmp_path / "studies" / "w"))
    with LocalExecutor(spec, 1, timeout=2.0) as ex:
        ex.submit(Task(cfg))
        (task, result), = ex.poll()
    assert result.status == "TIMEOUT"
    pid_file = tmp_path / "studies" / "w" / "builds" / cfg.config_id / "child.pid"
    child = int(pid_file.read_text())
    deadline = time.time() + 5
    while time.time() < deadline and not _gone(child):
        time.sleep(0.1)
    assert _gone(child)  # the worker's process group took FINN's Vivado-like child with it


def test_a_missing_finn_command_is_an_input_error(tmp_path, capsys):
    bp = blueprint(tmp_path)
    bp.write_text(bp.read_text().replace(f"command: [{sys.executable}, {FAKE}", "command: [no-such-finn, x"))
    space = load_design_space(bp).require_valid()
    with pytest.raises(InputError, match="FINN command 'no-such-finn' was not found"):
        FinnBackend(space.model_path, "latest", "xc7z020clg400-1", space.blueprint.backend_options)
    # reported before any study is created
    assert main(["study", "create", "nofinn", "--blueprint", str(bp), "--n-trials", "1", "--quiet"]) == 2
    assert "no-such-finn" in capsys.readouterr().err
    assert main(["study", "create", "nofinn", "--blueprint", str(blueprint(tmp_path)), "--quiet"]) == 0


def test_study_with_finn_as_the_expensive_stage(tmp_path, capsys, monkeypatch):
    per_layer = ("\n  layers:\n    MVAU_hls_0: {PE: [4, 8, 16], SIMD: [16, 49]}\n"
                 "    MVAU_hls_1: {PE: [4, 8, 16], SIMD: [8, 16]}")
    extra = "search:\n  strategy: grid\n  constraints:\n    - {metric: LUT, operator: '<=', value: 4150}\n"
    bp = blueprint(tmp_path, folding=per_layer, extra=extra)
    assert main(["study", "create", "f", "--blueprint", str(bp), "--n-trials", "36", "--workers", "2",
                 "--finn-budget", "5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "build budget of 5 reached" in out
    storage = f"sqlite:///{tmp_path / 'studies' / 'bsopt.db'}"
    trials = optuna.load_study(study_name="f", storage=storage).get_trials()
    built = [t for t in trials if "worker" in t.user_attrs]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(built) == 5 and all(t.user_attrs["backend"] == "finn" for t in built)
    assert pruned and all("estimate violates LUT <= 4150" in t.user_attrs["pruned_reason"] for t in pruned)
    for t in built:  # the fake replays one recorded run: real and estimated metrics side by side
        assert t.state == TrialState.COMPLETE
        assert t.user_attrs["m:max_cycles"] == 1792 and "e:max_cycles" in t.user_attrs
        assert t.user_attrs["e:LUT"] <= 4150
        build = tmp_path / "studies" / "f" / "builds" / t.user_attrs["config_id"]
        folding = json.loads((build / "folding_config.json").read_text())
        assert folding["MVAU_hls_0"]["PE"] in (4, 8, 16)
        assert (build / "artifacts" / "reports" / "estimate_layer_resources.json").exists()
    assert len(pruned) == 8  # grid order: configurations 4-11 exceed the LUT bound, 0-3 and 12 are built
    # only estimate-Pareto candidates: a configuration whose estimate an earlier build's dominates is skipped
    bp2 = blueprint(tmp_path, folding=per_layer, extra="search: {strategy: grid}\n")
    (tmp_path / "p").mkdir()
    monkeypatch.chdir(tmp_path / "p")  # its own build cache: every configuration goes through the gate
    storage = f"sqlite:///{tmp_path / 'p' / 'studies' / 'bsopt.db'}"
    assert main(["study", "create", "p", "--blueprint", str(bp2), "--n-trials", "36", "--workers", "1",
                 "--pareto-candidates", "--quiet"]) == 0
    trials = optuna.load_study(study_name="p", storage=storage).get_trials()
    skipped = [t for t in trials if "not a Pareto candidate" in t.user_attrs.get("pruned_reason", "")]
    built = [t for t in trials if "worker" in t.user_attrs]
    assert skipped and built and len(skipped) + len(built) == 36

    def point(t):  # throughput up, LUT and BRAM down
        return (-t.user_attrs["e:throughput_fps"], t.user_attrs["e:LUT"], t.user_attrs["e:BRAM_18K"])

    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    for t in trials:
        earlier = [point(b) for b in built if b.number < t.number]
        assert any(dominates(e, point(t)) for e in earlier) == (t in skipped)
