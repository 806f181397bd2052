"""The public Python API (bsopt.create_study / load_study / Study): docs/api.md's example runs as
written, and its answers agree with the study's trials read directly from Optuna and with the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import bsopt
from bsopt.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_like(tmp_path, monkeypatch, model_cache):
    """A working directory that looks like the repository root (its search_spaces/), nothing else."""
    (tmp_path / "search_spaces").symlink_to(ROOT / "search_spaces")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _doc_example() -> str:
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "docs/api.md has no python example"
    return blocks[0]


def _dominates(a, b, directions):
    better = [(x >= y) if d == "maximize" else (x <= y) for x, y, d in zip(a, b, directions, strict=True)]
    strictly = [(x > y) if d == "maximize" else (x < y) for x, y, d in zip(a, b, directions, strict=True)]
    return all(better) and any(strictly)


def test_the_documented_example_runs_as_written(repo_like, capsys):
    ns = {}
    exec(compile(_doc_example(), "docs/api.md", "exec"), ns)
    out = capsys.readouterr().out
    assert re.search(r"^50 trials, \d+ feasible$", out, re.M)
    assert re.search(r"^\d+ configurations on the front$", out, re.M)
    assert [p.parent.resolve() for p in ns["folders"]] == [repo_like / "api-demo-builds"]
    assert (ns["folders"][0] / "dataflow_build_config.json").is_file()
    # the blueprint's global.working_directory (studies/tfc) holds the study's folder
    assert ns["page"] == (repo_like / "studies" / "tfc" / "api-demo" / "pareto.html").resolve() and ns["page"].is_file()
    assert "api-demo" not in {s["name"] for s in bsopt.list_studies()}  # the example deletes its study


def test_acceptance_snippet_and_answers_match_optuna_and_the_cli(repo_like, capsys):
    s = bsopt.create_study("x", "search_spaces/tfc_folding.yaml")
    s.optimize(n_trials=50, progress=False)
    front = s.pareto()
    assert s.n_trials == 50 and front

    # independent reading: every COMPLETE feasible trial from Optuna, front by brute force
    raw = optuna.load_study(study_name="x", storage="sqlite:///studies/bsopt.db").get_trials()
    metrics = [m for m, _ in s.objectives]
    directions = [d for _, d in s.objectives]
    feasible = [t for t in raw if t.state == TrialState.COMPLETE and t.user_attrs.get("feasible")]
    vals = {t.number: [t.user_attrs[f"m:{m}"] for m in metrics] for t in feasible}
    expected = {n for n, v in vals.items()
                if not any(_dominates(w, v, directions) for m, w in vals.items() if m != n)}
    assert {r["trial"] for r in front} == expected
    first, d0 = metrics[0], directions[0]
    column = [r[first] for r in front]
    assert column == sorted(column, reverse=d0 == "maximize")  # best first in the first objective

    lut = s.best("LUT")
    assert lut["LUT"] == min(t.user_attrs["m:LUT"] for t in feasible)
    assert s.best()["trial"] in expected  # the knee is on the front

    assert main(["study", "pareto", "x", "--json"]) == 0
    cli_rows = json.loads(capsys.readouterr().out)
    assert [r["trial"] for r in cli_rows] == [r["trial"] for r in front]  # the CLI prints what the API returns

    assert main(["study", "best", "x", "--metric", "LUT"]) == 0
    assert f"best LUT: trial {lut['trial']} " in capsys.readouterr().out
    assert main(["study", "best", "x", "--metric", "LUT", "--direction", "up"]) == 2
    assert main(["study", "best", "x"]) == 0
    assert f"knee point of the Pareto front: trial {s.best()['trial']} " in capsys.readouterr().out

    again = bsopt.load_study("x")
    assert again.strategy == s.strategy and [r["trial"] for r in again.pareto()] == [r["trial"] for r in front]
    assert again.status()["pareto_size"] == len(front)
    assert main(["study", "delete", "x", "--yes"]) == 0
    assert "x" not in {r["name"] for r in bsopt.list_studies()}


def test_api_errors_are_bsopt_errors(repo_like):
    with pytest.raises(bsopt.InputError, match="no study named"):
        bsopt.load_study("missing")
    s = bsopt.create_study("e", "search_spaces/tfc_folding.yaml")
    with pytest.raises(bsopt.InputError, match="number of trials must be at least 1") as exc:
        s.optimize(n_trials=0)
    assert exc.value.where == "n_trials / --n-trials"  # said in the API's and the CLI's words
    with pytest.raises(bsopt.InputError, match="unknown run option 'worker'") as exc:
        s.optimize(n_trials=1, worker=2)
    assert "workers" in exc.value.hint
    with pytest.raises(bsopt.InputError, match="no trial 7"):
        s.export(repo_like / "out", trials=7)
    with pytest.raises(bsopt.InputError, match="unknown trial selection 'knee'"):
        s.export(repo_like / "out", trials="knee")
    with pytest.raises(bsopt.InputError, match="no study named"):
        bsopt.delete_study("missing")
    s.optimize(n_trials=5, progress=False)
    with pytest.raises(bsopt.InputError, match="cannot sort by 'nonexistent_metric'"):
        s.pareto(sort="-nonexistent_metric")
    # a metric the estimate backend does not report: said, not an empty answer that reads "nothing feasible"
    with pytest.raises(bsopt.InputError, match="no trial of study 'e' records FF"):
        s.best("FF")
    with pytest.raises(bsopt.InputError, match="records FF"):
        s.pareto(objectives=["-FF", "-LUT"])
    assert s.best("LUT") is not None
    # one metric as a string is that metric (not its letters)
    assert s.pareto(objectives="LUT") == s.pareto(objectives=["LUT"]) and len(s.pareto(objectives="LUT")) == 1
    # resuming with another strategy is said, not silently ignored
    with pytest.raises(bsopt.InputError, match="cannot be resumed with sampler 'random'"):
        bsopt.create_study("e", "search_spaces/tfc_folding.yaml", sampler="random", resume=True)
    assert bsopt.create_study("e", "search_spaces/tfc_folding.yaml", resume=True).n_trials == 5


def test_study_delete_without_a_terminal_refuses_and_keeps_the_study(repo_like, capsys, monkeypatch):
    import io

    s = bsopt.create_study("keep", "search_spaces/tfc_folding.yaml")
    s.optimize(n_trials=2, progress=False)
    assert (s.workdir / "runs.jsonl").is_file()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a script or CI: nothing to answer with
    assert main(["study", "delete", "keep"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert "keep" in {s["name"] for s in bsopt.list_studies()}
    assert main(["study", "delete", "keep", "--yes"]) == 0
    assert "keep" not in {s["name"] for s in bsopt.list_studies()}
    assert not s.workdir.exists() and s.workdir.parent.is_dir()  # its folder went, nothing above it
    # --keep-files keeps the folder
    k = bsopt.create_study("keep2", "search_spaces/tfc_folding.yaml")
    k.optimize(n_trials=1, progress=False)
    assert bsopt.delete_study("keep2", keep_files=True) is None and k.workdir.is_dir()
