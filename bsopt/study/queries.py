"""Questions about a study's results: feasible Pareto set, best, knee point, hypervolume, filters."""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from bsopt.errors import InputError
from bsopt.metrics import resolve_metric
from bsopt.pareto import front_indices, merge_front
from bsopt.pareto import hypervolume as points_volume
from bsopt.study.objectives import CODEGEN_CONSTRAINT


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


def pareto_front(trials: list[FrozenTrial], directions: list[str], *, all_feasible: bool = False) -> list[FrozenTrial]:
    """Feasible non-dominated trials (duplicates of the same objective vector: the first is kept).
    ``all_feasible``: the caller already kept only feasible trials."""
    cands = [t for t in trials if (all_feasible or feasible(t)) and t.values is not None]
    if not cands:
        return []
    pts = np.array([_minimization(t.values, directions) for t in cands], dtype=float)
    return [cands[i] for i in front_indices(pts)]


def metric_front(trials: list[FrozenTrial], metrics: list[str], directions: list[str]) -> list[FrozenTrial]:
    """Feasible non-dominated trials over any metrics recorded on them (not only the objectives)."""
    cands, rows = [], []
    for t in trials:
        if not feasible(t):
            continue
        attrs = t.user_attrs
        row = [attrs.get("m:" + m) for m in metrics]
        if all(is_finite(v) for v in row):
            cands.append(t)
            rows.append(_minimization(row, directions))
    if not cands:
        return []
    return [cands[i] for i in front_indices(np.array(rows, dtype=float))]


#: what the hypervolume bsopt shows means (progress bar, status, plots, docs/study.md)
HV_MEANING = ("the share of the study's reference box that the feasible Pareto front dominates (the box: "
              "each objective from the best to the worst feasible value when it was fixed, at the end of the "
              "first run with 20 feasible trials, widened by 10%): 0 to 1, never decreasing as trials are added; "
              "each study has its own box, so compare studies with `bsopt study compare`")
#: the study user attribute holding the reference box
HV_BOX_ATTR = "hv_box"


def reference_box(lo, hi) -> dict[str, list[float]]:
    """A hypervolume reference box in minimisation form from the range ``lo``..``hi`` of feasible points:
    widened by 10% of the range on each side (a range of 0: by 10% of the value, at least 1), without
    crossing 0 where the range does not."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    span = hi - lo
    pad = np.where(span > 0, 0.1 * span, np.maximum(0.1 * np.abs(lo), 1.0))
    ideal, nadir = lo - pad, hi + pad
    # metrics that cannot change sign (resources, throughput) keep it: no LUT below 0
    ideal = np.where(lo >= 0, np.maximum(ideal, 0.0), ideal)
    nadir = np.where(hi <= 0, np.minimum(nadir, 0.0), nadir)
    return {"ideal": ideal.tolist(), "nadir": nadir.tolist()}


def trials_box(trials: list, directions: list[str]) -> dict[str, list[float]] | None:
    """The reference box of feasible ``trials`` (None: none is feasible): a provisional box, for studies
    whose box is not fixed yet."""
    pts = [_minimization(t.values, directions) for t in trials if feasible(t)]
    if not pts:
        return None
    arr = np.asarray(pts, dtype=float)
    return reference_box(arr.min(axis=0), arr.max(axis=0))


def box_hypervolume(front, box: dict[str, list[float]]) -> float:
    """The share of ``box`` that minimisation points ``front`` dominate (points outside the box are
    clipped to it): in [0, 1], and adding points never lowers it."""
    pts = np.asarray(front, dtype=float)
    if len(pts) == 0:
        return 0.0
    ideal, nadir = np.asarray(box["ideal"], dtype=float), np.asarray(box["nadir"], dtype=float)
    span = np.where(nadir > ideal, nadir - ideal, 1.0)
    unit = np.clip((pts - ideal) / span, 0.0, 1.0)
    return float(points_volume(unit, np.ones(pts.shape[1])))


def study_box(study) -> dict[str, list[float]] | None:
    """The reference box recorded on a study (None: not fixed yet)."""
    box = study.user_attrs.get(HV_BOX_ATTR)
    return box if isinstance(box, dict) and "ideal" in box and "nadir" in box else None


def hypervolume(trials: list[FrozenTrial], directions: list[str], reference: list[float] | None = None,
                box: dict[str, list[float]] | None = None) -> float:
    """Hypervolume of the feasible front in minimisation form (maximised objectives negated): the share
    of ``box`` it dominates (see :data:`HV_MEANING`; without a box, the box of these trials), or the
    plain volume against an explicit ``reference`` point."""
    front = pareto_front(trials, directions)
    if not front:
        return 0.0
    if reference is not None:
        pts = np.array([_minimization(t.values, directions) for t in front], dtype=float)
        return points_hypervolume(pts, reference=np.asarray(reference, dtype=float))
    return front_hypervolume(front, directions, box or trials_box(trials, directions))


def front_hypervolume(front: list, directions: list[str], box: dict[str, list[float]] | None) -> float:
    """The share of ``box`` that the trials of a Pareto ``front`` dominate (0 without a front or box)."""
    if not front or box is None:
        return 0.0
    return box_hypervolume([_minimization(t.values, directions) for t in front], box)


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
        self.count = 0  # points added

    def add(self, values: list[float]) -> None:
        self.count += 1
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

    def box(self) -> dict[str, list[float]] | None:
        """The reference box of the points added so far (None: none)."""
        return reference_box(self.lo, self.hi) if self.lo is not None else None

    def hypervolume(self, box: dict[str, list[float]] | None = None) -> float:
        """The share of ``box`` (default: the box of the points so far) the front dominates."""
        box = box or self.box()
        return box_hypervolume(self.front, box) if box is not None else 0.0


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


def where_names(expr: str) -> set[str]:
    """The metric names a ``--where`` expression uses, aliases resolved (``lut`` is LUT; empty if it does
    not parse)."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return set()
    return {resolve_metric(n.id) or n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def compile_where(expr: str):
    """A safe filter: comparisons of metric names with numbers, joined by and/or/not, parentheses.

    ``"LUT < 20000 and throughput_fps > 1e5"``. Anything else is an InputError.
    """
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise InputError(f"cannot parse --where expression: {exc.msg}", where=f"--where {expr!r}",
                         hint='e.g. "LUT < 20000 and throughput_fps > 1e5"') from exc
    allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.Compare, ast.Name,
               ast.Load, *_CMP)
    hint = 'compare metric names with numbers, joined by and/or/not, e.g. "LUT < 20000 and throughput_fps > 1e5"'
    for node in ast.walk(tree):  # the whole expression is checked before any trial is
        if not (isinstance(node, allowed) or (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
                                              and not isinstance(node.value, bool))):
            part = ast.get_source_segment(expr, node) or type(node).__name__
            raise InputError(f"cannot use {part!r}: only metric names, numbers, comparisons and and/or/not",
                             where=f"--where {expr!r}", hint=hint)

    def condition(node) -> None:
        """Every operand of and/or/not is a comparison (a bare name or number is no condition)."""
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                condition(value)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            condition(node.operand)
        elif not isinstance(node, ast.Compare):
            part = ast.get_source_segment(expr, node) or type(node).__name__
            raise InputError(f"a comparison is needed where it has {part!r}", where=f"--where {expr!r}",
                             hint=hint)

    condition(tree.body)

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
            name = node.id if node.id in env else resolve_metric(node.id)  # lut, fps, … as --metric takes them
            if name not in env:
                raise InputError(f"unknown metric '{node.id}' in --where", hint="metrics: " + ", ".join(sorted(env)))
            return env[name]
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        raise InputError(f"--where cannot use {type(node).__name__}", hint=hint)  # pragma: no cover - checked above

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
    codegen: dict[str, int] = {}
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
                    if k[2:] == CODEGEN_CONSTRAINT and a.get("warnings"):
                        # the builds' warnings say what FINN's code generation rejects
                        first = str(a["warnings"]).split("; ")[0][:300]
                        codegen[first] = codegen.get(first, 0) + 1
    groups = sorted(failures.values(), key=lambda g: -g["count"])
    return {"failed": n_failed, "failures": groups[:top], "failure_kinds": len(groups),
            "infeasible": n_infeasible, "violated": dict(sorted(infeasible.items(), key=lambda kv: -kv[1])),
            "codegen": dict(sorted(codegen.items(), key=lambda kv: -kv[1])[:3]),
            "pruned": n_pruned, "pruned_reasons": dict(sorted(pruned.items(), key=lambda kv: -kv[1])[:top])}
