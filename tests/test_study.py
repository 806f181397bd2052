"""End-to-end studies: ask/build/tell, seeds, constraints, cache, exhaustive order, resume after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from finn_reference import SMALL_FOLDING, network_dirs, prepost_model
from optuna.trial import TrialState

from bsopt.cli import main
from bsopt.study import queries
from bsopt.study.engine import Runner, create_study, load_study

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")


def blueprint(tmp_path, folding, extra="", name="bp.yaml"):
    path = tmp_path / name
    path.write_text(f"""
version: "3.0"
name: study-test
model: {prepost_model("tfc_w2a2")}
hw_compiler:
  build_steps: [step_streamline, step_minimize_bit_width]
target: {{board: Pynq-Z1, clock_ns: 10.0}}
search: {{strategy: tpe}}
folding:
{folding}
{extra}""")
    return path


SMALL = SMALL_FOLDING  # 24 configurations


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_tpe_study_end_to_end(tmp_path):
    bp = blueprint(tmp_path, "  kinds:\n    MVAU: {PE: all, SIMD: all}\n")
    ctx = create_study("e2e", bp, sampler="tpe", seed=1, n_trials=40)
    stats = Runner(ctx, progress=False).optimize(n_trials=40)
    trials = ctx.study.get_trials()
    assert stats.trials == 40 and len(trials) == 40 and stats.failed == 0
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert trials[0].user_attrs.get("seed") == "finn_setfolding"  # starts from FINN's auto folding
    t = trials[5]
    assert t.user_attrs["config_id"].startswith("dse_") and "m:LUT" in t.user_attrs and "feasible" in t.user_attrs
    assert t.values[0] == t.user_attrs["m:throughput_fps"]
    front = queries.pareto_front(trials, ctx.objectives.directions)
    assert front and all(queries.feasible(f) for f in front)
    assert 0 < queries.hypervolume(trials, ctx.objectives.directions) <= 1.1 ** 3
    assert (tmp_path / "studies" / "bsopt.db").exists() and (tmp_path / "studies" / "cache.db").exists()


def test_identical_study_builds_nothing_the_second_time(tmp_path):
    bp = blueprint(tmp_path, SMALL)
    first = Runner(create_study("a", bp, sampler="random", seed=3), progress=False).optimize(n_trials=15)
    second = Runner(create_study("b", bp, sampler="random", seed=3), progress=False).optimize(n_trials=15)
    assert first.builds > 0
    assert second.builds == 0 and second.cache_hits == 15


def test_exhaustive_covers_the_space_exactly_once(tmp_path, capsys):
    bp = blueprint(tmp_path, SMALL)
    assert main(["blueprint", "count", str(bp)]) == 0
    count = int(capsys.readouterr().out.strip().splitlines()[-1])
    assert count == 24
    ctx = create_study("grid", bp, sampler="exhaustive")
    stats = Runner(ctx, progress=False).optimize(n_trials=1000)
    indices = [t.user_attrs["config_index"] for t in ctx.study.get_trials()]
    assert stats.trials == count and sorted(indices) == list(range(count))
    assert Runner(load_study("grid"), progress=False).optimize(n_trials=10).trials == 0  # nothing left


def test_constraints_decide_feasibility(tmp_path):
    bp = blueprint(tmp_path, SMALL, extra="objectives: [throughput_fps, LUT]\n"
                   "search:\n  strategy: grid\n  constraints:\n    - {metric: LUT, operator: '<=', value: 6000}\n",
                   name="c.yaml")
    bp.write_text(bp.read_text().replace("search: {strategy: tpe}\n", ""))
    ctx = create_study("cons", bp)
    Runner(ctx, progress=False).optimize(n_trials=100)
    trials = ctx.study.get_trials()
    assert any(not t.user_attrs["feasible"] for t in trials) and any(t.user_attrs["feasible"] for t in trials)
    for t in trials:
        lut = t.user_attrs["m:LUT"]
        assert t.user_attrs["feasible"] == (lut <= 6000 and t.user_attrs["m:LUT_util"] <= 0.7)
        assert t.user_attrs["c:LUT <= 6000"] == pytest.approx((lut - 6000) / 6000)
    front = queries.pareto_front(trials, ctx.objectives.directions)
    assert front and all(t.user_attrs["m:LUT"] <= 6000 for t in front)


def test_recreating_a_study_needs_resume(tmp_path, capsys):
    bp = blueprint(tmp_path, SMALL)
    assert main(["study", "create", "x", "--blueprint", str(bp), "--n-trials", "3", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["study", "create", "x", "--blueprint", str(bp)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["study", "create", "x", "--blueprint", str(bp), "--resume", "--n-trials", "2", "--quiet"]) == 0
    assert len(load_study("x").study.trials) == 5
    assert main(["study", "optimize", "nope"]) == 2


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path, workers):
    # exhaustive over 5*10*4*2*5 = 2000 configurations (1 worker: in the driver; 2: a worker pool)
    total = 2000
    bp = blueprint(tmp_path, SMALL.replace("[1, 4, 16]", "[1, 2, 4, 8, 16]").replace("[1, 8]", "[1, 2, 4, 8]")
                   .replace("[16, 49]", "[1, 2, 4, 7, 8, 14, 16, 28, 49, 56]")
                   + "    MVAU_hls_2: {PE: [1, 2, 4, 8, 16]}\n")
    cmd = [sys.executable, "-m", "bsopt", "study", "create", "k", "--blueprint", str(bp), "--sampler", "exhaustive",
           "--n-trials", "10000", "--workers", str(workers), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    storage = f"sqlite:///{tmp_path / 'studies' / 'bsopt.db'}"
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        done = _complete_trials(tmp_path / "studies" / "bsopt.db")
        if done >= 12:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 12 <= done < total, proc.stderr.read().decode()[-2000:]
    assert main(["study", "optimize", "k", "--n-trials", "10000", "--quiet"]) == 0
    trials = optuna.load_study(study_name="k", storage=storage).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    indices = sorted(t.user_attrs["config_index"] for t in complete)
    assert indices == list(range(total))  # every configuration exactly once


def _complete_trials(db) -> int:
    """COMPLETE trials in an SQLite study file, read-only (never creates the schema under a writer)."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_estimate_gate_prunes_before_an_expensive_backend(tmp_path):
    bp = blueprint(tmp_path, SMALL, extra=(
        "backend: {name: synthetic, options: {duration_s: 0.002, failure_rate: 0.2}}\n"
        "objectives: [throughput_fps, LUT]\n"
        "search:\n  strategy: grid\n  constraints:\n    - {metric: LUT, operator: '<=', value: 6000}\n"),
        name="gate.yaml")
    bp.write_text(bp.read_text().replace("search: {strategy: tpe}\n", ""))
    ctx = create_study("gate", bp)
    stats = Runner(ctx, progress=False).optimize(n_trials=100)
    trials = ctx.study.get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    built = [t for t in trials if t.state != TrialState.PRUNED]
    assert stats.pruned == len(pruned) > 0 and stats.builds == len(built) > 0
    for t in pruned:  # never built: only the gate's estimate is recorded, with the reason
        assert "LUT <= 6000" in t.user_attrs["pruned_reason"] and t.user_attrs["e:LUT"] > 6000
        assert "status" in t.user_attrs and "m:LUT" not in t.user_attrs
    assert all(t.user_attrs["backend"] == "synthetic" for t in built)
    # built trials are written trial by trial (one transaction for their attributes): the constraints
    # are where Optuna's samplers read them, equal to the violations shown in the user attributes
    for t in built:
        if t.state == TrialState.COMPLETE:
            shown = {k[2:]: v for k, v in t.user_attrs.items() if k.startswith("c:")}
            assert shown and {f"constraints:{k}": v for k, v in shown.items()} == {
                k: v for k, v in t.system_attrs.items() if k.startswith("constraints:")}
    # the synthetic backend fails a deterministic fifth of the configurations it builds
    failed = [t for t in built if t.state == TrialState.FAIL]
    assert failed and all(t.user_attrs["error"] == "synthetic build failure" for t in failed)
    assert stats.trials == 24


def test_long_studies_keep_a_bounded_working_copy(tmp_path):
    bp = blueprint(tmp_path, "  kinds:\n    MVAU: {PE: all, SIMD: all}\n")
    ctx = create_study("long", bp, sampler="nsga2", seed=0)
    runner = Runner(ctx, progress=False)
    runner.max_history, runner.flush_every = 60, 20
    stats = runner.optimize(n_trials=300)
    stored = ctx.study.get_trials()
    assert stats.trials == 300 and len(stored) == 300
    assert sorted(t.number for t in stored) == list(range(300))
    assert all(t.state == TrialState.COMPLETE for t in stored)
    front = queries.pareto_front(stored, ctx.objectives.directions)
    working = runner._study.get_trials()
    assert len(working) <= 60 + len(front) + 20  # the front, the latest trials, the last unflushed batch
    # the working copy still holds the whole feasible front (as the sampler's elite)
    ids = {t.user_attrs["config_id"] for t in working}
    assert {t.user_attrs["config_id"] for t in front} <= ids


def test_bulk_writes_equal_optunas_own_add_trials(tmp_path):
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import create_trial

    from bsopt.storage import open_storage, rdb

    url = f"sqlite:///{tmp_path / 'bulk.db'}"
    storage = open_storage(url)
    assert rdb.supported(storage)
    a = optuna.create_study(study_name="a", storage=storage, directions=["maximize", "minimize"])
    b = optuna.create_study(study_name="b", storage=storage, directions=["maximize", "minimize"])
    states = [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED]
    trials = [create_trial(
        state=states[i % 3], values=[float(i), float("inf") if i % 7 == 0 else i * 0.5] if i % 3 == 0 else None,
        params={"x": i % 5, "c": ["u", "v"][i % 2]},
        distributions={"x": IntDistribution(0, 10), "c": CategoricalDistribution(["u", "v"])},
        user_attrs={"config_id": f"dse_{i}", "m:LUT": i * 1.5, "feasible": bool(i % 2), "nested": {"a": [1, 2]}},
        system_attrs={"constraints": [0.1 * i, -1.0]}) for i in range(120)]
    a.add_trials(trials[:50])
    a.add_trials(trials[50:])
    rdb.add_trials(b, trials[:50])  # two batches: numbering continues
    rdb.add_trials(b, trials[50:])
    fields = ("number", "state", "values", "params", "distributions", "user_attrs", "system_attrs",
              "datetime_start", "datetime_complete", "intermediate_values")
    ta = optuna.load_study(study_name="a", storage=url).get_trials()
    tb = optuna.load_study(study_name="b", storage=url).get_trials()
    assert len(ta) == len(tb) == 120
    for x, y in zip(ta, tb, strict=True):
        assert {f: getattr(x, f) for f in fields} == {f: getattr(y, f) for f in fields}
    assert rdb.supported(optuna.storages.InMemoryStorage()) is False


def test_seeds_do_not_depend_on_what_was_imported_before(tmp_path):
    """The first call in a fresh process gives the same SetFolding seeds as later ones (the cost models
    must be registered before the seeds' cycle bounds are computed)."""
    bp = blueprint(tmp_path, "  kinds:\n    MVAU: {PE: all, SIMD: all}\n")
    code = ("import sys\nfrom bsopt.space.design_space import load_design_space\n"
            "from bsopt.explore.seeds import folding_seeds\n"
            f"s = load_design_space({str(bp)!r})\nprint(len(folding_seeds(s)), len(folding_seeds(s)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1] and int(out[0]) > 1


def test_large_studies_skip_the_plot_but_print_the_front(tmp_path, monkeypatch, capsys):
    from bsopt.study import dashboard

    monkeypatch.setattr(dashboard, "PUBLISH_MAX_TRIALS", 3)  # stands for 20,000
    bp = blueprint(tmp_path, SMALL)
    assert main(["study", "create", "big", "--blueprint", str(bp), "--n-trials", "5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "plot skipped for 5 trials: bsopt study plot big" in out
    assert "feasible Pareto set of big" in out  # the front reads a few attributes of each trial: always shown
    assert not (tmp_path / "studies" / "big" / "pareto.html").exists()
    run = (tmp_path / "studies" / "big" / "runs.jsonl").read_text()
    assert "skipped: 5 trials" in run
    assert main(["study", "plot", "big"]) == 0  # on demand it still works
