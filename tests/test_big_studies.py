"""Big studies: a long genetic run resumes where it was, without reading every stored trial; queries read
only what they answer; the hypervolume has a fixed, stated reference; the recorded peak memory is the
process's real one."""

from __future__ import annotations

import io

import numpy as np
import optuna
import pytest
from finn_reference import network_dirs, prepost_model

import bsopt
from bsopt.storage import rdb
from bsopt.study import queries

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")

BLUEPRINT = """
version: "3.0"
name: big
model: {model}
hw_compiler:
  build_steps: [step_streamline, step_minimize_bit_width]
target: {{board: Pynq-Z1, clock_ns: 10.0}}
search: {{strategy: {strategy}, constraints: [{{metric: LUT_util, operator: "<=", value: 0.7}}]}}
objectives: [{{metric: throughput_fps, direction: maximize}}, {{metric: LUT, direction: minimize}}]
folding:
  kinds:
    MVAU: {{PE: all, SIMD: all}}
    Thresholding: {{PE: all}}
"""


@pytest.fixture
def tfc(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BSOPT_WORKDIR", raising=False)

    def make(strategy: str = "nsga2"):
        bp = tmp_path / f"{strategy}.yaml"
        bp.write_text(BLUEPRINT.format(model=prepost_model("tfc_w2a2"), strategy=strategy))
        return bp
    return make


def _generation_key(study):
    return study.sampler._get_generation_key()


def test_a_long_genetic_study_resumes_at_its_last_generation_without_reading_every_trial(tfc, monkeypatch):
    study = bsopt.create_study("ga", tfc("nsga2"), seed=1)
    study.optimize(n_trials=420, progress=False)  # ~13 generations of 32, written in batches
    key = _generation_key(study.optuna)
    last = rdb.max_system_attr(study.optuna, key)
    assert last >= 10

    # Optuna derives a missing parent population from the generation before, recursively (the stored
    # trials of a batched run carry generation numbers but not those populations): count the derivations
    calls = []
    original = optuna.samplers.NSGAIISampler.select_parent
    monkeypatch.setattr(optuna.samplers.NSGAIISampler, "select_parent",
                        lambda self, s, generation: calls.append(generation) or original(self, s, generation))
    # and how many trials are read through Optuna's ORM (its cached storage reads all of them)
    built = []
    orm = optuna.storages.RDBStorage._build_frozen_trial_from_trial_model
    monkeypatch.setattr(optuna.storages.RDBStorage, "_build_frozen_trial_from_trial_model",
                        lambda self, m: built.append(1) or orm(self, m))

    again = bsopt.load_study("ga")
    again.optimize(n_trials=70, progress=False)
    assert calls and min(calls) > last  # no generation before the stored last one is derived again
    assert len(built) < 50, len(built)  # not the 420 stored trials
    new = rdb.full_trials(again.optuna, [t._trial_id for t in rdb.read_trials(again.optuna)[420:]])
    assert len(new) == 70 and min(t.system_attrs[key] for t in new) >= last  # the generations continue


def test_a_resumed_study_on_the_stored_study_itself_does_not_recurse(tfc, monkeypatch):
    from bsopt.study.engine import load_study
    from bsopt.study.runner import Runner

    study = bsopt.create_study("ga", tfc("nsga2"), seed=2)
    study.optimize(n_trials=300, progress=False)
    last = rdb.max_system_attr(study.optuna, _generation_key(study.optuna))
    calls = []
    original = optuna.samplers.NSGAIISampler.select_parent
    monkeypatch.setattr(optuna.samplers.NSGAIISampler, "select_parent",
                        lambda self, s, generation: calls.append(generation) or original(self, s, generation))
    ctx = load_study("ga")
    stats = Runner(ctx, batch=False, progress=False).optimize(n_trials=5)  # Optuna asks on the stored study
    assert stats.trials == 5
    assert all(g > last for g in calls)  # the stored last generation's parents: its front, set once


def test_pareto_best_status_read_few_attributes_and_answer_as_a_full_read(tfc, monkeypatch):
    from bsopt.study import results

    study = bsopt.create_study("q", tfc("random"), seed=3)
    study.optimize(n_trials=300, progress=False)
    full = rdb.read_trials(study.optuna)
    metrics, dirs = ["throughput_fps", "LUT"], ["maximize", "minimize"]
    expected = [results.record(t) for t in queries.metric_front(full, metrics, dirs)]
    assert expected and all(len(r) > 8 for r in expected)  # every metric and the config id
    got = study.pareto()
    assert sorted(got, key=lambda r: r["trial"]) == sorted(expected, key=lambda r: r["trial"])
    where = [t for t in full if t.state.name == "COMPLETE" and t.user_attrs.get("m:BRAM_18K", 1e9) < 20]
    exp_where = {r["trial"] for r in map(results.record, queries.metric_front(where, metrics, dirs))}
    assert {r["trial"] for r in study.pareto(where="BRAM_18K < 20")} == exp_where
    best = queries.best(full, "LUT", "minimize")
    assert study.best("LUT") == results.record(best)
    with pytest.raises(bsopt.InputError, match="(?s)unknown metric .LUTS.*metrics: .*BRAM_18K"):
        study.pareto(where="LUTS < 3")

    keys_read = []
    real = rdb.read_trials
    monkeypatch.setattr(rdb, "read_trials", lambda s, states=None, keys=None: keys_read.append(keys) or
                        real(s, states=states, keys=keys))
    st = study.status()
    assert keys_read and None not in keys_read  # no question reads every attribute
    assert st["feasible"] == sum(1 for t in full if queries.feasible(t))
    assert st["pareto_size"] == len(queries.pareto_front(full, dirs))


def test_the_hypervolume_has_a_fixed_reference_box_and_never_decreases(tfc):
    study = bsopt.create_study("hv", tfc("random"), seed=4)
    study.optimize(n_trials=10, progress=False)
    first = study.status()
    assert not first["hypervolume_fixed"] or first["feasible"] >= 20  # provisional until 20 feasible
    study.optimize(n_trials=150, progress=False)
    st = study.status()
    assert st["hypervolume_fixed"]
    box = queries.study_box(study.optuna)
    assert box["metrics"] == ["throughput_fps", "LUT"] and box["ideal"][1] >= 0  # no LUT below 0
    history = [st["hypervolume"]]
    for _ in range(3):
        study.optimize(n_trials=60, progress=False)
        history.append(study.status()["hypervolume"])
        assert queries.study_box(study.optuna) == box  # fixed
    assert all(0 <= h <= 1 for h in history) and history == sorted(history)
    # the plotted history uses the same box: its last point is the status figure
    from bsopt.study.report import hypervolume_history

    assert hypervolume_history(study._ctx)[-1][1] == pytest.approx(history[-1])


def test_box_hypervolume_by_hand():
    box = {"ideal": [0.0, 0.0], "nadir": [10.0, 10.0]}
    # (2, 8) and (6, 4): the union of [2,10]x[8,10] and [6,10]x[4,10] = 16 + 24 - 8 = 32 of 100
    assert queries.box_hypervolume([[2, 8], [6, 4]], box) == pytest.approx(0.32)
    # a point beyond the nadir adds nothing; one beyond the ideal counts up to the box edge
    assert queries.box_hypervolume([[2, 8], [6, 4], [11, -5]], box) == pytest.approx(0.32)
    assert queries.box_hypervolume([[-3, 5]], box) == pytest.approx(0.5)
    # 10% of the range each side (5 and 8), but a range that does not cross 0 is not widened across it
    assert queries.reference_box([0, -100], [50, -20]) == {"ideal": [0.0, -108.0], "nadir": [55.0, -12.0]}
    assert queries.reference_box([2, -3], [2, -1]) == {"ideal": [1.0, -3.2], "nadir": [3.0, -0.8]}


def test_the_recorded_peak_memory_is_the_process_peak(tfc):
    study = bsopt.create_study("mem", tfc("random"), seed=5)
    blob = b"\x01" * (400 << 20)  # 400 MB touched, then freed: a sampled RSS no longer sees it
    del blob
    study.optimize(n_trials=3, progress=False)
    assert study.optuna.user_attrs["resources"]["peak_driver_rss_mb"] >= 400


def test_a_blueprint_limit_as_tight_as_the_device_budget_is_one_constraint(tfc):
    study = bsopt.create_study("c", tfc("random"))
    names = [c.name for c in study._ctx.objectives.constraints]
    assert names.count("LUT_util <= 0.7") == 1 and not any(n.startswith("device LUT") for n in names)
    assert any(n.startswith("device BRAM_18K") for n in names)  # the other device limits stay


def test_the_progress_line_fits_80_columns(tfc):
    from rich.console import Console

    from bsopt.study.runner import RunStats, _Progress

    class Ctx:
        name = "a-rather-long-study-name-for-a-terminal"

    archive = queries.FrontArchive(["maximize", "minimize"])
    for i in range(50):
        archive.add([1e6 * (i + 1), 1000.0 * (i + 1) ** 1.5])
    progress = _Progress(Ctx(), 100000, True, archive)
    with progress:
        stats = RunStats(started=0.0, trials=99999, feasible=88888, cache_hits=7777)
        progress.update(stats)
        table = progress._progress.make_tasks_table(progress._progress.tasks)
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(table)
    line = console.export_text().rstrip("\n")
    assert "\n" not in line and len(line) <= 80
    assert "99999/100000" in line and "HV 0." in line and "/s" in line, line


def test_front_archive_box_matches_the_points():
    archive = queries.FrontArchive(["minimize", "minimize"])
    pts = np.array([[1.0, 5.0], [3.0, 2.0], [4.0, 4.0]])
    for p in pts:
        archive.add(list(p))
    assert archive.count == 3
    assert archive.box() == queries.reference_box(pts.min(axis=0), pts.max(axis=0))


def test_an_exact_study_says_when_its_whole_front_is_evaluated(tfc):
    study = bsopt.create_study("ex", tfc("exact"))
    first = study.optimize(progress=False)  # the whole front
    assert first.trials == study.exact_front["front_size"] > 0
    again = study.optimize(n_trials=50, progress=False)
    assert again.trials == 0
    assert f"every point of the exact front ({first.trials}) is evaluated" in again.stopped
