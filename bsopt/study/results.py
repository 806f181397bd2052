"""The Python API over a study's results: Pareto sets, best and knee configurations, comparisons.

Every function takes a study as a name (with ``storage``), a loaded
:class:`~bsopt.study.engine.StudyContext`, or an ``optuna.Study`` made by bsopt, and returns plain
records (one dict per trial: ``trial``, ``config_id``, ``feasible``, the metrics) — or a pandas
DataFrame with ``as_frame=True``::

    from bsopt.study import results
    front = results.pareto("tfc-demo", where="LUT < 20000", sort="-throughput_fps")
    results.compare("tfc-demo", "tfc-nsga")["hypervolume"]

``where`` takes the same safe expressions as the CLI (metric names, numbers, comparisons, and/or/not).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from bsopt.blueprint.diagnostics import suggest
from bsopt.errors import InputError, MissingDependencyError
from bsopt.metrics import METRICS, resolve_metric
from bsopt.storage import rdb
from bsopt.storage.urls import shown_url, studies
from bsopt.study import queries


def _objectives(study, storage: str | None) -> tuple[optuna.Study, str, list[str], list[str]]:
    """(optuna study, name, objective metrics, directions) of a study given in any accepted form."""
    if isinstance(study, str):
        store = _storage(storage)
        try:
            study = optuna.load_study(study_name=study, storage=store)
        except KeyError:
            names = [s.study_name for s in studies(store)]
            raise InputError(f"no study named '{study}'", where=shown_url(storage),
                             hint=("studies: " + ", ".join(names)) if names else "create one with bsopt study create") from None
    if hasattr(study, "study") and hasattr(study, "objectives"):  # a StudyContext
        ctx = study
        return ctx.study, ctx.name, list(ctx.objectives.metrics), list(ctx.objectives.directions)
    objectives = study.user_attrs.get("objectives", {}).get("objectives", [])
    metrics = [o["metric"] for o in objectives] or list(study.metric_names or [])
    directions = [o["direction"] for o in objectives] or [d.name.lower() for d in study.directions]
    return study, study.study_name, metrics, directions


def _read(study: optuna.Study, metrics: list[str], where: str | None = None, sort: str | None = None) -> list:
    """The trials with what a query over ``metrics`` (and a ``where`` filter, a ``sort`` key) needs:
    constraints and those metrics only — the other attributes are read for the answer's trials."""
    names = set(metrics) | (queries.where_names(where) if where else set())
    if sort:
        names.add(resolve_metric(sort.lstrip("+-")) or sort.lstrip("+-"))
    return rdb.read_trials(study, keys=("c:", *(f"m:{n}" for n in sorted(names))))


def _trials_and_objectives(study, storage: str | None) -> tuple[str, list[FrozenTrial], list[str], list[str]]:
    """(name, trials with every attribute, objective metrics, directions)."""
    study, name, metrics, directions = _objectives(study, storage)
    return name, rdb.read_trials(study), metrics, directions


def _storage(url: str | None):
    from bsopt.storage import open_storage

    return open_storage(url)


def record(t: FrozenTrial) -> dict[str, Any]:
    """One trial as a plain record."""
    row = {"trial": t.number, "config_id": t.user_attrs.get("config_id"), "state": t.state.name,
           "feasible": queries.feasible(t), **queries.metrics_of(t)}
    if "quantization" in t.user_attrs:  # a co-design trial
        row["quantization"] = t.user_attrs["quantization"]
    return row


def _frame(rows: list[dict[str, Any]], as_frame: bool):
    if not as_frame:
        return rows
    try:
        import pandas as pd
    except ImportError as exc:
        raise MissingDependencyError("as_frame=True needs pandas", hint="pip install pandas") from exc
    return pd.DataFrame(rows)


def resolve_objectives(metrics: list[str] | str | None, default: list[str], default_dirs: list[str],
                       where: str = "objectives") -> tuple[list[str], list[str]]:
    if isinstance(metrics, str):  # "LUT" or "-LUT,+throughput_fps"
        metrics = [m for m in metrics.split(",") if m.strip()]
    if not metrics:
        return default, default_dirs
    names, dirs = [], []
    for m in metrics:
        m = m.strip()
        direction = None
        if m.startswith(("+", "-")):  # explicit direction: +maximise, -minimise
            direction, m = ("maximize" if m[0] == "+" else "minimize"), m[1:]
        name = resolve_metric(m)
        if name is None:
            close = suggest(m, METRICS)
            raise InputError(f"unknown metric '{m}'", where=where, hint=(f"{close} " if close else "")
                             + "metrics: " + ", ".join(METRICS))
        names.append(name)
        dirs.append(direction or METRICS[name].direction)
    return names, dirs


def _sorted(rows: list[dict[str, Any]], sort: str | None) -> list[dict[str, Any]]:
    if not sort:
        return rows
    desc = sort.startswith("-")
    name = sort.lstrip("+-")
    key = resolve_metric(name) or name
    if key not in METRICS and not any(key in r for r in rows):
        raise InputError(f"cannot sort by '{name}': not a metric", where="sort",
                         hint="a metric, '-' first for descending (e.g. -throughput_fps); metrics: "
                         + ", ".join(METRICS))
    missing = [r for r in rows if not queries.is_finite(r.get(key))]
    present = sorted((r for r in rows if queries.is_finite(r.get(key))), key=lambda r: r[key], reverse=desc)
    return present + missing


def _require_recorded(study: optuna.Study, name: str, trials, metrics: list[str]) -> None:
    """InputError when the study has finished trials but none records one of ``metrics`` (a metric
    its backend does not report): an empty answer would read as "nothing feasible". What the trials
    record is asked of the database (``trials`` hold only the metrics a query reads)."""
    if not any(t.state == TrialState.COMPLETE for t in trials):
        return
    recorded = rdb.attr_names(study, "m:")
    absent = [m for m in metrics if m not in recorded]
    if absent:
        raise InputError(f"no trial of study '{name}' records {', '.join(absent)}",
                         hint="its backend does not report it; metrics its trials record: "
                         + ", ".join(m for m in METRICS if m in recorded))


def pareto(study, *, objectives: list[str] | None = None, where: str | None = None, sort: str | None = None,
           storage: str | None = None, as_frame: bool = False):
    """The feasible non-dominated configurations, over the study's objectives or any ``objectives``
    (metric names, optionally prefixed ``+``/``-`` for maximise/minimise)."""
    ostudy, study_name, metrics, directions = _objectives(study, storage)
    metrics, directions = resolve_objectives(objectives, metrics, directions)
    trials = _read(ostudy, metrics, where, sort)
    _require_recorded(ostudy, study_name, trials, metrics)
    if where:
        trials = _filtered(ostudy, trials, where)
    front = rdb.complete_attrs(ostudy, queries.metric_front(trials, metrics, directions))
    return _frame(_sorted([record(t) for t in front], sort), as_frame)


def _filtered(study: optuna.Study, trials: list, where: str) -> list:
    """The completed trials that satisfy ``where``; a name no trial records is an InputError."""
    pred = queries.compile_where(where)
    recorded = rdb.attr_names(study, "m:")
    unknown = sorted(n for n in queries.where_names(where) if n not in recorded)
    if unknown and recorded:
        raise InputError(f"unknown metric '{unknown[0]}' in --where", hint="metrics: " + ", ".join(sorted(recorded)))
    return [t for t in trials if t.state == TrialState.COMPLETE and pred(queries.metrics_of(t))]


def best(study, metric: str | None = None, *, where: str | None = None, storage: str | None = None):
    """The best feasible configuration for one metric (its own direction), or — without a metric —
    the knee of the Pareto front (closest to the ideal point in normalised objectives). None if the
    study has no feasible configuration."""
    ostudy, study_name, metrics, directions = _objectives(study, storage)
    wanted = resolve_objectives([metric], metrics, directions, "--metric")[0] if metric is not None else []
    trials = _read(ostudy, metrics + wanted, where)
    if metric is not None:
        _require_recorded(ostudy, study_name, trials, wanted)
    if where:
        trials = _filtered(ostudy, trials, where)
    if metric is None:
        t = queries.knee(queries.metric_front(trials, metrics, directions), directions) if trials else None
    else:
        (name,), (direction,) = resolve_objectives([metric], metrics, directions)
        t = queries.best(trials, name, direction)
    return None if t is None else record(rdb.complete_attrs(ostudy, [t])[0])


def knee(study, *, storage: str | None = None):
    """The knee of the Pareto front (see :func:`best`)."""
    return best(study, storage=storage)


def compare(study_a, study_b, *, storage: str | None = None, storage_b: str | None = None) -> dict[str, Any]:
    """How two studies' feasible fronts compare on the same objectives.

    ``hypervolume``: each front's hypervolume with both normalised together (the union's ideal and
    nadir points, reference point 1.1); ``coverage``: C(a, b), the fraction of b's front weakly
    dominated by a point of a's front, and C(b, a).
    """
    name_a, ta, ma, da = _trials_and_objectives(study_a, storage)
    name_b, tb, mb, db = _trials_and_objectives(study_b, storage_b or storage)
    if (ma, da) != (mb, db):
        raise InputError(f"studies '{name_a}' and '{name_b}' have different objectives",
                         hint=f"{name_a}: {list(zip(ma, da, strict=True))}; {name_b}: {list(zip(mb, db, strict=True))}")
    fa, fb = queries.metric_front(ta, ma, da), queries.metric_front(tb, mb, db)

    def pts(front):
        return np.array([[(-1 if d == "maximize" else 1) * queries.metrics_of(t)[m] for m, d in
                          zip(ma, da, strict=True)] for t in front], dtype=float).reshape(len(front), len(ma))

    pa, pb = pts(fa), pts(fb)
    both = np.vstack([pa, pb]) if len(pa) + len(pb) else np.empty((0, len(ma)))
    hv = {name_a: 0.0, name_b: 0.0}
    if len(both):
        from bsopt.pareto import hypervolume

        lo, hi = both.min(axis=0), both.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        ref = np.full(len(ma), 1.1)
        for name, p in ((name_a, pa), (name_b, pb)):
            if len(p):
                hv[name] = hypervolume((p - lo) / span, ref)

    def coverage(x, y) -> float | None:
        if not len(y):
            return None
        if not len(x):
            return 0.0
        return float(np.mean([np.any(np.all(x <= q, axis=1)) for q in y]))

    return {"studies": [name_a, name_b], "objectives": [f"{d} {m}" for m, d in zip(ma, da, strict=True)],
            "trials": {name_a: len(ta), name_b: len(tb)}, "front_size": {name_a: len(fa), name_b: len(fb)},
            "hypervolume": hv, "coverage": {f"C({name_a},{name_b})": coverage(pa, pb),
                                            f"C({name_b},{name_a})": coverage(pb, pa)}}
