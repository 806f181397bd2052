"""Counting and decoding a space without enumerating it."""

from __future__ import annotations

import itertools
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bsopt.errors import InputError
from bsopt.space.parameters import Parameter, count, decode, encode, iterate


def _param(i: int, spec) -> Parameter:
    kind, a, b = spec
    if kind == "cat":
        return Parameter(f"p{i}", "g", choices=tuple(f"c{j}" for j in range(a)))
    if kind == "int":
        return Parameter(f"p{i}", "g", kind="int", low=a, high=a + b, step=1)
    return Parameter(f"p{i}", "g", kind="float", low=0.5, high=0.5 + 0.25 * b, step=0.25)


spaces = st.lists(
    st.one_of(
        st.tuples(st.just("cat"), st.integers(1, 4), st.just(0)),
        st.tuples(st.just("int"), st.integers(-3, 3), st.integers(0, 3)),
        st.tuples(st.just("float"), st.just(0), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(spaces)
def test_decoding_every_index_yields_each_combination_once(specs):
    params = [_param(i, s) for i, s in enumerate(specs)]
    n = count(params)
    assert n == math.prod(p.size for p in params)
    seen = set()
    for k in range(n):
        values = decode(params, k)
        key = tuple(values[p.name] for p in params)
        assert key not in seen
        seen.add(key)
        assert encode(params, values) == k
    # exactly the cartesian product of each parameter's values
    product = set(itertools.product(*[[p.value_at(i) for i in range(p.size)] for p in params]))
    assert seen == product


@settings(max_examples=30, deadline=None)
@given(spaces, st.integers(0, 10_000))
def test_streaming_from_any_start_matches_random_access(specs, start):
    params = [_param(i, s) for i, s in enumerate(specs)]
    n = count(params)
    start = start % n
    streamed = list(iterate(params, start))
    assert [k for k, _ in streamed] == list(range(start, n))
    for k, values in streamed:
        assert values == decode(params, k)


def test_huge_spaces_count_and_decode_instantly():
    # 120 parameters of 50 values: 50**120 (~1e204) configurations
    params = [Parameter(f"p{i}", "g", choices=tuple(range(50))) for i in range(120)]
    t0 = time.perf_counter()
    n = count(params)
    last = decode(params, n - 1)
    middle = decode(params, n // 3)
    elapsed = time.perf_counter() - t0
    assert n == 50**120
    assert all(v == 49 for v in last.values())
    assert encode(params, middle) == n // 3
    assert elapsed < 1.0


def test_out_of_range_and_continuous():
    params = [Parameter("a", "g", choices=(1, 2, 3))]
    with pytest.raises(IndexError):
        decode(params, 3)
    with pytest.raises(IndexError):
        decode(params, -1)
    cont = Parameter("x", "g", kind="float", low=1.0, high=2.0)
    assert cont.size is None and cont.contains(1.5) and not cont.contains(2.5)
    with pytest.raises(InputError, match="continuous"):
        count([cont])


def test_grids_are_exact():
    p = Parameter("clock", "g", kind="float", low=3.0, high=10.0, step=0.5)
    assert p.size == 15
    assert [p.value_at(i) for i in (0, 1, 14)] == [3.0, 3.5, 10.0]
    assert p.index_of(4.5) == 3
    with pytest.raises(KeyError):
        p.index_of(4.25)
    q = Parameter("n", "g", kind="int", low=2, high=11, step=3)
    assert q.size == 4 and [q.value_at(i) for i in range(4)] == [2, 5, 8, 11]
    b = Parameter("flag", "g", choices=(0, 1))
    with pytest.raises(KeyError):
        b.index_of(True)  # booleans are not integers here
