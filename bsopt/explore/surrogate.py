"""Structure-aware search for expensive backends (real FINN builds, or any black-box metric).

Real metrics are not per-layer sums of the estimates (synthesis adds routing, width converters,
timing), but they follow them closely. The ``surrogate`` strategy spends a build budget N in three
phases:

1. **Spread** (50 % of N, at least 12): configurations spread over the *exact* front of the
   estimate-backed space (:mod:`bsopt.explore.exact`) — the designs the estimates say are best.
2. **Corrected** (the rest of N): after every few builds, fit for each objective a correction from the
   estimate to the real metric (least squares on ``1, e, e²`` and the number of stream-width
   mismatches between neighbouring layers — where FINN inserts width converters, an interaction
   the per-layer estimates do not see — over the completed builds, whose gate estimates ``e:*`` are
   stored beside their real ``m:*``), then each design family's mean relative residual (a family: the
   categorical choices — memory styles, resource types, backends — whose effect synthesis can shift
   as a whole; a family not built yet is assumed as good as the best-placed spread of those seen),
   predict the real objectives of every estimate-front point not built yet, and build the one whose
   prediction improves most on the real front found so far (the most negative additive-epsilon
   distance to it, in normalised objectives). Every 24 builds the candidates grow by the exact front
   of the *corrected* space: a per-layer-type factor on each group's LUT/BRAM/URAM/DSP
   (``real - estimate = sum over types of a_type x the type's estimated share``, least squares on the
   builds) keeps the space separable, so :func:`bsopt.explore.exact.exact_front` solves it exactly.
3. **Refine** (only when the estimate front is used up): the study's NSGA-II sampler, whose first
   population is those builds.
"""

from __future__ import annotations

import numpy as np
from optuna.trial import TrialState
from sklearn.linear_model import LinearRegression, Ridge

from bsopt.explore.exact import CYCLE_METRICS, exact_front, layer_type, spread
from bsopt.explore.samplers import SAMPLE
from bsopt.pareto import front_indices
from bsopt.storage import rdb

SPREAD_FRACTION = 0.5
CORRECTED_UNTIL = 1.0
REFIT_EVERY = 4
LAYER_REFIT_EVERY = 24  # builds between per-layer corrections of the exact front (~1 s each on CNV)


def _minimisation(values: np.ndarray, metrics: list[str], directions: list[str]) -> np.ndarray:
    """Objective values as minimisation coordinates (log10 for cycles and throughput)."""
    out = np.empty_like(values, dtype=float)
    for j, (m, d) in enumerate(zip(metrics, directions, strict=True)):
        z = np.log10(np.maximum(values[:, j], 1e-12)) if m in CYCLE_METRICS else values[:, j]
        out[:, j] = -z if d == "maximize" else z
    return out


def _objective_values(metrics_dict: dict[str, float], metrics: list[str], avail: dict[str, int]) -> list[float]:
    """An exact-front point's objective values (``*_util`` from its resource sum and the part)."""
    out = []
    for m in metrics:
        if m in metrics_dict:
            out.append(metrics_dict[m])
        else:  # X_util: the sum over the part's X
            base = m[:-5]
            out.append(metrics_dict[base] / avail[base] if avail.get(base) else metrics_dict[base])
    return out


def plan(ctx, estimator, budget: int | None, study):
    """Yield parameter values to build (or :data:`SAMPLE`), reading ``study`` for finished builds."""
    budget = budget or 100
    front = exact_front(ctx.space, ctx.objectives, estimator)
    metrics, directions = ctx.objectives.metrics, ctx.objectives.directions
    pts = front.points
    from bsopt.hw.parts import part_resources

    avail = part_resources(ctx.space.fixed_target()["part"]) or {}
    est = np.array([_objective_values(p["metrics"], metrics, avail) for p in pts], dtype=float)
    base = ctx.space.values_at(0)
    mism = np.array([width_mismatches(ctx.space.config_from_values({**base, **p["values"]}).folding_config)
                     for p in pts], dtype=float)
    fam = [family(ctx.space, {**base, **p["values"]}) for p in pts]
    n_spread = max(12, int(SPREAD_FRACTION * budget))
    first = spread(pts, ctx.objectives, min(n_spread, len(pts)))
    index = {id(p): i for i, p in enumerate(pts)}
    # a resumed study: what it already evaluated is not proposed again
    done = {t.user_attrs.get("config_id") for t in rdb.read_trials(study) if t.state.is_finished()}

    def evaluated(values) -> bool:
        return ctx.space.config_from_values({**base, **values}).config_id in done

    used = {i for i, p in enumerate(pts) if evaluated(p["values"])}
    built = 0
    for p in first:
        if index[id(p)] in used:
            continue
        used.add(index[id(p)])
        built += 1
        yield {**base, **p["values"]}
    pool = {_key(p["values"]) for p in pts}
    last_layer_fit = built
    while built < int(CORRECTED_UNTIL * budget) and len(used) < len(pts):
        X, Y, M, F = _pairs(ctx, study, metrics)
        if len(X) < 4:
            break
        if built - last_layer_fit >= LAYER_REFIT_EVERY:
            # per-layer-type additive correction → exact front of the corrected space → new candidates
            last_layer_fit = built
            for p in _corrected_front(ctx, estimator, study, metrics):
                k = _key(p["values"])
                if k in pool:
                    continue
                pool.add(k)
                if evaluated(p["values"]):
                    used.add(len(pts))
                pts.append({"values": p["values"], "metrics": p["estimate"]})
                est = np.vstack([est, [_objective_values(p["estimate"], metrics, avail)]])
                v = {**base, **p["values"]}
                mism = np.append(mism, width_mismatches(ctx.space.config_from_values(v).folding_config))
                fam.append(family(ctx.space, v))
        real = _minimisation(np.array(Y, dtype=float), metrics, directions)
        cand = _minimisation(_predict(X, Y, M, F, est, mism, fam, metrics, directions), metrics, directions)
        allv = np.vstack([real, cand])
        lo, hi = allv.min(axis=0), allv.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        R, C = (real - lo) / span, (cand - lo) / span
        front_r = R[front_indices(R)]
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


def _key(values: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in values.items()))


def _corrected_front(ctx, estimator, study, metrics: list[str]) -> list[dict]:
    """The exact front of the space whose per-group LUT/BRAM/URAM/DSP are corrected by a per-layer-type
    factor fitted on the builds: real_total - estimate_total = sum over layer types of
    a_type * (the type's estimated share). Empty when it cannot be fitted."""
    from bsopt.explore import exact

    try:
        groups, global_params = exact.decompose(ctx.space)
    except exact.NotSeparable:
        return []
    if global_params:
        return []  # per-combination tables: not modelled (the estimate front still applies)
    tables = exact._tables(ctx.space, {}, groups, estimator)[0]
    types = sorted({layer_type(t.layer) for t in tables})
    index = [{tuple(v): i for i, v in enumerate(t.values)} for t in tables]
    rows, targets = [], {m: [] for m in exact.SUM_METRICS}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        if not all(f"m:{m}" in a and f"e:{m}" in a for m in exact.SUM_METRICS):
            continue
        values = ctx.ospace.to_values(t.params)
        share = {ty: np.zeros(len(exact.SUM_METRICS)) for ty in types}
        ok = True
        for tab, idx in zip(tables, index, strict=True):
            k = idx.get(tuple(values.get(p) for p in tab.params))
            if k is None:
                ok = False
                break
            share[layer_type(tab.layer)] += tab.sums[k]
        if not ok:
            continue
        rows.append(share)
        for m in exact.SUM_METRICS:
            targets[m].append(float(a[f"m:{m}"]) - float(a[f"e:{m}"]))
    if len(rows) < 2 * len(types):
        return []
    factor = {ty: np.zeros(len(exact.SUM_METRICS)) for ty in types}
    for j, m in enumerate(exact.SUM_METRICS):
        A = np.array([[r[ty][j] for ty in types] for r in rows])
        if not A.any():
            continue
        lam = 1e-6 * float((A * A).sum())  # a touch of ridge: types with no share stay at 0
        coef = Ridge(alpha=lam, fit_intercept=False, solver="cholesky").fit(A, np.array(targets[m])).coef_
        for ty, c in zip(types, coef, strict=True):
            factor[ty][j] = max(float(c), -0.5)

    def correct(table):
        return table.cycles, table.sums * (1.0 + factor[layer_type(table.layer)])

    try:
        return exact.exact_front(ctx.space, ctx.objectives, estimator, correction=correct).points
    except exact.NotSeparable:
        return []


def width_mismatches(folding: dict | None) -> int:
    """Neighbouring MVAUs whose output parallelism (PE) differs from the next one's input (SIMD)."""
    layers = [(n, e) for n, e in (folding or {}).items() if n != "Defaults" and n.startswith("MVAU")]
    return sum(1 for (_, a), (_, b) in zip(layers, layers[1:], strict=False)
               if a.get("PE") is not None and b.get("SIMD") is not None and a["PE"] != b["SIMD"])


def family(space, values: dict) -> tuple:
    """A design's family: its categorical choices (memory styles, resource types, backends, …)."""
    return tuple(values.get(p.name) for p in space.parameters
                 if p.is_choice and p.kind == "categorical" and any(isinstance(c, str) for c in p.choices))


_FEATURE_CACHE: dict[tuple, tuple[float, tuple]] = {}


def _pairs(ctx, study, metrics: list[str]):
    X, Y, M, F = [], [], [], []
    for t in rdb.read_trials(study, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        if all(f"e:{m}" in a and f"m:{m}" in a for m in metrics):
            X.append([float(a[f"e:{m}"]) for m in metrics])
            Y.append([float(a[f"m:{m}"]) for m in metrics])
            key = (study.study_name, t._trial_id, t.datetime_start)  # stable across runs of a process
            if key not in _FEATURE_CACHE:
                values = ctx.ospace.to_values(rdb.full_trial(study, t).params)
                cfg = ctx.space.config_from_values(values)
                _FEATURE_CACHE[key] = (float(width_mismatches(cfg.folding_config)), family(ctx.space, values))
            M.append(_FEATURE_CACHE[key][0])
            F.append(_FEATURE_CACHE[key][1])
    return X, Y, M, F


def _predict(X, Y, M, F, est: np.ndarray, mism: np.ndarray, fam: list, metrics: list[str],
             directions: list[str]) -> np.ndarray:
    """Per objective: least squares of the real metric on 1, e, e² (e: its estimate) and the
    width-mismatch count; then each design family's mean relative residual (shrunk by n/(n+1)) — a
    family never built gets the optimistic end of the spread of the families seen (it may be lucky)."""
    X, Y, M = np.array(X, dtype=float), np.array(Y, dtype=float), np.array(M, dtype=float)
    out = np.empty_like(est)
    for j in range(len(metrics)):
        x = X[:, j]
        scale = max(np.abs(x).max(), 1e-12)
        A = np.column_stack([np.ones_like(x), x / scale, (x / scale) ** 2, M])
        coef = LinearRegression(fit_intercept=False).fit(A, Y[:, j]).coef_
        fit = A @ coef
        rel = (Y[:, j] - fit) / np.maximum(np.abs(fit), 1e-9)
        by_family: dict[tuple, list[float]] = {}
        for f, r in zip(F, rel, strict=True):
            by_family.setdefault(f, []).append(float(r))
        effect = {f: np.mean(v) * len(v) / (len(v) + 1) for f, v in by_family.items()}
        spread_ = float(np.std(list(effect.values()))) if len(effect) > 1 else 0.0
        e = est[:, j] / scale
        pred = coef[0] + coef[1] * e + coef[2] * e * e + coef[3] * mism
        optimistic = spread_ if directions[j] == "maximize" else -spread_
        out[:, j] = pred * (1 + np.array([effect.get(f, optimistic) for f in fam]))
    return out
