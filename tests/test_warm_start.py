"""Warm starts: same space (trials added, nothing rebuilt), compatible space (best configurations
enqueued and re-evaluated), incompatible (a clear error, no study left behind)."""

from __future__ import annotations

import optuna
import pytest
from finn_reference import network_dirs, prepost_model
from optuna.trial import TrialState

from bsopt.cli import main
from bsopt.study import queries
from bsopt.study.engine import Runner, load_study

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")

FOLDING = """  layers:
    MVAU_hls_0: {PE: [1, 4, 16], SIMD: [16, 49]}
    MVAU_hls_1: {PE: [1, 8], SIMD: [8, 16]}
    MVAU_hls_2: {PE: [1, 8], ram_style: [auto, distributed]}
"""


def blueprint(tmp_path, name="bp.yaml", *, clock=10.0, folding=FOLDING, model="tfc_w2a2", strategy="random",
              lut=9000):
    path = tmp_path / name
    path.write_text(f"""
version: "3.0"
name: ws-test
model: {prepost_model(model)}
hw_compiler:
  build_steps: [step_streamline, step_minimize_bit_width]
target: {{board: Pynq-Z1, clock_ns: {clock}}}
objectives: [throughput_fps, LUT, BRAM_18K]
search:
  strategy: {strategy}
  constraints:
    - {{metric: LUT, operator: '<=', value: {lut}}}
folding:
{folding}""")
    return path


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _old(tmp_path, n=40):
    assert main(["study", "create", "old", "--blueprint", str(blueprint(tmp_path)), "--n-trials", str(n),
                 "--seed", "2", "--quiet"]) == 0
    return load_study("old")


def test_same_space_adds_the_trials_without_rebuilding(tmp_path, capsys):
    old = _old(tmp_path)
    capsys.readouterr()
    # another objective constraint: values and feasibility are recomputed from the recorded metrics
    bp = blueprint(tmp_path, "same.yaml", lut=6000)
    bp.write_text(bp.read_text().replace("name: ws-test", "name: ws-test-again"))  # same space, other file
    assert main(["study", "create", "new", "--blueprint", str(bp), "--sampler", "tpe",
                 "--warm-start-from", "old", "--quiet"]) == 0
    out = capsys.readouterr().out
    done = [t for t in old.study.get_trials() if t.state.is_finished()]
    assert f"warm start from 'old' (same space): {len(done)} trial(s) added" in out
    new = load_study("new")
    added = new.study.get_trials()
    assert len(added) == len(done)
    by_origin = {t.user_attrs["warm_start_from"]: t for t in added}
    for t in done:
        a = by_origin[f"old#{t.number}"]
        assert a.state == t.state and a.params == t.params
        if t.state == TrialState.COMPLETE:
            assert a.values == t.values and queries.metrics_of(a) == queries.metrics_of(t)
            assert a.user_attrs["feasible"] == (t.user_attrs["m:LUT"] <= 6000 and t.user_attrs["m:LUT_util"] <= 0.7)
            assert queries.feasible(a) == a.user_attrs["feasible"]
    stats = Runner(new, progress=False).optimize(n_trials=10)
    assert stats.trials == 10 and len(new.study.get_trials()) == len(done) + 10


def test_nsga2_gets_the_front_enqueued_and_the_cache_answers(tmp_path, capsys):
    old = _old(tmp_path)
    front = queries.pareto_front(old.study.get_trials(), old.objectives.directions)
    capsys.readouterr()
    assert main(["study", "create", "g", "--blueprint", str(blueprint(tmp_path)), "--sampler", "nsga2",
                 "--warm-start-from", "old", "--n-trials", str(len(front)), "--quiet"]) == 0
    assert f"{len(front)} configuration(s) enqueued" in capsys.readouterr().out
    ran = [t for t in load_study("g").study.get_trials() if t.user_attrs.get("warm_start") == "enqueued"]
    assert len(ran) == len(front) and all(t.user_attrs["cache_hit"] for t in ran)  # nothing rebuilt


def test_compatible_space_enqueues_the_valid_best_configurations(tmp_path, capsys):
    old = _old(tmp_path)
    capsys.readouterr()
    # another clock and a subset of MVAU_hls_0's PE choices
    bp = blueprint(tmp_path, "fast.yaml", clock=5.0, folding=FOLDING.replace("PE: [1, 4, 16]", "PE: [4, 16]"))
    assert main(["study", "create", "fast", "--blueprint", str(bp), "--warm-start-from", "old", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "compatible space" in out and "clock_ns 10.0 → 5.0" in out and "MVAU_hls_0" in out
    new = load_study("fast")
    waiting = new.study.get_trials(states=(TrialState.WAITING,))
    old_trials = old.study.get_trials()
    expected = set()
    candidates = queries.pareto_front(old_trials, old.objectives.directions)
    for m, d in zip(old.objectives.metrics, old.objectives.directions, strict=True):
        candidates.append(queries.best(old_trials, m, d))
    for t in candidates:
        v = old.ospace.to_values(t.params)
        if v["folding.MVAU_hls_0.PE"] in (4, 16):
            expected.add(tuple(sorted(v.items())))
    got = {tuple(sorted(new.ospace.to_values(t.system_attrs["fixed_params"]).items())) for t in waiting}
    assert got == expected and got
    assert f"{len(got)} configuration(s) enqueued" in out
    # they are evaluated first, at the new clock (not cache hits: the target differs)
    Runner(new, progress=False).optimize(n_trials=len(got))
    done = new.study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == len(got) and all(not t.user_attrs["cache_hit"] for t in done)
    assert all("warm_start_from" in t.user_attrs for t in done)


def test_incompatible_sources_are_refused_with_the_differences(tmp_path, capsys):
    _old(tmp_path, n=10)
    capsys.readouterr()
    other_model = blueprint(tmp_path, "w1.yaml", model="tfc_w1a1", folding="  layers:\n    MVAU_hls_0: {PE: [1, 4]}\n")
    assert main(["study", "create", "m", "--blueprint", str(other_model), "--warm-start-from", "old"]) == 2
    assert "explores another model" in capsys.readouterr().err
    disjoint = blueprint(tmp_path, "d.yaml", folding=FOLDING.replace("PE: [1, 4, 16]", "PE: [2, 8]"))
    assert main(["study", "create", "d", "--blueprint", str(disjoint), "--warm-start-from", "old"]) == 2
    err = capsys.readouterr().err
    assert "none of its" in err and "folding.MVAU_hls_0.PE" in err and "not a choice of the new space" in err
    assert main(["study", "create", "x", "--blueprint", str(disjoint), "--warm-start-from", "nope"]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    names = [s.study_name for s in optuna.study.get_all_study_summaries(f"sqlite:///{tmp_path}/studies/bsopt.db")]
    assert names == ["old"]  # nothing half-made was left behind
