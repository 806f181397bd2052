"""Pareto fronts, hypervolume, knee and --where filters on hand-made trials."""

from __future__ import annotations

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import FloatDistribution

from bsopt.errors import InputError
from bsopt.study import queries


def trial(number, values, violations=(), metrics=None):
    t = optuna.trial.create_trial(values=list(values), params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
                                  user_attrs={f"m:{k}": v for k, v in (metrics or {}).items()},
                                  system_attrs={"constraints": list(violations)})
    t.number = number
    return t


def brute_front(trials, dirs):
    def key(t):
        return [v if d == "minimize" else -v for v, d in zip(t.values, dirs, strict=True)]

    feas = [t for t in trials if queries.feasible(t)]
    out, seen = [], set()
    for t in feas:
        k = tuple(key(t))
        dominated = any(all(a <= b for a, b in zip(key(o), k, strict=True))
                        and any(a < b for a, b in zip(key(o), k, strict=True)) for o in feas)
        if not dominated and k not in seen:
            out.append(t.number)
            seen.add(k)
    return sorted(out)


@pytest.mark.parametrize("constant", [[1], [0, 2], [0, 1, 3]])
def test_front_indices_with_columns_equal_in_every_row(constant):
    """A column equal in every row is dropped before the comparison (4 columns become 3, 2 or 1):
    the same rows as comparing every pair with it."""
    import numpy as np

    from bsopt.pareto import front_indices

    pts = np.random.default_rng(len(constant)).integers(0, 9, (600, 4)).astype(float)
    pts[:, constant] = 5.0
    assert front_indices(pts) == _brute_front_rows(pts)


@pytest.mark.parametrize("kind", ["integer", "wide integer", "fractional"])
def test_unique_rows_equal_numpys(kind):
    import numpy as np

    from bsopt.pareto import _unique_rows

    rng = np.random.default_rng(7)
    pts = rng.integers(-20, 20, (5000, 4)).astype(float)
    if kind == "wide integer":  # ranges whose product overflows an int64 key: the lexsort path
        pts[:, 0] *= 2.0 ** 40
        pts[:, 1] *= 2.0 ** 30
    if kind == "fractional":
        pts += 0.25
    rows, first = _unique_rows(pts)
    expected_rows, expected_first = np.unique(pts, axis=0, return_index=True)
    assert np.array_equal(rows, expected_rows) and np.array_equal(first, expected_first)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.booleans()), min_size=1, max_size=40))
def test_front_equals_brute_force(points):
    dirs = ["maximize", "minimize"]
    trials = [trial(i, (a, b), violations=[0.0 if ok else 1.0]) for i, (a, b, ok) in enumerate(points)]
    assert sorted(t.number for t in queries.pareto_front(trials, dirs)) == brute_front(trials, dirs)


def test_hypervolume_of_a_known_front():
    # minimise both; points (0,1), (1,0) with the reference (2,2): area 4 - 1 = 3
    trials = [trial(0, (0, 1)), trial(1, (1, 0)), trial(2, (1.5, 1.5))]
    assert queries.hypervolume(trials, ["minimize", "minimize"], reference=[2, 2]) == pytest.approx(3.0)
    # infeasible points do not count
    trials.append(trial(3, (-1, -1), violations=[0.5]))
    assert queries.hypervolume(trials, ["minimize", "minimize"], reference=[2, 2]) == pytest.approx(3.0)


def _grid_volume(points, ref):
    """The 3-D hypervolume of integer points by counting the unit cells they dominate."""
    return sum(1 for x in range(ref[0]) for y in range(ref[1]) for z in range(ref[2])
               if any(px <= x and py <= y and pz <= z for px, py, pz in points))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)), min_size=0, max_size=25))
def test_3d_hypervolume_counts_the_dominated_cells(points):
    import numpy as np

    from bsopt.pareto import hypervolume

    ref = (6, 6, 6)
    pts = np.array(points, dtype=float).reshape(-1, 3)
    assert hypervolume(pts, np.array(ref, dtype=float)) == pytest.approx(_grid_volume(points, ref))


def test_3d_hypervolume_of_a_large_front_matches_optunas():
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    from bsopt.pareto import hypervolume

    pts = np.random.default_rng(1).random((1500, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)  # a curved front with many non-dominated points
    ref = np.full(3, 1.1)
    assert hypervolume(pts, ref) == pytest.approx(float(compute_hypervolume(pts, ref)), rel=1e-12)


def _brute_front_rows(pts):
    """Indices of the non-dominated rows, the first of identical rows, by comparing every pair."""
    out = []
    for i, p in enumerate(pts):
        if not any((all(q <= p) and (any(q < p) or j < i)) for j, q in enumerate(pts) if j != i):
            out.append(i)
    return out


@pytest.mark.parametrize("n,m,seed", [(700, 2, 0), (900, 3, 1), (600, 4, 2), (1, 3, 3)])
def test_front_indices_across_blocks_equals_pairwise_comparison(n, m, seed):
    import numpy as np

    from bsopt.pareto import front_indices

    rng = np.random.default_rng(seed)
    pts = rng.integers(0, 12, (n, m)).astype(float)  # many ties and duplicates
    # blocks of 256 rows and 2048-row chunks: 700-900 rows cross several block boundaries
    assert front_indices(pts) == _brute_front_rows(pts)
    on_plane = rng.random((n, m))
    on_plane[:, -1] = m - on_plane[:, :-1].sum(axis=1)  # every point on the front
    assert front_indices(on_plane) == list(range(n))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=60),
       st.integers(1, 7))
def test_front_archive_in_batches_equals_the_front_of_everything(points, batch):
    import numpy as np

    arch = queries.FrontArchive(["minimize", "maximize", "minimize"], batch=batch)
    for a, b, c in points:
        arch.add([a, b, c])
    pts = np.array([(a, -b, c) for a, b, c in points], dtype=float)
    want = {tuple(pts[i]) for i in _brute_front_rows(pts)}
    assert sorted(map(tuple, arch.front)) == sorted(want)
    assert list(arch.lo) == list(pts.min(axis=0)) and list(arch.hi) == list(pts.max(axis=0))


def test_knee_and_best():
    front = [trial(0, (10, 100), metrics={"LUT": 100}), trial(1, (8, 10), metrics={"LUT": 10}),
             trial(2, (1, 1), metrics={"LUT": 1})]
    dirs = ["maximize", "minimize"]
    assert queries.knee(queries.pareto_front(front, dirs), dirs).number == 1
    assert queries.best(front, "LUT", "minimize").number == 2


def test_where_expressions():
    pred = queries.compile_where("LUT < 20000 and (throughput_fps > 1e5 or not BRAM_18K >= 10)")
    assert pred({"LUT": 100, "throughput_fps": 2e5, "BRAM_18K": 50})
    assert pred({"LUT": 100, "throughput_fps": 1, "BRAM_18K": 5})
    assert not pred({"LUT": 30000, "throughput_fps": 2e5, "BRAM_18K": 5})
    with pytest.raises(InputError, match="unknown metric 'LUTS'"):
        queries.compile_where("LUTS < 3")({"LUT": 1})
    with pytest.raises(InputError, match='cannot use "__import__'):
        queries.compile_where("__import__('os')")({"LUT": 1})
    # the offending part in the user's words, not Python's syntax tree
    for expr, part in (("LUT << 3", "LUT << 3"), ("LUT < DSP*2", "DSP*2")):
        with pytest.raises(InputError) as info:
            queries.compile_where(expr)
        assert info.value.message == f"cannot use {part!r}: only metric names, numbers, comparisons and and/or/not"
        assert info.value.where == f"--where {expr!r}"
    # a bare name or number is no condition (it would have kept every trial)
    for expr, part in (("LUT", "LUT"), ("LUT < 3 and DSP", "DSP"), ("not 1", "1")):
        with pytest.raises(InputError, match=f"a comparison is needed where it has {part!r}"):
            queries.compile_where(expr)
    # metric aliases, as --metric takes them
    assert queries.compile_where("lut < 3 and fps > 10")({"LUT": 1, "throughput_fps": 20})
    assert queries.where_names("lut < 3 and DSP > 1 and custom > 0") == {"LUT", "DSP", "custom"}
