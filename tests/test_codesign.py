"""Accuracy × hardware co-design: quantisation in the design space, real training, nested exact fronts.

Expectations are independent of bsopt's code paths: counts by hand, Optuna's pruner rules applied by
hand to hand-made curves, the user's trainer's own log of what it was asked and what it returned, the
exported QONNX model executed by qonnx on the held-out images, and the estimate of exported folders.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from bsopt.blueprint.loader import read_blueprint
from bsopt.cli import main
from bsopt.models.pruning import PeerPruning, make_pruner
from bsopt.models.quantized import (
    Quantization,
    buildable_neighbour,
    every_quantization,
    finn_cannot_build,
    from_params,
    to_params,
    uniform_quantizations,
)

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "search_spaces" / "digits_codesign.yaml"
TESTS = Path(__file__).resolve().parent

HW = """
hw_compiler:
  kernels: [MVAU, Thresholding, LabelSelect]
  build_steps: [step_qonnx_to_finn, step_tidy_up, step_streamline, step_convert_to_hw,
                step_create_dataflow_partition, step_specialize_layers, step_apply_folding_config,
                step_minimize_bit_width, step_generate_estimate_reports]
target: {board: Pynq-Z1, clock_ns: 10.0}
folding: {kinds: {MVAU: {PE: all, SIMD: all}, Thresholding: {PE: all}, LabelSelect: {PE: all}}}
"""


def _read(tmp_path, text: str):
    p = tmp_path / "bp.yaml"
    p.write_text("version: '3.0'\nname: t\n" + text)
    return read_blueprint(p)


# ------------------------------------------------------------------------------- blueprint sections
@pytest.mark.parametrize("section, message", [
    ("quantization: {groups: {a: {layers: [0, 1], weight_bits: [2, 3]}, b: {layers: [1, 2]}}}",
     "layer 1 is in groups 'a' and 'b'"),
    ("quantization: {groups: {a: {layers: [0]}}}", "layers 1, 2 in no group"),
    ("quantization: {weight_bits: [2, 16]}", "unsupported bit width 16"),
    ("quantization: {weight_bits: [2, 2]}", "bit width 2 is listed twice"),
    ("quantization: {model: digits_mpl}", "unknown model factory 'digits_mpl'"),
    ("quantization: {model: 'my.nets:build'}", "your factory's number of quantised layers is needed"),
    ("quantization: {model: 'my nets'}", "unknown model factory"),
    ("quantization: {groups: {a: {layers: [0, 3]}}}", "expected 'all' or layer indices 0..2"),
    ("training: {epochs: 3}", "a training section without a quantization section"),
    ("quantization: {}\ntraining: {epochs: 0}", "expected an integer >= 1"),
    ("quantization: {}\ntraining: {pruner: medain}", "unknown pruner 'medain'"),
    ("quantization: {}\ntraining: {data: mnist}", "unknown dataset 'mnist'"),
    ("quantization: {}\ntraining: {data: digits, trainer: 'a.b:c'}", "'data' and 'trainer' both given"),
    ("model: zoo:tfc\nquantization: {}", "a co-design blueprint's models come from its quantization section"),
    ("quantization: {}\nsearch: {strategy: nsga2}", "co-design studies cannot use the nsga2 strategy"),
    ("quantization: {}\nsearch: {constraints: [{metric: accuracy, operator: '>=', value: 95}]}",
     "accuracy is a fraction in [0, 1], got 95"),
    ("quantization: {}\nobjectives: [{metric: LUT, direction: minimize}]", "needs accuracy as an objective"),
    ("quantization: {}\nobjectives: [{metric: accuracy, direction: maximize}]", "needs a hardware objective"),
    ("quantization: {}\nbackend: synthetic", "with the estimate backend, not synthetic"),
])
def test_bad_co_design_sections_are_located_errors(tmp_path, section, message):
    _, d = _read(tmp_path, section + "\n")
    errors = [str(e) for e in d.errors]
    assert any(message in e for e in errors), errors
    assert all(":" in e.split(" error")[0] for e in errors)  # file:line:col


def test_editing_a_users_trainer_changes_the_cache_key(tmp_path, monkeypatch):
    from bsopt.blueprint.codesign import QuantGroup, QuantizationSpec, TrainingSpec
    from bsopt.models import quantized

    monkeypatch.chdir(tmp_path)  # the working directory's modules import (as `python -m` would)
    (tmp_path / "my_fit_cache_probe.py").write_text("def fit(model, **kw):\n    return 0.5\n")
    spec = QuantizationSpec("digits_mlp", 3, [QuantGroup("all", (0, 1, 2), (2,), (2,))])
    training = TrainingSpec(trainer="my_fit_cache_probe:fit")
    q = Quantization((2, 2, 2), (2, 2, 2))
    before = quantized.cache_key(spec, training, q)
    (tmp_path / "my_fit_cache_probe.py").write_text("def fit(model, **kw):\n    return 0.75  # edited\n")
    quantized._FINGERPRINTS.clear()  # (a new process)
    assert quantized.cache_key(spec, training, q) != before
    assert quantized.cache_key(spec, TrainingSpec(), q) != quantized.cache_key(spec, training, q)


def test_quantisations_are_counted_and_decoded_by_hand(tmp_path):
    bp, d = read_blueprint(DIGITS)
    assert not d.errors
    spec = bp.quantization
    # first: 4 weight x 4 act widths, hidden: 4 x 4, last: 4 weight x 1 act = 1024
    assert spec.size == 4 * 4 * 4 * 4 * 4 * 1 == 1024
    every = list(every_quantization(spec))
    assert len(every) == len(set(every)) == 1024
    q = from_params(spec, {"q.first.w": 2, "q.first.a": 4, "q.hidden.w": 1, "q.hidden.a": 8, "q.last.w": 8})
    assert q == Quantization((2, 1, 8), (4, 8, 8))
    assert to_params(spec, q) == {"q.first.w": 2, "q.first.a": 4, "q.hidden.w": 1, "q.hidden.a": 8, "q.last.w": 8}
    assert q.at_most(Quantization((2, 2, 8), (4, 8, 8))) and not q.at_most(Quantization((1, 8, 8), (8, 8, 8)))
    # FINN's XNOR rule: 1-bit activations feed a layer only with 1-bit weights
    assert finn_cannot_build(Quantization((1, 1, 1), (1, 1, 8))) is None
    assert finn_cannot_build(Quantization((4, 1, 2), (8, 1, 8))) .startswith("layer 2 gets 1-bit activations")
    assert finn_cannot_build(Quantization((4, 2, 2), (1, 8, 8))).startswith("layer 1")
    assert finn_cannot_build(Quantization((1, 4, 4), (8, 8, 8))) is None  # bipolar weights, 8-bit inputs
    # instead of what FINN cannot build, the nearest it can: the offending 1-bit activation raised to 2 bits
    assert buildable_neighbour(spec, Quantization((2, 4, 2), (1, 1, 8))) == Quantization((2, 4, 2), (2, 2, 8))
    assert buildable_neighbour(spec, Quantization((4, 1, 2), (8, 1, 8))) == Quantization((4, 1, 2), (8, 2, 8))
    assert sum(finn_cannot_build(q) is None for q in every) == 1024 - 4 * 3 * 4 * 4 - 4 * 4 * 3 * 4 + 3 * 3 * 4
    # a new study first trains what a hand sweep would: w1a1, w2a2, w4a4, w8a8 (the last layer's act fixed)
    assert uniform_quantizations(spec) == [Quantization((b, b, b), (b, b, 8)) for b in (1, 2, 4, 8)]


# ------------------------------------------------------------------------------- pruning
def test_a_training_is_pruned_only_against_cheaper_peers_by_optunas_rule():
    from bsopt.models.pruning import peers_of

    spec = {"name": "median", "n_warmup_steps": 2}  # median pruner, judging from epoch 2 on
    peer = {"curve": [0.5, 0.6, 0.7, 0.8], "pruned": False}
    worse = PeerPruning(spec, 4, [peer])
    assert [worse(e, a) for e, a in enumerate([0.1, 0.2, 0.65])] == [False, False, True]  # 0.65 < 0.7 at epoch 2
    assert worse.stopped_at == 2
    better = PeerPruning(spec, 4, [peer])
    assert not any(better(e, a) for e, a in enumerate([0.1, 0.2, 0.75, 0.9]))
    alone = PeerPruning(spec, 4, [])  # no peer: nothing to compare with
    assert not any(alone(e, a) for e, a in enumerate([0.0, 0.0, 0.0, 0.0]))
    cheap, wide = Quantization((2, 2), (2, 8)), Quantization((4, 2), (2, 8))
    finished = [(cheap, {"curve": [0.9]}), (wide, {"curve": [0.95]})]
    assert peers_of(wide, finished) == [{"curve": [0.9]}, {"curve": [0.95]}]
    assert peers_of(cheap, finished) == [{"curve": [0.9]}]  # a wider quantisation never judges a cheaper one


def test_pruner_options_are_optunas_and_checked():
    assert isinstance(make_pruner({"name": "successive_halving"}, 20), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner({"name": "none"}, 20), optuna.pruners.NopPruner)
    from bsopt.errors import InputError

    with pytest.raises(InputError, match="bad options for the median pruner"):
        make_pruner({"name": "median", "n_warmup_step": 3}, 20)


# ------------------------------------------------------------------------------- studies (real training)
pytest.importorskip("brevitas")
pytest.importorskip("sklearn")


@pytest.fixture
def study_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BSOPT_WORKDIR", raising=False)
    monkeypatch.setenv("BSOPT_MODEL_CACHE", str(tmp_path / "models"))
    return tmp_path


def _small_digits(tmp_path, epochs=4, extra="") -> Path:
    text = DIGITS.read_text().replace("epochs: 20", f"epochs: {epochs}")
    p = tmp_path / "digits.yaml"
    p.write_text(text + extra)
    return p


@pytest.mark.models
def test_digits_study_trains_reports_accuracy_and_exports_the_trained_model(study_dir, capsys):
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from bsopt.models.train import digits
    from bsopt.study.api import load_study

    bp = _small_digits(study_dir)
    assert main(["study", "create", "qd", "--blueprint", str(bp), "-n", "4", "--quiet"]) == 0
    study = load_study("qd")
    trials = study.optuna.get_trials(deepcopy=False)
    trainings = [t for t in trials if "training" in t.user_attrs]
    assert 1 <= len([t for t in trainings if t.state == TrialState.COMPLETE]) and len(trainings) <= 4
    # the first four are the hand sweep's uniform quantisations
    assert sorted(t.user_attrs["quantization"] for t in trainings) == sorted(
        f"w{b}-{b}-{b} a{b}-{b}-8" for b in (1, 2, 4, 8))
    by_number = {t.number: t for t in trials}
    for t in trials:
        if t.state != TrialState.COMPLETE:
            continue
        owner = by_number[t.user_attrs.get("training_trial", t.number)]
        record = json.loads(owner.user_attrs["training"])
        assert t.user_attrs["m:accuracy"] == record["accuracy"] == record["curve"][-1]
        assert len(record["curve"]) == 4 and t.user_attrs["quantization"] == owner.user_attrs["quantization"]
        assert t.values[0] == record["accuracy"] and 0.1 < record["accuracy"] <= 1.0
    owner = next(t for t in trainings if t.state == TrialState.COMPLETE)
    curve = json.loads(owner.user_attrs["training"])["curve"]
    assert owner.intermediate_values == dict(enumerate(curve))  # the dashboard's learning curve
    capsys.readouterr()
    assert main(["study", "best", "qd", "--metric", "LUT", "--where", "accuracy >= 0.1"]) == 0
    assert "quantization: w" in capsys.readouterr().out
    # the Pareto designs export as the trained model + FINN files that bsopt estimate accepts
    out = study_dir / "exp"
    assert main(["study", "export", "qd", "--pareto", "--out", str(out)]) == 0
    folders = sorted(out.iterdir())
    assert folders
    data = digits(0)
    checked = set()
    for d in folders:
        metrics = json.loads((d / "metrics.json").read_text())
        t = by_number[metrics["trial"]]
        model = Path(t.user_attrs["model_path"])
        assert (d / "model.onnx").read_bytes() == model.read_bytes()
        assert metrics["quantization"]["quantization"] == t.user_attrs["quantization"]
        assert metrics["quantization"]["epochs"] == 4 and metrics["quantization"]["data"] == "digits"
        capsys.readouterr()
        assert main(["estimate", "-m", str(d / "model.onnx"), "-f", str(d / "folding_config.json"),
                     "--board", "Pynq-Z1", "--json"]) == 0
        total = json.loads(capsys.readouterr().out)["total"]
        assert {k: total[k] for k in ("LUT", "BRAM_18K")} == {k: metrics["metrics"][k] for k in ("LUT", "BRAM_18K")}
        if model in checked:
            continue
        checked.add(model)
        # the exported QONNX computes the accuracy the trial reports, on FINN's UINT8 input
        mw = ModelWrapper(str(model))
        iname, oname = mw.graph.input[0].name, mw.graph.output[0].name
        right = 0
        n = 120
        for i in range(n):
            x = np.round(data.x_test[i:i + 1].numpy() * 255).astype(np.float32)
            right += int(execute_onnx(mw, {iname: x})[oname].flatten()[0]) == int(data.y_test[i])
        expected = t.user_attrs["m:accuracy"]  # over all 450 held-out images: the first 120 agree closely
        assert abs(right / n - expected) < 0.08, (right / n, expected)
    # the dashboard's artifacts: each front design's summary, its trained model's folding and reports
    from bsopt.study.dashboard import publish

    published = publish(study._ctx, directory=study_dir / "artifacts")
    assert published["trials"] == len(folders) and published["files"] >= 3 * published["trials"]


@pytest.mark.models
def test_trainings_are_cached_and_reproducible_across_studies(study_dir, capsys):
    from bsopt.study.api import load_study

    bp = _small_digits(study_dir, epochs=3)
    args = ["--blueprint", str(bp), "-n", "3", "--sampler", "random", "--seed", "5", "--quiet"]
    assert main(["study", "create", "a", *args]) == 0
    first = " ".join(capsys.readouterr().out.split())
    assert "0 from cache" in first
    assert main(["study", "create", "b", *args]) == 0
    second = " ".join(capsys.readouterr().out.split())
    assert "0 trained (0 epochs" in second and "from cache" in second

    def accuracies(name):
        return sorted((t.user_attrs["quantization"], t.user_attrs["m:accuracy"])
                      for t in load_study(name).optuna.get_trials(deepcopy=False) if "training" in t.user_attrs
                      and "m:accuracy" in t.user_attrs)

    assert accuracies("a") == accuracies("b") and accuracies("a")
    # the cache is a co-design study's warm start: --warm-start-from says so and creates nothing
    assert main(["study", "create", "c", "--blueprint", str(bp), "--warm-start-from", "a", "--quiet"]) == 2
    assert "do not warm-start" in capsys.readouterr().err
    from bsopt.storage import study_names

    assert "c" not in study_names(None)


@pytest.mark.models
def test_a_users_brevitas_factory_and_trainer_work_through_the_contract(study_dir, monkeypatch, capsys):
    log = study_dir / "calls.jsonl"
    monkeypatch.setenv("CODESIGN_USER_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    bp = study_dir / "user.yaml"
    bp.write_text("""version: "3.0"
name: user-codesign
quantization:
  model: codesign_user:build
  layers: 2
  options: {width: 16}
  input_shape: [1, 64]
  prepost: false
  groups:
    hidden: {layers: [0], weight_bits: [1, 4], act_bits: [1, 4]}
    out: {layers: [1], weight_bits: [1, 8], act_bits: [8]}
training: {trainer: "codesign_user:train", epochs: 4, seed: 1, pruner: none}
objectives:
  - {metric: accuracy, direction: maximize}
  - {metric: LUT, direction: minimize}
  - {metric: throughput_fps, direction: maximize}
search: {strategy: grid}
""" + HW.replace("LabelSelect, ", "").replace(", LabelSelect: {PE: all}", "").replace(
        "[MVAU, Thresholding, LabelSelect]", "[MVAU, Thresholding]"))
    # two worker processes: the factory and trainer are imported where the trainings run
    assert main(["study", "create", "u", "--blueprint", str(bp), "--workers", "2", "--quiet"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    # 1-bit (bipolar) activations feed only 1-bit weights: 6 of the 8 quantisations are built and trained
    assert "6 quantisation(s): 6 trained" in out and "feasible Pareto set of u" in out
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    builds = [c for c in calls if c["call"] == "build"]
    trains = {(tuple(c["weight_bits"]), tuple(c["act_bits"])): c for c in calls if c["call"] == "train"}
    # every quantisation of the grid, once, with the blueprint's options and seed
    assert sorted(trains) == sorted((w, a) for w in [(1, 1), (1, 8), (4, 1), (4, 8)] for a in [(1, 8), (4, 8)]
                                    if not (a[0] == 1 and w[1] != 1))
    assert all(c["width"] == 16 and c["seed"] == 1 for c in builds)
    assert all(c["epochs"] == 4 and c["seed"] == 1 for c in trains.values())
    from bsopt.study.api import load_study

    trials = load_study("u").optuna.get_trials(deepcopy=False)
    for t in trials:
        if "training" not in t.user_attrs:
            continue
        c = trains[(tuple(t.user_attrs["weight_bits"]), tuple(t.user_attrs["act_bits"]))]
        assert t.user_attrs["accuracy_curve"] == [round(a, 6) for a in c["curve"]]
        assert t.user_attrs["m:accuracy"] == pytest.approx(c["curve"][-1], abs=1e-9)
    assert main(["study", "optimize", "u", "--quiet"]) == 0  # the grid is done: nothing is trained again
    assert "every quantisation FINN can build (6 of 8) has been trained" in " ".join(capsys.readouterr().out.split())


@pytest.mark.models
def test_a_killed_run_is_recovered_and_its_quantisation_trained(study_dir, capsys):
    from bsopt.study.api import load_study

    bp = _small_digits(study_dir, epochs=2)
    assert main(["study", "create", "k", "--blueprint", str(bp), "-n", "4", "--sampler", "random", "--quiet"]) == 0
    study = load_study("k")  # its first four trainings: the uniform sweep
    from bsopt.explore.codesign import distributions

    spec = study.space.blueprint.quantization
    study.optuna.enqueue_trial(to_params(spec, Quantization((4, 2, 4), (4, 8, 8))))
    left = study.optuna.ask(distributions(spec))  # a run killed while training it
    q = left.params
    capsys.readouterr()
    assert main(["study", "optimize", "k", "-n", "1", "--quiet"]) == 0
    assert "1 interrupted trial(s) recovered" in " ".join(capsys.readouterr().out.split())
    trials = study.optuna.get_trials(deepcopy=False)
    assert trials[left.number].state == TrialState.FAIL
    retry = trials[left.number + 1]  # the interrupted quantisation is asked first
    assert retry.user_attrs["retry_of"] == left.number and {k: retry.params[k] for k in q} == q
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["quantization"] == "w4-2-4 a4-8-8"


@pytest.mark.models
def test_trainings_run_on_ray_actors(study_dir):
    import subprocess
    import sys

    pytest.importorskip("ray")
    from servers import RayCluster

    bp = _small_digits(study_dir, epochs=2)
    cluster = RayCluster(num_cpus=2)
    try:
        node = cluster.node_id()
        env = {**cluster.env, "BSOPT_MODEL_CACHE": str(study_dir / "models")}
        proc = subprocess.run([sys.executable, "-m", "bsopt.cli", "study", "create", "r", "--blueprint", str(bp),
                               "-n", "3", "--executor", "ray", "--ray-address", cluster.address, "--workers", "2",
                               "--quiet"], cwd=study_dir, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        cluster.stop()
    storage = f"sqlite:///{study_dir / 'studies' / 'bsopt.db'}"
    trials = optuna.load_study(study_name="r", storage=storage).get_trials(deepcopy=False)
    trained = [t for t in trials if "training" in t.user_attrs]
    assert len(trained) == 3 and all(t.user_attrs["worker"].startswith(f"ray:{node[:12]}:") for t in trained)
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trained)


@pytest.mark.models
def test_a_trainer_that_does_not_import_is_an_error_before_anything_is_created(study_dir, capsys):
    bp = study_dir / "bad.yaml"
    bp.write_text(DIGITS.read_text().replace("  data: digits ", "  trainer: 'no_such_pkg.train:fit' #"))
    assert main(["study", "create", "bad", "--blueprint", str(bp), "-n", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "training.trainer" in err and "no_such_pkg" in err and "PYTHONPATH" in err
    from bsopt.storage import study_names

    assert "bad" not in study_names(None)
