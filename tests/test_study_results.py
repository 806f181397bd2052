"""The results API (bsopt.study.results) and its CLI: Pareto sets over any metrics, best, knee, compare —
checked against brute-force computations over the trials."""

from __future__ import annotations

import json

import pytest
from finn_reference import network_dirs, prepost_model

from bsopt.cli import main
from bsopt.errors import InputError
from bsopt.study import results
from bsopt.study.engine import Runner, create_study

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")

SMALL = """  layers:
    MVAU_hls_0: {PE: [1, 4, 16], SIMD: [16, 49]}
    MVAU_hls_1: {PE: [1, 8], SIMD: [8, 16]}
    MVAU_hls_2: {PE: [1, 8], ram_style: [auto, distributed]}
"""  # 96 configurations


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("results")
    import os

    old = os.getcwd()
    os.chdir(tmp)
    try:
        bp = tmp / "bp.yaml"
        bp.write_text(f"""
version: "3.0"
name: results-test
model: {prepost_model("tfc_w2a2")}
hw_compiler:
  build_steps: [step_streamline, step_minimize_bit_width]
target: {{board: Pynq-Z1, clock_ns: 10.0}}
objectives: [throughput_fps, LUT, BRAM_18K]
search:
  constraints:
    - {{metric: LUT, operator: '<=', value: 9000}}
folding:
{SMALL}""")
        full = create_study("full", bp, sampler="exhaustive")
        Runner(full, progress=False).optimize(n_trials=1000)
        part = create_study("part", bp, sampler="random", seed=4)
        Runner(part, progress=False).optimize(n_trials=12)
        yield tmp, full, part
    finally:
        os.chdir(old)


def brute_front(trials, metrics, directions):
    rows = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("feasible")]
    sign = [1 if d == "minimize" else -1 for d in directions]

    def vec(t):
        return [s * t.user_attrs[f"m:{m}"] for m, s in zip(metrics, sign, strict=True)]

    front, seen = [], set()
    for t in rows:
        v = vec(t)
        dominated = any(all(a <= b for a, b in zip(vec(o), v, strict=True)) and vec(o) != v for o in rows)
        if not dominated and tuple(v) not in seen:
            seen.add(tuple(v))
            front.append(t.number)
    return sorted(front)


def test_pareto_over_the_objectives_and_over_other_metrics(studies):
    _, full, _ = studies
    trials = full.study.get_trials()
    assert len(trials) == 96
    front = results.pareto(full)
    assert sorted(r["trial"] for r in front) == brute_front(trials, ["throughput_fps", "LUT", "BRAM_18K"],
                                                            ["maximize", "minimize", "minimize"])
    assert all(r["feasible"] and r["LUT"] <= 9000 for r in front)
    other = results.pareto(full, objectives=["max_cycles", "LUT"])
    assert sorted(r["trial"] for r in other) == brute_front(trials, ["max_cycles", "LUT"], ["minimize", "minimize"])
    # an explicit direction: the most LUT-hungry designs that still fit, against cycles
    flipped = results.pareto(full, objectives=["max_cycles", "+LUT"])
    assert sorted(r["trial"] for r in flipped) == brute_front(trials, ["max_cycles", "LUT"], ["minimize", "maximize"])
    sorted_rows = results.pareto(full, sort="-throughput_fps")
    assert [r["throughput_fps"] for r in sorted_rows] == sorted((r["throughput_fps"] for r in front), reverse=True)


def test_where_filters_before_the_front(studies):
    _, full, _ = studies
    trials = [t for t in full.study.get_trials() if t.user_attrs.get("m:BRAM_18K", 99) <= 8]
    rows = results.pareto(full, where="BRAM_18K <= 8 and not LUT > 8000")
    expected = brute_front([t for t in trials if t.user_attrs["m:LUT"] <= 8000],
                           ["throughput_fps", "LUT", "BRAM_18K"], ["maximize", "minimize", "minimize"])
    assert sorted(r["trial"] for r in rows) == expected and rows
    with pytest.raises(InputError, match="cannot use .*only metric names, numbers, comparisons"):
        results.pareto(full, where="__import__('os').system('true')")
    with pytest.raises(InputError, match="unknown metric 'LUTS'") as info:
        results.pareto(full, objectives=["LUTS"])
    assert info.value.where == "objectives" and info.value.hint.startswith("did you mean 'LUT'?")
    with pytest.raises(InputError, match="unknown metric 'LUTs'") as info:
        results.best(full, "LUTs")
    assert info.value.where == "--metric"


def test_best_and_knee(studies):
    _, full, _ = studies
    feasible = [t for t in full.study.get_trials() if t.user_attrs.get("feasible")]
    lowest = min(feasible, key=lambda t: (t.user_attrs["m:LUT"], t.number))
    assert results.best(full, "LUT")["trial"] == lowest.number
    fastest = max(feasible, key=lambda t: (t.user_attrs["m:throughput_fps"], -t.number))
    assert results.best(full, "throughput_fps")["trial"] == fastest.number
    knee = results.best(full)
    assert knee["trial"] in {r["trial"] for r in results.pareto(full)} and results.knee(full) == knee


def test_compare_hypervolume_and_coverage(studies, capsys, monkeypatch):
    tmp, full, part = studies
    c = results.compare(full, part)
    # the exhaustive study's front dominates every configuration the random one found
    assert c["coverage"]["C(full,part)"] == 1.0 and c["coverage"]["C(part,full)"] < 1.0
    assert c["hypervolume"]["full"] >= c["hypervolume"]["part"] > 0
    same = results.compare(full, full)
    assert same["coverage"]["C(full,full)"] == 1.0
    monkeypatch.chdir(tmp)
    assert main(["study", "compare", "full", "part", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(c))
    assert main(["study", "compare", "full", "part"]) == 0
    assert "covers the other's front" in capsys.readouterr().out
    assert main(["study", "pareto", "full", "--objectives", "max_cycles,LUT", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert sorted(r["trial"] for r in cli) == sorted(r["trial"] for r in results.pareto(full, objectives=[
        "max_cycles", "LUT"]))


def test_records_as_a_dataframe(studies):
    _, full, _ = studies
    pd = pytest.importorskip("pandas")
    df = results.pareto(full, as_frame=True)
    assert isinstance(df, pd.DataFrame) and len(df) == len(results.pareto(full))
    assert {"trial", "config_id", "LUT", "throughput_fps"} <= set(df.columns)
