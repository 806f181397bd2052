"""Exact Pareto fronts (bsopt.explore.exact) against brute-force enumeration, and the exact strategy in
studies (what auto picks for estimate-backed, separable spaces)."""

from __future__ import annotations

import numpy as np
import pytest
from finn_reference import network_dirs, prepost_model

from bsopt.backends.estimate import EstimateBackend
from bsopt.cli import main
from bsopt.errors import InputError
from bsopt.explore.exact import exact_front, spread, why_not_separable
from bsopt.space.design_space import load_design_space
from bsopt.study import queries
from bsopt.study.engine import Runner, create_study, load_study
from bsopt.study.objectives import ObjectiveSet

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")


def blueprint(tmp_path, folding: str, *, objectives="[max_cycles, LUT, BRAM_18K]", constraints="", kernels="",
              name="bp.yaml", strategy="auto"):
    path = tmp_path / name
    path.write_text(f"""
version: "3.0"
name: exact-test
model: {prepost_model("tfc_w2a2")}
hw_compiler:
  build_steps: [step_streamline, step_minimize_bit_width]
{kernels}
target: {{board: Pynq-Z1, clock_ns: 10.0}}
objectives: {objectives}
search:
  strategy: {strategy}
  constraints: [{constraints}]
folding:
{folding}""")
    return path


PER_LAYER = """  layers:
    MVAU_hls_0: {PE: [1, 4, 16], SIMD: [16, 49], ram_style: [auto, distributed]}
    MVAU_hls_1: {PE: [1, 8], SIMD: [8, 16], ram_style: [auto, distributed]}
    MVAU_hls_2: {PE: [1, 8], ram_style: [auto, distributed]}
    Thresholding_rtl_0: {PE: [1, 2, 4]}
"""  # 1152 configurations


def brute_force(space, objectives):
    """Every configuration evaluated with the network estimator: the feasible front's metric vectors."""
    backend = EstimateBackend(space.model_path, "latest", "xc7z020clg400-1")
    rows = []
    for k in range(space.get_total_combinations()):
        r = backend.build(space.config(k))
        if r.ok and all(v <= 0 for v in objectives.violations(r.values).values()):
            rows.append([(-1 if d == "maximize" else 1) * r.values[m]
                         for m, d in zip(objectives.metrics, objectives.directions, strict=True)])
    pts = np.array(rows, dtype=float)
    return {tuple(pts[i]) for i in queries.front_indices(pts)}


def vectors(front, objectives):
    return {tuple((-1 if d == "maximize" else 1) * p["metrics"][m]
                  for m, d in zip(objectives.metrics, objectives.directions, strict=True)) for p in front.points}


@pytest.mark.parametrize("case", ["cycles_lut_bram", "throughput_with_kernel_choice"])
def test_exact_front_equals_brute_force(tmp_path, case):
    if case == "cycles_lut_bram":
        bp = blueprint(tmp_path, PER_LAYER, constraints="{metric: LUT, operator: '<=', value: 9000}")
    else:  # a global choice (the thresholds' backend renames layers) and a throughput objective
        bp = blueprint(tmp_path, """  kinds:
    MVAU: {PE: [1, 2], ram_style: [auto, distributed]}
    Thresholding: {PE: [1, 2]}
""", objectives="[throughput_fps, LUT, BRAM_18K]", constraints="{metric: BRAM_18K_util, operator: '<=', value: 0.1}",
            kernels="  kernels: [MVAU, {Thresholding: [Thresholding_rtl, Thresholding_hls]}, LabelSelect]")
    space = load_design_space(bp).require_valid()
    objectives = ObjectiveSet.from_space(space)
    assert why_not_separable(space, objectives) is None
    front = exact_front(space, objectives)
    assert front.options < space.get_total_combinations()  # per-layer estimates, not configurations
    assert vectors(front, objectives) == brute_force(space, objectives)
    # every front point is a real configuration with exactly those metrics
    backend = EstimateBackend(space.model_path, "latest", "xc7z020clg400-1")
    for p in front.points:
        r = backend.build(space.config_from_values({**space.values_at(0), **p["values"]}))
        assert {m: r.values[m] for m in ("max_cycles", "LUT", "BRAM_18K")} == {
            m: p["metrics"][m] for m in ("max_cycles", "LUT", "BRAM_18K")}
    if case == "throughput_with_kernel_choice":
        assert front.global_combinations == 2


def test_spread_keeps_the_extremes(tmp_path):
    bp = blueprint(tmp_path, PER_LAYER)
    space = load_design_space(bp).require_valid()
    objectives = ObjectiveSet.from_space(space)
    front = exact_front(space, objectives)
    assert len(front.points) > 10
    chosen = spread(front.points, objectives, 6)
    assert len(chosen) == 6
    for m in objectives.metrics:
        assert min(p["metrics"][m] for p in chosen) == min(p["metrics"][m] for p in front.points)
    assert spread(front.points, objectives, None) == front.points


def test_auto_solves_separable_spaces_exactly_and_falls_back_otherwise(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    bp = blueprint(tmp_path, PER_LAYER)
    ctx = create_study("ex", bp)
    assert ctx.sampler == "exact"
    stats = Runner(ctx, progress=False).optimize()  # no budget: the whole front
    space = ctx.space
    front = exact_front(space, ctx.objectives)
    trials = ctx.study.get_trials()
    assert stats.trials == len(front.points) == len(trials)
    assert all(t.user_attrs.get("exact_front") for t in trials)
    # every evaluated configuration is on the study's feasible front
    assert len(queries.pareto_front(trials, ctx.objectives.directions)) == len(trials)
    assert ctx.study.user_attrs["exact_front"]["front_size"] == len(front.points)
    assert Runner(load_study("ex"), progress=False).optimize().trials == 0  # resumed: nothing left
    # a budget below the front size: a spread subset, continued by later runs
    small = create_study("small", bp)
    assert Runner(small, progress=False).optimize(n_trials=5).trials == 5
    assert Runner(load_study("small"), progress=False).optimize(n_trials=4).trials == 4
    ids = [t.user_attrs["config_id"] for t in load_study("small").study.get_trials()]
    assert len(set(ids)) == 9
    # latency (a longest-path sum) is not a per-layer max/sum: auto uses a sampler, exact refuses
    lat = blueprint(tmp_path, PER_LAYER, objectives="[latency_ns, LUT]", name="lat.yaml")
    assert create_study("lat", lat).sampler in ("tpe", "nsga2")
    with pytest.raises(InputError, match="cannot solve this space"):
        create_study("lat2", lat, sampler="exact")
    with pytest.raises(InputError, match="surrogate strategy is for expensive backends"):
        create_study("sur", bp, sampler="surrogate")
    assert main(["study", "create", "cli", "--blueprint", str(bp), "--n-trials", "1000", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "exact front" in out and f"{len(front.points)} point(s)" in out


@pytest.mark.parametrize("insert", ["dwc", "dwc_fifo"])
def test_exact_front_with_finns_inserted_nodes_equals_brute_force(tmp_path, insert):
    """With the converters and FIFOs FINN inserts between layers costed (the estimate backend's
    insert option), a converter depends on the two layers it joins: the solver keeps the chain's
    pairwise terms and still returns the front every configuration's estimate gives."""
    bp = tmp_path / "ins.yaml"
    bp.write_text(f"""
version: "3.0"
name: exact-inserted
model: {prepost_model("tfc_w2a2")}
hw_compiler:
  build_steps: [step_streamline, step_minimize_bit_width]
target: {{part: xczu7ev-ffvc1156-2-e, clock_ns: 10.0}}
objectives: [max_cycles, LUT, BRAM_18K]
backend: {{name: estimate, options: {{insert: {insert}}}}}
search:
  constraints: [{{metric: LUT, operator: '<=', value: 9000}}]
folding:
{PER_LAYER}""")
    space = load_design_space(bp).require_valid()
    objectives = ObjectiveSet.from_space(space)
    backend = EstimateBackend.for_space(space)
    assert backend.insert == insert
    front = exact_front(space, objectives, backend)
    rows = []
    for k in range(space.get_total_combinations()):
        r = backend.build(space.config(k))
        if r.ok and all(v <= 0 for v in objectives.violations(r.values).values()):
            rows.append([r.values[m] for m in objectives.metrics])
    expected = {tuple(pts) for pts in np.array(rows)[queries.front_indices(np.array(rows))]}
    assert vectors(front, objectives) == expected
    plain = exact_front(space, objectives, EstimateBackend(space.model_path, "latest", "xczu7ev-ffvc1156-2-e"))
    assert vectors(plain, objectives) != expected  # the inserted nodes move the front
    for p in front.points[:: max(1, len(front.points) // 5)]:
        r = backend.build(space.config_from_values({**space.values_at(0), **p["values"]}))
        assert {m: r.values[m] for m in ("max_cycles", "LUT", "BRAM_18K", "URAM")} == {
            m: p["metrics"][m] for m in ("max_cycles", "LUT", "BRAM_18K", "URAM")}


def test_an_empty_front_says_which_bound_nothing_can_meet_and_by_how_much(tmp_path):
    """The 'nothing can fit' figures are the space's true minima: the smallest LUT and the fewest cycles
    any of its 1,152 configurations reaches (brute force), against the bound that excludes them."""
    free = load_design_space(blueprint(tmp_path, PER_LAYER, name="free.yaml"))
    backend = EstimateBackend(free.model_path, "latest", "xc7z020clg400-1")
    built = [backend.build(free.config(k)).values for k in range(free.get_total_combinations())]
    least_lut = min(v["LUT"] for v in built)
    fewest_cycles = min(v["max_cycles"] for v in built)
    tight = load_design_space(blueprint(tmp_path, PER_LAYER, constraints=f"{{metric: LUT, operator: '<=', value: "
                                        f"{least_lut - 1}}}", name="tight.yaml"))
    front = exact_front(tight, ObjectiveSet.from_space(tight))
    assert front.points == [] and len(front.notes) == 1
    assert f"needs {least_lut:,.0f} LUTs against a limit of {least_lut - 1:,.0f} (short by 1)" in front.notes[0]
    assert "MVAU_hls" in front.notes[0] and "What would help" in front.notes[0]
    fast = load_design_space(blueprint(tmp_path, PER_LAYER, constraints="{metric: max_cycles, operator: '<=', "
                                       f"value: {fewest_cycles - 1}}}", name="fast.yaml"))
    front = exact_front(fast, ObjectiveSet.from_space(fast))
    assert front.points == [] and f"needs {fewest_cycles:,.0f} cycles at its most parallel option" in front.notes[0]
    ok = load_design_space(blueprint(tmp_path, PER_LAYER, constraints=f"{{metric: LUT, operator: '<=', value: "
                                     f"{least_lut}}}", name="ok.yaml"))
    front = exact_front(ok, ObjectiveSet.from_space(ok))
    assert front.points and front.notes == []


def test_a_space_that_cannot_fit_is_refused_before_any_trial(tmp_path, capsys):
    """`blueprint validate` and `study create` (any sampler) say that nothing can fit, located at the
    constraint, when the space's true least LUT (brute force over its 1,152 configurations) exceeds the
    bound; one LUT more and the space is accepted."""
    from bsopt.explore.fit import cannot_fit
    from bsopt.storage import study_names

    free = load_design_space(blueprint(tmp_path, PER_LAYER, name="free.yaml"))
    backend = EstimateBackend(free.model_path, "latest", "xc7z020clg400-1")
    least_lut = min(backend.build(free.config(k)).values["LUT"] for k in range(free.get_total_combinations()))
    tight = blueprint(tmp_path, PER_LAYER, constraints=f"{{metric: LUT, operator: '<=', value: {least_lut - 1}}}",
                      name="tight.yaml")
    space = load_design_space(tight)
    misfit = cannot_fit(space, ObjectiveSet.from_space(space))
    assert misfit is not None and misfit.metric == "LUT"
    assert f"needs {least_lut:,.0f} LUTs against a limit of {least_lut - 1:,.0f} (short by 1)" in misfit.message
    capsys.readouterr()
    assert main(["blueprint", "validate", str(tight)]) == 2
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(tight.read_text().splitlines(), 1) if "constraints" in text)
    assert f"{tight}:{line}:" in err and "nothing can fit" in err and "search.constraints[0]" in err
    storage = f"sqlite:///{tmp_path / 'fit.db'}"
    for sampler in ("exact", "tpe"):
        assert main(["study", "create", f"s_{sampler}", "--blueprint", str(tight), "--storage", storage,
                     "--sampler", sampler, "--n-trials", "3", "--quiet"]) == 2
        assert "nothing can fit" in capsys.readouterr().err
    assert study_names(storage) == []  # nothing was created
    ok = blueprint(tmp_path, PER_LAYER, constraints=f"{{metric: LUT, operator: '<=', value: {least_lut}}}",
                   name="ok.yaml")
    space = load_design_space(ok)
    assert cannot_fit(space, ObjectiveSet.from_space(space)) is None
    assert main(["blueprint", "validate", str(ok)]) == 0


def test_one_commands_fit_check_and_exact_front_tabulate_once(tmp_path, monkeypatch):
    """Two estimate backends of one space (the fit check's and the strategy's) share option tables; a
    subclass (anything that may estimate differently) gets its own."""
    from bsopt.explore import exact
    from bsopt.explore.fit import cannot_fit

    calls = []
    tabulate = exact.tabulate
    monkeypatch.setattr(exact, "tabulate", lambda *a, **k: calls.append(a[3]) or tabulate(*a, **k))
    exact._TABLES.clear()
    space = load_design_space(blueprint(tmp_path, PER_LAYER)).require_valid()
    objectives = ObjectiveSet.from_space(space)
    assert cannot_fit(space, objectives) is None
    first = len(calls)
    assert first >= 1
    front = exact_front(space, objectives)
    assert len(calls) == first and len(front.points) > 1

    class Subclassed(EstimateBackend):
        pass

    again = exact_front(space, objectives, Subclassed.for_space(space))
    assert len(calls) == 2 * first and [p["metrics"] for p in again.points] == [p["metrics"] for p in front.points]


def test_status_of_an_exact_study_counts_down_to_the_end_of_its_front(tmp_path, capsys):
    import json

    bp = blueprint(tmp_path, PER_LAYER, strategy="exact")
    storage = f"sqlite:///{tmp_path / 'st.db'}"
    assert main(["study", "create", "ex", "--blueprint", str(bp), "--storage", storage, "--n-trials", "3",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["study", "status", "ex", "--storage", storage, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    size = st["exact_front_size"]
    assert size > 3 and st["remaining"] == size - 3
    assert main(["study", "status", "ex", "--storage", storage]) == 0
    assert f"{size - 3} trials to the end of the exact front" in capsys.readouterr().out
    assert main(["study", "optimize", "ex", "--storage", storage, "--quiet"]) == 0  # the rest of the front
    capsys.readouterr()
    assert main(["study", "status", "ex", "--storage", storage]) == 0
    out = capsys.readouterr().out
    assert f"its exact front ({size} points) is fully evaluated" in out and "ETA" not in out
