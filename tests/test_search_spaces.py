"""The example blueprints in search_spaces/ validate, count and decode."""

from __future__ import annotations

from pathlib import Path

import pytest
from real_finn import is_finn_blueprint, with_real_finn

from bsopt.space.design_space import load_design_space

pytest.importorskip("brevitas")
pytestmark = [pytest.mark.models, pytest.mark.usefixtures("model_cache")]

SPACES = sorted((Path(__file__).resolve().parents[1] / "search_spaces").glob("[a-z]*.yaml"))


def test_there_is_a_v3_and_a_01_blueprint_for_every_zoo_model():
    from bsopt.models import ZOO

    names = {p.stem for p in SPACES}
    for model in ZOO:
        assert f"{model}_folding" in names and f"{model}_brainsmith" in names


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_example_blueprint_is_valid_and_decodes(path):
    space = load_design_space(path)
    assert not space.errors, [str(e) for e in space.errors]
    assert not [e for e in space.validate() if e.severity == "warning"]
    n = space.get_total_combinations()
    assert n > 1
    if space.blueprint.quantization is not None:  # quantisations x the folding configurations of each
        assert n % space.blueprint.quantization.size == 0
        n //= space.blueprint.quantization.size
    for k in (0, n // 2, n - 1):
        cfg = space.config(k)
        assert cfg.index == k and cfg.config_id.endswith(f"_config_{k:05d}")
        assert space.config_from_values(cfg.params).content_hash() == cfg.content_hash()
        if cfg.folding_config:  # the exact solver's per-layer path writes the same entries
            names = [n for n in cfg.folding_config if n != "Defaults"]
            assert space.folding_entries(cfg.params, names) == {n: cfg.folding_config[n] for n in names}
            assert space.folding_entries(cfg.params, names[::3]) == {n: cfg.folding_config[n] for n in names[::3]}
    assert space.blueprint.format == ("0.1" if path.stem.endswith("_brainsmith") else "v3")


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.finn) if is_finn_blueprint(p) else p
                                  for p in SPACES], ids=lambda p: p.stem)
def test_every_shipped_blueprint_runs_a_study_to_a_feasible_front(path, tmp_path, monkeypatch, capsys):
    """A short study of each blueprint in search_spaces/ ends (exit 0) with a non-empty feasible Pareto
    set. A blueprint whose builds need Vivado runs against real FINN at the estimate output stage."""
    from bsopt.cli import main
    from bsopt.study import queries
    from bsopt.study.engine import load_study

    monkeypatch.chdir(tmp_path)
    n = 20
    codesign = "quantization:" in path.read_text()
    if codesign:
        n = 3  # quantisations trained (each adds the designs of its exact hardware front)
    if is_finn_blueprint(path):
        path = with_real_finn(path, tmp_path / path.name)  # skips (or fails in CI) without real FINN
        n = 6
    name = path.stem
    assert main(["study", "create", name, "--blueprint", str(path), "--n-trials", str(n), "--seed", "0",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "feasible Pareto set" in out and "Pareto plot written to" in out
    ctx = load_study(name)
    base = ctx.space.global_config.working_directory or "studies"  # a study's folder: <base>/<name>
    assert ctx.workdir == (tmp_path / base / name).resolve()
    assert (ctx.workdir / "pareto.html").exists() and (ctx.workdir / "runs.jsonl").exists()
    trials = ctx.study.get_trials(deepcopy=False)
    trained = [t for t in trials if "training" in t.user_attrs]
    assert 0 < len(trained if codesign else trials) <= n
    assert not [t.user_attrs.get("error") for t in trials if t.state.name == "FAIL"]
    front = queries.pareto_front(trials, ctx.objectives.directions)
    assert front
    assert main(["study", "status", name]) == 0
    assert f"{len(trials)} trials" in capsys.readouterr().out
    assert main(["study", "export", name, "--pareto", "--out", str(tmp_path / "exp")]) == 0
    exported = list((tmp_path / "exp").iterdir())
    assert len(exported) == len(front)
    assert all((d / "report" / "estimate_network_performance.json").exists() for d in exported)
    assert all((d / "dataflow_build_config.json").exists() and (d / "model.onnx").exists() for d in exported)
    if ctx.space.parameters and any(p.group == "folding" and p.name.count(".") == 2 for p in ctx.space.parameters):
        assert all((d / "folding_config.json").exists() for d in exported)
