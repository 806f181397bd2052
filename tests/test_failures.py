"""Systematic failure is loud: a study whose builds keep failing stops within a few trials with the
error once and a non-zero exit; a run without a feasible trial says why and exits non-zero; ``study
status`` groups the failure reasons. And the fake FINN rejects what real FINN rejects."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from finn_reference import REFERENCE, SMALL_FOLDING, network_dirs, prepost_model, synthetic_blueprint
from optuna.trial import TrialState
from real_finn import finn_python

from bsopt.backends.finn import FinnBackend
from bsopt.backends.finn_outputs import classify_failure
from bsopt.cli import main
from bsopt.study.engine import load_study
from bsopt.study.runner import MAX_CONSECUTIVE_FAILURES

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")

FAKE = Path(__file__).with_name("fake_finn.py")
SMALL = SMALL_FOLDING  # 24 configurations


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAKE_FINN_MODE", raising=False)
    return tmp_path


def test_a_build_error_that_repeats_stops_the_study_with_one_message(tmp_path, capsys):
    bp = synthetic_blueprint(tmp_path, 'failure_rate: 1.0, failure_message: "no such Vivado: /opt/x/vivado"',
                             SMALL, strategy="random")
    assert main(["study", "create", "s", "--blueprint", str(bp), "--n-trials", "24", "--workers", "1",
                 "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("no such Vivado: /opt/x/vivado") == 1
    assert f"{MAX_CONSECUTIVE_FAILURES} builds failed in a row and none succeeded" in captured.err
    assert "bsopt study optimize s" in captured.err
    trials = [t for t in load_study("s").study.get_trials() if t.state.is_finished()]
    assert len(trials) == MAX_CONSECUTIVE_FAILURES  # one worker: nothing else was in flight
    assert all(t.state == TrialState.FAIL for t in trials)
    # status groups them by message
    assert main(["study", "status", "s"]) == 0
    out = capsys.readouterr().out
    assert f"failed {MAX_CONSECUTIVE_FAILURES}x (FAILED, e.g. trial 0): no such Vivado: /opt/x/vivado" in out
    # the limit is configurable; 0 never stops (and the run still ends non-zero: nothing feasible)
    assert main(["study", "optimize", "s", "--n-trials", "3", "--max-failures", "2", "--workers", "1", "--quiet"]) == 1
    assert len([t for t in load_study("s").study.get_trials() if t.state.is_finished()]) == \
        MAX_CONSECUTIVE_FAILURES + 2
    assert main(["study", "optimize", "s", "--n-trials", "9", "--max-failures", "0", "--workers", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no feasible configuration in study 's'" in err and "16 failed" in err
    assert main(["study", "optimize", "s", "--n-trials", "1", "--max-failures", "-1", "--quiet"]) == 2


def test_failures_between_successes_do_not_stop_a_study(tmp_path):
    """Some configurations fail, others build: the streak never reaches the limit."""
    bp = synthetic_blueprint(tmp_path, "failure_rate: 0.3", SMALL, strategy="grid")
    assert main(["study", "create", "mixed", "--blueprint", str(bp), "--n-trials", "24", "--quiet"]) == 0
    trials = load_study("mixed").study.get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(trials) == 24 and 0 < len(failed) < 24


def test_the_blueprints_limit_applies_and_bad_values_are_located(tmp_path, capsys):
    bp = synthetic_blueprint(tmp_path, "failure_rate: 1.0", SMALL, strategy="random")
    text = bp.read_text().replace("search: {strategy: random}", "search: {strategy: random, max_consecutive_failures: 2}")
    bp.write_text(text)
    assert main(["study", "create", "lim", "--blueprint", str(bp), "--n-trials", "24", "--workers", "1",
                 "--quiet"]) == 1
    assert len([t for t in load_study("lim").study.get_trials() if t.state.is_finished()]) == 2
    bp.write_text(text.replace("max_consecutive_failures: 2", "max_consecutive_failures: -3"))
    assert main(["blueprint", "validate", str(bp)]) == 2  # a blueprint with errors is bad input: 2
    assert "max_consecutive_failures must be 0 or more" in capsys.readouterr().err


def test_no_feasible_trial_says_which_constraint_and_exits_non_zero(tmp_path, capsys):
    bp = synthetic_blueprint(tmp_path, "duration_s: 0", SMALL, strategy="random")
    bp.write_text(bp.read_text().replace("search: {strategy: random}", "search:\n  strategy: random\n"
                                         "  constraints: [{metric: LUT, operator: '<=', value: 10}]"))
    assert main(["study", "create", "inf", "--blueprint", str(bp), "--n-trials", "6", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no feasible configuration in study 'inf'" in err
    # the expensive backend's estimate gate saw each design exceed LUT <= 10 before building it
    assert "pruned by the estimate gate" in err and "LUT <= 10" in err
    assert main(["study", "status", "inf"]) == 0
    assert "pruned 6x by the estimate gate: estimate violates LUT <= 10" in capsys.readouterr().out


def _exact_blueprint(tmp_path, constraints: str, name: str) -> Path:
    bp = tmp_path / f"{name}.yaml"
    bp.write_text(f"""
version: "3.0"
name: {name}
model: {prepost_model("tfc_w2a2")}
hw_compiler: {{build_steps: [step_streamline, step_minimize_bit_width]}}
target: {{board: Pynq-Z1, clock_ns: 10.0}}
folding:
{SMALL}
search:
  strategy: exact
  constraints: [{constraints}]
""")
    return bp


def test_an_empty_exact_front_is_an_error_naming_it(tmp_path, capsys):
    """Bounds that each some configuration meets (the early fit check passes) but none meets both:
    one metric at its least over the 24 configurations (brute force), another just below its least
    among those configurations, yet not below its least overall."""
    from bsopt.backends.estimate import EstimateBackend
    from bsopt.space.design_space import load_design_space

    free = load_design_space(_exact_blueprint(tmp_path, "", "free"))
    backend = EstimateBackend(free.model_path, "latest", "xc7z020clg400-1")
    built = [backend.build(free.config(k)).values for k in range(free.get_total_combinations())]
    pairs = [(m1, m2, min(v[m1] for v in built)) for m1 in ("LUT", "BRAM_18K", "max_cycles")
             for m2 in ("LUT", "BRAM_18K", "max_cycles") if m1 != m2]
    m1, m2, b1, b2 = next((m1, m2, b1, min(v[m2] for v in built if v[m1] <= b1) - 1) for m1, m2, b1 in pairs
                          if min(v[m2] for v in built if v[m1] <= b1) - 1 >= min(v[m2] for v in built))
    assert not any(v[m1] <= b1 and v[m2] <= b2 for v in built)
    bp = _exact_blueprint(tmp_path, f"{{metric: {m1}, operator: '<=', value: {b1}}}, "
                          f"{{metric: {m2}, operator: '<=', value: {b2}}}", "together")
    assert main(["study", "create", "ex", "--blueprint", str(bp), "--n-trials", "10", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no feasible configuration" in err and "the exact front is empty" in err


def test_a_space_nothing_can_fit_is_refused_before_a_study_exists(tmp_path, capsys):
    bp = _exact_blueprint(tmp_path, "{metric: LUT, operator: '<=', value: 10}", "nothing-fits")
    assert main(["study", "create", "ex", "--blueprint", str(bp), "--n-trials", "10", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nothing can fit" in err and "LUTs against a limit of 10" in err
    assert not (tmp_path / "studies" / "ex").exists()


def test_a_wrong_model_path_is_one_error_before_any_trial(tmp_path, capsys):
    bp = synthetic_blueprint(tmp_path, "duration_s: 0", SMALL)
    bp.write_text(bp.read_text().replace(str(prepost_model("tfc_w2a2")), str(tmp_path / "missing.onnx")))
    assert main(["study", "create", "m", "--blueprint", str(bp), "--n-trials", "30", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "missing.onnx" in err and "not found" in err
    assert not (tmp_path / "studies" / "m").exists()


def test_a_finn_build_that_always_fails_stops_with_finns_error_and_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_FINN_MODE", "fail")
    bp = tmp_path / "finn.yaml"
    bp.write_text(f"""
version: "3.0"
name: finn-fails
model: {prepost_model("tfc_w2a2")}
hw_compiler: {{build_steps: [step_qonnx_to_finn, step_streamline, step_apply_folding_config, step_minimize_bit_width,
                             step_generate_estimate_reports]}}
target: {{board: Pynq-Z1, clock_ns: 10.0}}
backend: {{name: finn, options: {{command: [{sys.executable}, {FAKE}, "{{build_dir}}"],
                                 env: {{FAKE_FINN_REFERENCE: {REFERENCE / "networks" / "tfc_w2a2"}}}}}}}
search: {{strategy: nsga2}}
folding:
{SMALL}""")
    assert main(["study", "create", "ff", "--blueprint", str(bp), "--n-trials", "40", "--workers", "2",
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "builds failed in a row" in err and "PE does not divide NumChannels" in err
    finished = [t for t in load_study("ff").study.get_trials() if t.state.is_finished()]
    assert MAX_CONSECUTIVE_FAILURES <= len(finished) <= MAX_CONSECUTIVE_FAILURES + 1  # + the one in flight


# ----------------------------------------------------------------------------- fake vs real FINN
def _build_folder(tmp_path: Path, name: str, **changes) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "model.onnx").write_bytes(b"")
    cfg = {"output_dir": "output", "synth_clk_period_ns": 10.0, "fpga_part": "xc7z020clg400-1",
           "generate_outputs": ["estimate_reports"], "enable_build_pdb_debug": False,
           "steps": ["step_qonnx_to_finn"], **changes}
    for k in [k for k, v in changes.items() if v is None]:
        cfg.pop(k)
    (d / "dataflow_build_config.json").write_text(json.dumps(cfg))
    return d


BAD_CONFIGS = {
    "enum_name": ({"generate_outputs": ["ESTIMATE_REPORTS"]}, "'ESTIMATE_REPORTS' is not a valid DataflowOutputType"),
    "shell_name": ({"shell_flow_type": "VIVADO_ZYNQ"}, "'VIVADO_ZYNQ' is not a valid ShellFlowType"),
    "no_clock": ({"synth_clk_period_ns": None}, "KeyError: 'synth_clk_period_ns'"),
    "unknown_step": ({"steps": ["step_bert_streamlining"]}, "KeyError: 'step_bert_streamlining'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_the_fake_rejects_what_real_finn_rejects(case, tmp_path, monkeypatch):
    changes, message = BAD_CONFIGS[case]
    monkeypatch.setenv("FAKE_FINN_REFERENCE", str(REFERENCE / "networks" / "tfc_w2a2"))
    fake = subprocess.run([sys.executable, str(FAKE), str(_build_folder(tmp_path, "fake", **changes))],
                          capture_output=True, text=True)
    assert fake.returncode != 0 and message in fake.stderr, fake.stderr[-2000:]
    assert message in classify_failure(fake.stdout + fake.stderr, fake.returncode)[0]


@pytest.mark.finn
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_real_finn_rejects_the_same_configs(case, tmp_path):
    changes, message = BAD_CONFIGS[case]
    d = _build_folder(tmp_path, "real", **changes)
    (d / "model.onnx").write_bytes(Path(prepost_model("tfc_w2a2")).read_bytes())  # tfc_w2a2's is not gzipped
    real = subprocess.run([str(finn_python()), "-m", "finn.builder.build_dataflow", str(d)], capture_output=True,
                          text=True, timeout=300)
    assert real.returncode != 0 and message in real.stderr, real.stderr[-2000:]


def test_finn_ignoring_a_folding_entry_is_a_warning_on_the_build(tmp_path):
    """FINN's ApplyConfig skips entries that name no node (it only warns, into build_dataflow.log):
    the build's reports are then not of the configuration, and the trial says so."""
    from bsopt.space.design_space import load_design_space

    bp = tmp_path / "w.yaml"
    bp.write_text(f"""
version: "3.0"
name: warn
model: {prepost_model("tfc_w2a2")}
hw_compiler: {{build_steps: [step_qonnx_to_finn, step_apply_folding_config, step_minimize_bit_width, step_generate_estimate_reports]}}
target: {{board: Pynq-Z1, clock_ns: 10.0}}
backend: {{name: finn, options: {{command: [{sys.executable}, {FAKE}, "{{build_dir}}"],
                                 env: {{FAKE_FINN_REFERENCE: {REFERENCE / "networks" / "tfc_w2a2"}}}}}}}
folding:
{SMALL}""")
    space = load_design_space(bp).require_valid()
    t = space.fixed_target()
    backend = FinnBackend(space.model_path, t["finn_version"], t["part"], space.blueprint.backend_options,
                          workdir=tmp_path / "studies" / "w")
    cfg = space.config(0)
    assert backend.build(cfg).warnings == []
    odd = dataclasses.replace(cfg, folding_config={**cfg.folding_config, "MVAU_hls_9": {"PE": 2}})
    result = backend.build(odd)
    assert result.ok and any("FINN applied no folding to MVAU_hls_9" in w for w in result.warnings)


# ----------------------------------------------------------------------------- a new user's mistakes
def _finn_blueprint(tmp_path: Path, command: str, env: str = "", name: str = "cmd.yaml") -> Path:
    bp = tmp_path / name
    bp.write_text(f"""
version: "3.0"
name: commands
model: {prepost_model("tfc_w2a2")}
hw_compiler: {{build_steps: [step_qonnx_to_finn, step_apply_folding_config, step_minimize_bit_width, step_generate_estimate_reports]}}
target: {{board: Pynq-Z1, clock_ns: 10.0}}
backend: {{name: finn, options: {{command: {command}{env}}}}}
search: {{strategy: grid}}
folding:
{SMALL}""")
    return bp


def test_a_python_without_finn_is_refused_before_any_trial(tmp_path, capsys):
    bp = _finn_blueprint(tmp_path, f'[{sys.executable}, -m, finn.builder.build_dataflow, "{{build_dir}}"]')
    assert main(["study", "create", "nofinn", "--blueprint", str(bp), "--n-trials", "5", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot import finn.builder.build_dataflow" in err and "setup_finn.sh" in err
    assert main(["study", "list"]) == 0 and "nofinn" not in capsys.readouterr().out


def test_an_unset_environment_variable_in_the_backend_env_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BSOPT_TEST_UNSET_XILINX", raising=False)
    bp = _finn_blueprint(tmp_path, f'[{sys.executable}, {FAKE}, "{{build_dir}}"]',
                         env=", env: {FINN_XILINX_PATH: \"${BSOPT_TEST_UNSET_XILINX}\"}")
    assert main(["study", "create", "unset", "--blueprint", str(bp), "--n-trials", "5", "--quiet"]) == 2
    assert "BSOPT_TEST_UNSET_XILINX" in capsys.readouterr().err


def test_a_command_that_is_not_finn_fails_uncached_and_the_fixed_command_builds(tmp_path, monkeypatch, capsys):
    """`/bin/true`-like commands exit 0 without FINN's output: FAILED, saying so, never cached; the
    cache is per FINN command, so the right command then builds every configuration."""
    monkeypatch.setenv("FAKE_FINN_REFERENCE", str(REFERENCE / "networks" / "tfc_w2a2"))
    bp = _finn_blueprint(tmp_path, f'[{sys.executable}, -c, "print(1)"]', name="true.yaml")
    assert main(["study", "create", "t", "--blueprint", str(bp), "--n-trials", "3", "--max-failures", "3",
                 "--workers", "1", "--quiet"]) == 1
    assert "without running FINN's build_dataflow" in capsys.readouterr().err
    assert main(["study", "optimize", "t", "--n-trials", "2", "--max-failures", "0", "--workers", "1",
                 "--quiet"]) == 1
    assert "2 built, 0 from cache" in capsys.readouterr().out  # environment failures are not cached
    good = _finn_blueprint(tmp_path, f'[{sys.executable}, {FAKE}, "{{build_dir}}"]', name="good.yaml")
    assert main(["study", "create", "g", "--blueprint", str(good), "--n-trials", "5", "--workers", "1",
                 "--quiet"]) == 0
    assert "5 built, 0 from cache" in capsys.readouterr().out
    assert main(["study", "create", "g2", "--blueprint", str(good), "--n-trials", "5", "--workers", "1",
                 "--quiet"]) == 0
    assert "0 built, 5 from cache" in capsys.readouterr().out  # same FINN, same configurations


def test_synthetic_results_are_cached_per_backend_options(tmp_path, capsys):
    bad = synthetic_blueprint(tmp_path, "failure_rate: 1.0", SMALL, name="bad.yaml")
    good = synthetic_blueprint(tmp_path, "failure_rate: 0.0", SMALL, name="good.yaml")
    assert main(["study", "create", "b", "--blueprint", str(bad), "--n-trials", "3", "--max-failures", "0",
                 "--workers", "1", "--quiet"]) == 1
    assert main(["study", "create", "ok", "--blueprint", str(good), "--n-trials", "3", "--workers", "1",
                 "--quiet"]) == 0
    assert "3 built, 0 from cache, 3 feasible" in capsys.readouterr().out


def test_bad_run_options_and_a_changed_blueprint_on_resume_leave_nothing_behind(tmp_path, capsys):
    bp = synthetic_blueprint(tmp_path, "duration_s: 0", SMALL)
    for args in (["--max-failures", "-1"], ["--n-trials", "0"], ["--workers", "0"], ["--executor", "slurm"],
                 ["--timeout", "-5"]):
        assert main(["study", "create", "x", "--blueprint", str(bp), "--quiet", *args]) == 2, args
    assert main(["study", "list"]) == 0 and " x " not in capsys.readouterr().out
    assert main(["study", "create", "x", "--blueprint", str(bp), "--n-trials", "2", "--quiet"]) == 0
    other = synthetic_blueprint(tmp_path, "duration_s: 0", SMALL.replace("[1, 8]", "[1, 2, 8]"), name="other.yaml")
    capsys.readouterr()
    assert main(["study", "create", "x", "--blueprint", str(other), "--resume", "--n-trials", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "exists with another design space" in err and "bp.yaml" in err
    assert main(["study", "create", "x", "--blueprint", str(bp), "--resume", "--n-trials", "2", "--quiet"]) == 0
