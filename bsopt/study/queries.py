"""Questions about a study's results: feasible Pareto set, best, knee point, hypervolume, filters."""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from bsopt.errors import InputError
from bsopt.pareto import front_indices, merge_front
from bsopt.pareto import hypervolume as points_volume


def feasible(t: FrozenTrial) -> bool:
    """Feasible: completed and every constraint satisfied (violation <= 0)."""
    if t.state != TrialState.COMPLETE:
        return False
    cons = t.constraints or {}
    return all(c <= 0 for c in (cons.values() if isinstance(cons, dict) else cons))


def metrics_of(t: FrozenTrial) -> dict[str, float]:
    return {k[2:]: v for k, v in t.user_attrs.items() if k.startswith("m:")}


def _minimization(values: list[float], directions: list[str]) -> list[float]:
    return [v if d == "minimize" else -v for v, d in zip(values, directions, strict=True)]


def pareto_front(trials: list[FrozenTrial], directions: list[str]) -> list[FrozenTrial]:
    """Feasible non-dominated trials (duplicates of the same objective vector: the first is kept)."""
    cands = [t for t in trials if feasible(t) and t.values is not None]
    if not cands:
        return []
    pts = np.array([_minimization(t.values, directions) for t in cands], dtype=float)
    return [cands[i] for i in front_indices(pts)]


def metric_front(trials: list[FrozenTrial], metrics: list[str], directions: list[str]) -> list[FrozenTrial]:
    """Feasible non-dominated trials over any metrics recorded on them (not only the objectives)."""
    cands = [t for t in trials if feasible(t) and all(is_finite(metrics_of(t).get(m)) for m in metrics)]
    if not cands:
        return []
    pts = np.array([_minimization([metrics_of(t)[m] for m in metrics], directions) for t in cands], dtype=float)
    return [cands[i] for i in front_indices(pts)]


def hypervolume(trials: list[FrozenTrial], directions: list[str], reference: list[float] | None = None) -> float:
    """Hypervolume of the feasible front in minimisation form (maximised objectives negated).

    Without a reference point, objectives are normalised to [0, 1] by the feasible trials' range and
    the reference point is 1.1 in every dimension (log10 for cycle/throughput-like positive values
    is left to callers that need it).
    """
    front = pareto_front(trials, directions)
    if not front:
        return 0.0
    pts = np.array([_minimization(t.values, directions) for t in front], dtype=float)
    if reference is not None:
        return points_hypervolume(pts, reference=np.asarray(reference, dtype=float))
    allpts = np.array([_minimization(t.values, directions) for t in trials if feasible(t)], dtype=float)
    return points_hypervolume(pts, allpts.min(axis=0), allpts.max(axis=0))


def points_hypervolume(front: np.ndarray, lo=None, hi=None, reference=None) -> float:
    """Hypervolume of minimisation points: normalised by the range ``lo``..``hi`` with the reference at
    1.1 in every dimension, or against an explicit ``reference``."""
    pts = np.asarray(front, dtype=float)
    if len(pts) == 0:
        return 0.0
    if reference is None:
        span = np.where(hi > lo, hi - lo, 1.0)
        pts = (pts - lo) / span
        reference = np.full(pts.shape[1], 1.1)
    return points_volume(pts, reference)


class FrontArchive:
    """The feasible Pareto front of the trials told so far, kept incrementally (minimisation vectors)
    with the range of every feasible trial: what a progress line's hypervolume needs, without reading
    trials back. Points are merged in batches, so that adding n points costs about n × front
    comparisons in a few large array operations rather than n small ones."""

    def __init__(self, directions: list[str], batch: int = 512):
        self.directions = directions
        self.batch = batch
        self._front = np.empty((0, len(directions)))
        self._pending: list[list[float]] = []
        self._lo = self._hi = None

    def add(self, values: list[float]) -> None:
        self._pending.append(_minimization(values, self.directions))
        if len(self._pending) >= self.batch:
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        new = np.asarray(self._pending, dtype=float)
        self._pending = []
        lo, hi = new.min(axis=0), new.max(axis=0)
        self._lo = lo if self._lo is None else np.minimum(self._lo, lo)
        self._hi = hi if self._hi is None else np.maximum(self._hi, hi)
        self._front = merge_front(self._front, new)

    @property
    def front(self) -> np.ndarray:
        self._merge()
        return self._front

    @property
    def lo(self):
        self._merge()
        return self._lo

    @property
    def hi(self):
        self._merge()
        return self._hi

    def hypervolume(self) -> float:
        front = self.front
        return points_hypervolume(front, self._lo, self._hi) if self._lo is not None else 0.0


def knee(front: list[FrozenTrial], directions: list[str]) -> FrozenTrial | None:
    """The front point closest (Euclidean, normalised objectives) to the ideal point."""
    if not front:
        return None
    pts = np.array([_minimization(t.values, directions) for t in front], dtype=float)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    dist = np.linalg.norm((pts - lo) / span, axis=1)
    return front[int(np.argmin(dist))]


def best(trials: list[FrozenTrial], metric: str, direction: str) -> FrozenTrial | None:
    """The feasible trial with the best value of one metric (ties: the earliest)."""
    cands = [t for t in trials if feasible(t) and metric in metrics_of(t)]
    if not cands:
        return None
    sign = 1 if direction == "minimize" else -1
    return min(cands, key=lambda t: (sign * metrics_of(t)[metric], t.number))


# ------------------------------------------------------------------ --where expressions
_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}


def compile_where(expr: str):
    """A safe filter: comparisons of metric names with numbers, joined by and/or/not, parentheses.

    ``"LUT < 20000 and throughput_fps > 1e5"``. Anything else is an InputError.
    """
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise InputError(f"cannot parse --where expression: {exc.msg}", where=f"--where {expr!r}",
                         hint='e.g. "LUT < 20000 and throughput_fps > 1e5"') from exc

    def ev(node, env):
        if isinstance(node, ast.Expression):
            return ev(node.body, env)
        if isinstance(node, ast.BoolOp):
            vals = [ev(v, env) for v in node.values]
            return all(vals) if isinstance(node.op, ast.And) else any(vals)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not ev(node.operand, env)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand, env)
        if isinstance(node, ast.Compare):
            left = ev(node.left, env)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = ev(right_node, env)
                if type(op) not in _CMP or not _CMP[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Name):
            if node.id not in env:
                raise InputError(f"unknown metric '{node.id}' in --where", hint="metrics: " + ", ".join(sorted(env)))
            return env[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        raise InputError(f"unsupported element in --where: {ast.dump(node)[:40]}",
                         hint="use metric names, numbers, comparisons, and/or/not")

    def predicate(metrics: dict[str, Any]) -> bool:
        env = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return bool(ev(tree, env))

    return predicate


def is_finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def error_headline(message: str) -> tuple[str, str | None]:
    """(what failed, its hint) of an error message as bsopt records it (``what\\n  hint: …``)."""
    text, _, hint = (message or "").partition("\n  hint: ")
    head = text.strip().splitlines()[0] if text.strip() else "(no message)"
    return head[:300], (hint.strip() or None)


def outcome_summary(trials: list[FrozenTrial], top: int = 8) -> dict[str, Any]:
    """Why trials did not give a feasible design: failures grouped by message (most frequent first, with
    the hint and a trial showing it), infeasible trials by violated constraint, gate prunings by reason."""
    failures: dict[str, dict[str, Any]] = {}
    infeasible: dict[str, int] = {}
    pruned: dict[str, int] = {}
    n_failed = n_infeasible = n_pruned = 0
    for t in trials:
        a = t.user_attrs
        if t.state == TrialState.FAIL and a.get("error"):
            n_failed += 1
            head, hint = error_headline(a["error"])
            g = failures.setdefault(head, {"message": head, "hint": hint, "count": 0, "trial": t.number,
                                           "status": a.get("status"), "log": a.get("log")})
            g["count"] += 1
        elif t.state == TrialState.PRUNED:
            n_pruned += 1
            reason = str(a.get("pruned_reason") or "pruned")[:200]
            pruned[reason] = pruned.get(reason, 0) + 1
        elif t.state == TrialState.COMPLETE and not feasible(t):
            n_infeasible += 1
            for k, v in a.items():
                if k.startswith("c:") and v > 0:
                    infeasible[k[2:]] = infeasible.get(k[2:], 0) + 1
    groups = sorted(failures.values(), key=lambda g: -g["count"])
    return {"failed": n_failed, "failures": groups[:top], "failure_kinds": len(groups),
            "infeasible": n_infeasible, "violated": dict(sorted(infeasible.items(), key=lambda kv: -kv[1])),
            "pruned": n_pruned, "pruned_reasons": dict(sorted(pruned.items(), key=lambda kv: -kv[1])[:top])}
