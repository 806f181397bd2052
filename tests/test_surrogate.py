"""The surrogate strategy for expensive backends, on the synthetic backend's non-separable black box."""

from __future__ import annotations

import pytest
from finn_reference import network_dirs, synthetic_blueprint

from bsopt.backends.synthetic import SyntheticBackend, blackbox_metrics
from bsopt.space.design_space import load_design_space
from bsopt.study.engine import Runner, create_study

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")

FOLDING = """  layers:
    MVAU_hls_0: {PE: [1, 4, 16], SIMD: [16, 49], ram_style: [auto, distributed]}
    MVAU_hls_1: {PE: [1, 8], SIMD: [8, 16], ram_style: [auto, distributed]}
    MVAU_hls_2: {PE: [1, 8], SIMD: [8, 16], ram_style: [auto, distributed]}
"""


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_blackbox_metrics_follow_their_documented_formula(tmp_path):
    bp = synthetic_blueprint(tmp_path, "blackbox: true", FOLDING, strategy="random")
    space = load_design_space(bp).require_valid()
    t = space.fixed_target()
    backend = SyntheticBackend(space.model_path, t["finn_version"], t["part"], {"blackbox": True})
    cfg = space.config_from_values({**space.values_at(0), "folding.MVAU_hls_0.PE": 16,
                                    "folding.MVAU_hls_1.SIMD": 8, "folding.MVAU_hls_1.PE": 8,
                                    "folding.MVAU_hls_2.SIMD": 16})
    est = backend.estimator.build(cfg).values
    real = backend.build(cfg).values
    # MVAU_hls_0 PE 16 vs MVAU_hls_1 SIMD 8, MVAU_hls_1 PE 8 vs MVAU_hls_2 SIMD 16: two width converters
    assert real["max_cycles"] == est["max_cycles"] + 32 and real["BRAM_18K"] == est["BRAM_18K"] + 2
    u = est["LUT_util"]
    assert est["LUT"] * (1 + 0.5 * u * u) * 0.9 <= real["LUT"] <= est["LUT"] * (1 + 0.5 * u * u) * 1.1 + 1
    assert real == blackbox_metrics(cfg, est)


def test_auto_uses_the_surrogate_strategy_for_expensive_builds(tmp_path):
    bp = synthetic_blueprint(tmp_path, "blackbox: true", FOLDING, strategy="auto")
    bp.write_text(bp.read_text() + "objectives: [max_cycles, LUT, BRAM_18K]\n")
    ctx = create_study("s", bp, seed=0)
    assert ctx.sampler == "surrogate"
    stats = Runner(ctx, workers=1, progress=False, build_budget=30).optimize(n_trials=500)
    trials = ctx.study.get_trials()
    built = [t for t in trials if "worker" in t.user_attrs]
    assert stats.submitted == 30 and len(built) == 30 and "build budget of 30 reached" in stats.stopped
    planned = [t for t in built if t.user_attrs.get("surrogate")]
    assert len(planned) >= 12  # the spread over the estimates' exact front comes first
    assert planned[0].number < min(t.number for t in built if not t.user_attrs.get("surrogate"))
    # real (black-box) metrics beside the gate's estimates
    assert any(t.user_attrs["m:LUT"] != t.user_attrs["e:LUT"] for t in built if "m:LUT" in t.user_attrs)
    with pytest.raises(Exception, match="exact strategy needs the estimate backend"):
        create_study("x", bp, sampler="exact")


def test_the_correction_learns_a_family_effect_and_stays_optimistic_about_unseen_families():
    import numpy as np

    from bsopt.explore.surrogate import _predict, width_mismatches

    rng = np.random.default_rng(0)
    e = rng.uniform(1000, 5000, 40)
    fams = [("a",) if i % 2 else ("b",) for i in range(40)]
    real = e * np.array([1.1 if f == ("a",) else 1.0 for f in fams])  # family a: 10 % worse
    X, Y, M = [[v] for v in e], [[v] for v in real], [0.0] * 40
    cand = np.array([[2000.0], [2000.0], [2000.0]])
    pred = _predict(X, Y, M, fams, cand, np.zeros(3), [("a",), ("b",), ("c",)], ["LUT"], ["minimize"])[:, 0]
    assert pred[0] > pred[1] * 1.05  # family a's penalty is learnt
    assert pred[2] < (pred[0] + pred[1]) / 2  # an unseen family is assumed better than the average one
    assert width_mismatches({"Defaults": {}, "MVAU_hls_0": {"PE": 4, "SIMD": 2}, "MVAU_hls_1": {"PE": 2, "SIMD": 4},
                             "MVAU_hls_2": {"PE": 1, "SIMD": 1}}) == 1  # 4 -> 4 matches, 2 -> 1 does not


def test_per_layer_type_correction_is_learnt_and_solved_exactly(tmp_path):
    """Builds whose real LUT is the estimate plus 30 % of the MVAUs' share: the fitted per-layer-type
    factors reproduce that, and the corrected space's exact front has exactly those LUT values."""
    import numpy as np
    from optuna.trial import create_trial

    from bsopt.explore import exact, surrogate

    bp = synthetic_blueprint(tmp_path, "blackbox: true", FOLDING, strategy="auto")
    bp.write_text(bp.read_text() + "objectives: [max_cycles, LUT, BRAM_18K]\n")
    ctx = create_study("pl", bp, seed=0)
    t = ctx.space.fixed_target()
    backend = SyntheticBackend(ctx.space.model_path, t["finn_version"], t["part"], {})
    estimator = backend.estimator
    groups, _ = exact.decompose(ctx.space)
    tables = exact._tables(ctx.space, {}, groups, estimator)[0]
    rng = np.random.default_rng(1)
    for _ in range(40):
        values = {p.name: p.value_at(int(rng.integers(p.size))) for p in ctx.space.parameters}
        cfg = ctx.space.config_from_values(values)
        est = estimator.build(cfg).values
        mvau = sum(tab.sums[tab.values.index(tuple(values[p] for p in tab.params))][0]  # LUT
                   for tab in tables if tab.layer.startswith("MVAU"))
        real = dict(est, LUT=est["LUT"] + 0.3 * mvau)
        ctx.study.add_trial(create_trial(
            values=[real["max_cycles"], real["LUT"], real["BRAM_18K"]], params=ctx.ospace.to_params(values),
            distributions=ctx.ospace.distributions,
            user_attrs={**{f"e:{k}": v for k, v in est.items()}, **{f"m:{k}": v for k, v in real.items()}}))
    front = surrogate._corrected_front(ctx, estimator, ctx.study, ctx.objectives.metrics)
    assert front
    for p in front:
        values = {**ctx.space.values_at(0), **p["values"]}
        mvau = sum(tab.sums[tab.values.index(tuple(values[q] for q in tab.params))][0]
                   for tab in tables if tab.layer.startswith("MVAU"))
        assert p["metrics"]["LUT"] == pytest.approx(p["estimate"]["LUT"] + 0.3 * mvau, rel=1e-6)


def test_surrogate_with_utilisation_objectives(tmp_path):
    bp = synthetic_blueprint(tmp_path, "blackbox: true", FOLDING, strategy="auto")
    bp.write_text(bp.read_text() + "objectives: [max_cycles, LUT_util]\n")
    ctx = create_study("u", bp, seed=0)
    assert ctx.sampler == "surrogate"
    stats = Runner(ctx, workers=1, progress=False, build_budget=20).optimize(n_trials=300)
    assert stats.submitted == 20 and stats.failed == 0


def test_a_resumed_surrogate_study_proposes_nothing_it_already_evaluated(tmp_path):
    bp = synthetic_blueprint(tmp_path, "blackbox: true", FOLDING, strategy="auto")
    bp.write_text(bp.read_text() + "objectives: [max_cycles, LUT, BRAM_18K]\n")
    ctx = create_study("r", bp, seed=0)
    Runner(ctx, workers=1, progress=False).optimize(n_trials=10)
    from bsopt.study.engine import load_study

    for _ in range(2):  # each later run continues where the study is
        Runner(load_study("r"), workers=1, progress=False).optimize(n_trials=10)
    trials = [t for t in load_study("r").study.get_trials() if t.state.is_finished()]
    planned = [t.user_attrs["config_id"] for t in trials if t.user_attrs.get("surrogate")]
    assert len(trials) == 30 and len(planned) > 10  # the plan went on past the first run's 10
    assert len(set(planned)) == len(planned)
