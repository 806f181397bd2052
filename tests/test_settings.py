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
  build_steps: [step_streamline, step_minimize_bit_width]
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


def test_search_and_global_sections_arrive_typed_with_defaults(tmp_path):
    from bsopt.blueprint.config import DEFAULT_MAX_COMBINATIONS
    from bsopt.choices import FinnVersion, OutputStage, StrategyName
    from bsopt.space.design_space import load_design_space

    bp = blueprint(tmp_path, search="{strategy: nsga2, seed: 7, max_evaluations: 40, parallel_builds: 2, "
                   "timeout_minutes: 1.5, constraints: [{metric: LUT, operator: '<=', value: 30000}]}",
                   extra="global: {output_stage: estimates, timeout_minutes: 3, log_level: debug}\n")
    space = load_design_space(str(bp))
    s, g = space.search_config, space.global_config
    assert s.strategy is StrategyName.NSGA2 and (s.seed, s.max_evaluations, s.parallel_builds) == (7, 40, 2)
    assert s.timeout_minutes == 1.5 and s.max_consecutive_failures == 5  # the documented default
    assert [(c.metric, c.operator, c.value) for c in s.constraints] == [("LUT", "<=", 30000.0)]
    assert g.output_stage is OutputStage.ESTIMATES and g.timeout_minutes == 3 and g.log_level == "DEBUG"
    assert (g.cache_results, g.save_artifacts, g.working_directory) == (True, True, None)
    assert g.max_combinations == DEFAULT_MAX_COMBINATIONS
    # a BuildConfig carries the global section as plain values (its content hash is over JSON)
    cfg = space.config(0)
    assert cfg.global_config["output_stage"] == "estimates" and type(cfg.global_config["output_stage"]) is str
    # defaults: auto for every format (a v3 blueprint without search: no longer walks the space in order)
    plain = load_design_space(str(blueprint(tmp_path, search="{}", name="plain.yaml")))
    assert plain.search_config.strategy is StrategyName.AUTO and plain.search_config.seed is None
    assert FinnVersion.parse("dev") is FinnVersion.LATEST and FinnVersion.parse(" 0.10.1") is FinnVersion.V0_10_1


def test_unknown_finn_version_is_a_located_blueprint_error(tmp_path):
    from bsopt.space.design_space import load_design_space

    bp = tmp_path / "v.yaml"
    bp.write_text(blueprint(tmp_path).read_text().replace("clock_ns: 10.0}", "clock_ns: 10.0, finn_version: 0.9}"))
    errors = [e for e in load_design_space(str(bp)).validate() if e.severity == "error"]
    assert len(errors) == 1 and "unknown FINN version '0.9'" in errors[0].message
    assert errors[0].key_path == "target.finn_version" and "0.10.1" in errors[0].hint


def test_an_explicit_root_wins_over_the_blueprints_working_directory(tmp_path, monkeypatch):
    """Two roots given on the command line never share a study folder (a relative working_directory
    would put both under the directory bsopt runs in)."""
    monkeypatch.setenv("BSOPT_WORKDIR", "")
    bp = blueprint(tmp_path, extra="global: {working_directory: runs/tfc}\n")
    for root in ("wd1", "wd2"):
        assert main(["--workdir", root, "study", "create", "w", "--blueprint", str(bp), "--n-trials", "3",
                     "--quiet"]) == 0
        assert (tmp_path / root / "w" / "runs.jsonl").read_text().count("\n") == 1
    assert not (tmp_path / "runs").exists()
