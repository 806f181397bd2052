"""Structure-aware search for expensive backends (real FINN builds, or any black-box metric).

Real metrics are not per-layer sums of the estimates (synthesis adds routing, width converters,
timing), but they follow them closely. The ``surrogate`` strategy spends a build budget N in three
phases:

1. **Spread** (50 % of N, at least 12): configurations spread over the *exact* front of the
   estimate-backed space (:mod:`bsopt.study.exact`) — the designs the estimates say are best.
2. **Corrected** (the rest of N): after every few builds, fit for each objective a correction from the
   estimate to the real metric (least squares on ``1, e, e²`` and the number of stream-width
   mismatches between neighbouring layers — where FINN inserts width converters, an interaction
   the per-layer estimates do not see — over the completed builds, whose gate estimates ``e:*`` are
   stored beside their real ``m:*``), predict the real objectives of every estimate-front point not
   built yet, and build the one whose prediction improves most on the real front found so far (the
   most negative additive-epsilon distance to it, in normalised objectives).
3. **Refine** (only when the estimate front is used up): the study's NSGA-II sampler, whose first
   population is those builds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.trial import TrialState

from bsopt.study import queries
from bsopt.study.exact import CYCLE_METRICS, exact_front, spread

SAMPLE = "sample"  # a point source's signal: let the sampler propose the next configuration
SPREAD_FRACTION = 0.5
CORRECTED_UNTIL = 1.0
REFIT_EVERY = 4


def _minimisation(values: np.ndarray, metrics: list[str], directions: list[str]) -> np.ndarray:
    """Objective values as minimisation coordinates (log10 for cycles and throughput)."""
    out = np.empty_like(values, dtype=float)
    for j, (m, d) in enumerate(zip(metrics, directions, strict=True)):
        z = np.log10(np.maximum(values[:, j], 1e-12)) if m in CYCLE_METRICS else values[:, j]
        out[:, j] = -z if d == "maximize" else z
    return out


def plan(ctx, estimator, budget: int | None, study):
    """Yield parameter values to build (or :data:`SAMPLE`), reading ``study`` for finished builds."""
    budget = budget or 100
    front = exact_front(ctx.space, ctx.objectives, estimator)
    metrics, directions = ctx.objectives.metrics, ctx.objectives.directions
    pts = front.points
    est = np.array([[p["metrics"][m if m in p["metrics"] else m[:-5]] for m in metrics] for p in pts], dtype=float)
    base = ctx.space.values_at(0)
    mism = np.array([width_mismatches(ctx.space.config_from_values({**base, **p["values"]}).folding_config)
                     for p in pts], dtype=float)
    n_spread = max(12, int(SPREAD_FRACTION * budget))
    first = spread(pts, ctx.objectives, min(n_spread, len(pts)))
    index = {id(p): i for i, p in enumerate(pts)}
    used = set()
    for p in first:
        used.add(index[id(p)])
        yield {**base, **p["values"]}
    built = len(first)
    while built < int(CORRECTED_UNTIL * budget) and len(used) < len(pts):
        X, Y, M = _pairs(ctx, study, metrics)
        if len(X) < 4:
            break
        real = _minimisation(np.array(Y, dtype=float), metrics, directions)
        cand = _minimisation(_predict(X, Y, M, est, mism, metrics), metrics, directions)
        allv = np.vstack([real, cand])
        lo, hi = allv.min(axis=0), allv.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        R, C = (real - lo) / span, (cand - lo) / span
        front_r = R[queries.front_indices(R)]
        # additive epsilon of each candidate w.r.t. the real front: < 0 means it would extend it
        eps = np.min(np.max(C[:, None, :] - front_r[None, :, :], axis=2), axis=1)
        eps[list(used)] = np.inf
        for _ in range(REFIT_EVERY):
            i = int(np.argmin(eps))
            if not np.isfinite(eps[i]):
                break
            used.add(i)
            eps[i] = np.inf
            built += 1
            yield {**base, **pts[i]["values"]}
    while True:
        yield SAMPLE


def width_mismatches(folding: dict | None) -> int:
    """Neighbouring MVAUs whose output parallelism (PE) differs from the next one's input (SIMD)."""
    layers = [(n, e) for n, e in (folding or {}).items() if n != "Defaults" and n.startswith("MVAU")]
    return sum(1 for (_, a), (_, b) in zip(layers, layers[1:], strict=False)
               if a.get("PE") is not None and b.get("SIMD") is not None and a["PE"] != b["SIMD"])


_MISMATCH_CACHE: dict[int, float] = {}


def _pairs(ctx, study, metrics: list[str]):
    X, Y, M = [], [], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        if all(f"e:{m}" in a and f"m:{m}" in a for m in metrics):
            X.append([float(a[f"e:{m}"]) for m in metrics])
            Y.append([float(a[f"m:{m}"]) for m in metrics])
            if t._trial_id not in _MISMATCH_CACHE:
                cfg = ctx.space.config_from_values(ctx.ospace.to_values(t.params))
                _MISMATCH_CACHE[t._trial_id] = float(width_mismatches(cfg.folding_config))
            M.append(_MISMATCH_CACHE[t._trial_id])
    return X, Y, M


def _predict(X, Y, M, est: np.ndarray, mism: np.ndarray, metrics: list[str]) -> np.ndarray:
    """Per objective: least squares of the real metric on 1, e, e² (e: its estimate) and the
    width-mismatch count."""
    X, Y, M = np.array(X, dtype=float), np.array(Y, dtype=float), np.array(M, dtype=float)
    out = np.empty_like(est)
    for j in range(len(metrics)):
        x = X[:, j]
        scale = max(np.abs(x).max(), 1e-12)
        A = np.column_stack([np.ones_like(x), x / scale, (x / scale) ** 2, M])
        coef, *_ = np.linalg.lstsq(A, Y[:, j], rcond=None)
        e = est[:, j] / scale
        out[:, j] = coef[0] + coef[1] * e + coef[2] * e * e + coef[3] * mism
    return out


def describe() -> dict[str, Any]:
    return {"spread_fraction": SPREAD_FRACTION, "corrected_until": CORRECTED_UNTIL, "refit_every": REFIT_EVERY}
