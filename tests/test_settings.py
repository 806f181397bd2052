"""One study root (--workdir / $BSOPT_WORKDIR / global.working_directory) and the blueprint's search
settings that change a run (search.seed, search.timeout_minutes)."""

from __future__ import annotations

import time

import pytest
from finn_reference import SMALL_FOLDING, network_dirs, prepost_model

from bsopt.cli import main

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")


def blueprint(tmp_path, search="{strategy: random}", extra="", name="bp.yaml"):
    path = tmp_path / name
    path.write_text(f"""
version: "3.0"
name: settings-test
model: {prepost_model("tfc_w2a2")}
hw_compiler:
  build_steps: [step_streamline]
target: {{board: Pynq-Z1, clock_ns: 10.0}}
search: {search}
folding:
{SMALL_FOLDING}
{extra}""")
    return path


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BSOPT_WORKDIR", raising=False)
    return tmp_path


def test_workdir_option_moves_every_file_of_a_study(tmp_path, monkeypatch):
    monkeypatch.setenv("BSOPT_WORKDIR", "")  # restored after the test (the option sets it for workers)
    bp = blueprint(tmp_path)
    assert main(["--workdir", "elsewhere", "study", "create", "a", "--blueprint", str(bp), "--n-trials", "5",
                 "--quiet"]) == 0
    root = tmp_path / "elsewhere"
    assert (root / "bsopt.db").is_file() and (root / "cache.db").is_file()
    assert (root / "a" / "runs.jsonl").is_file() and (root / "a" / "pareto.html").is_file()
    assert not (tmp_path / "studies").exists()
    assert main(["--workdir", "elsewhere", "study", "status", "a"]) == 0
    monkeypatch.setenv("BSOPT_WORKDIR", "")
    assert main(["study", "status", "a"]) == 2  # the default root has no such study
    monkeypatch.setenv("BSOPT_WORKDIR", str(root))  # the environment variable does what the option does
    assert main(["study", "status", "a"]) == 0


def test_blueprint_working_directory_holds_the_study_folder(tmp_path):
    import bsopt

    bp = blueprint(tmp_path, extra="global: {working_directory: runs/tfc}\n")
    s = bsopt.create_study("b", bp)
    s.optimize(n_trials=3, progress=False)
    assert s.workdir == (tmp_path / "runs" / "tfc" / "b").resolve()
    assert (s.workdir / "runs.jsonl").is_file()
    assert (tmp_path / "studies" / "bsopt.db").is_file()  # the storage stays in the study root
    assert bsopt.load_study("b").workdir == s.workdir  # recorded: found again from anywhere


def test_search_seed_makes_studies_reproducible(tmp_path):
    import bsopt

    bp = blueprint(tmp_path, search="{strategy: tpe, seed: 7}")
    runs = []
    for name in ("s1", "s2"):
        s = bsopt.create_study(name, bp)
        assert s.optuna.user_attrs["seed"] == 7
        s.optimize(n_trials=12, progress=False)
        runs.append([t.params for t in s.optuna.get_trials()])
    assert runs[0] == runs[1]
    other = bsopt.create_study("s3", bp, seed=8)  # --seed overrides the blueprint
    assert other.optuna.user_attrs["seed"] == 8


def test_search_timeout_minutes_bounds_a_run(tmp_path):
    import bsopt

    bp = blueprint(tmp_path, search="{strategy: random, timeout_minutes: 0.01, max_evaluations: 100000}",
                   extra="backend: {name: synthetic, options: {duration_s: 0.05}}\n")
    s = bsopt.create_study("t", bp)
    t0 = time.time()
    stats = s.optimize(progress=False)
    assert time.time() - t0 < 30 and 0 < stats.trials < 100000  # 0.6 s of launching, then the run ends


def test_brainsmith_keys_without_effect_are_warned_about(tmp_path):
    from bsopt.space.design_space import load_design_space

    bp = blueprint(tmp_path, extra="global: {log_level: DEBUG, input_type: uint8}\n")
    warnings = [str(w) for w in load_design_space(bp).validate() if w.severity == "warning"]
    assert any("global.log_level" in w and "no effect" in w for w in warnings)
    assert any("global.input_type" in w for w in warnings)
