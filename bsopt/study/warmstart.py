"""Warm starts: a new study begins with what earlier studies learned.

- **Same model, same space** (identical space fingerprint): the earlier trials are added to the new
  study as finished trials — nothing is rebuilt. Their values and constraints are recomputed from
  the recorded metrics for the *new* study's objectives and constraints. Genetic samplers (NSGA-II/III)
  do not take added trials as parents, so the earlier feasible Pareto set is also enqueued (the
  build cache answers it).
- **Same model, compatible space** (another part or clock, a subset or superset of choices, other
  flags): the earlier feasible Pareto set and each objective's best configuration are translated
  parameter by parameter; those valid in the new space are enqueued for evaluation (cache hits where
  the content hash matches).
- **Incompatible** (another model, or no earlier configuration is valid in the new space): an
  InputError naming the differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState, create_trial

from bsopt.errors import InputError
from bsopt.storage import rdb
from bsopt.study import queries


@dataclass
class WarmStart:
    source: str
    mode: str  # "same space" | "compatible space"
    added: int = 0
    enqueued: int = 0
    skipped: int = 0
    differences: list[str] = field(default_factory=list)

    def describe(self) -> str:
        what = [f"{self.added} trial(s) added"] if self.added else []
        if self.enqueued:
            what.append(f"{self.enqueued} configuration(s) enqueued for evaluation")
        if self.skipped:
            what.append(f"{self.skipped} not valid in the new space")
        diff = f" ({'; '.join(self.differences)})" if self.differences else ""
        return f"warm start from '{self.source}' ({self.mode}{diff}): " + ", ".join(what or ["nothing to transfer"])


def _space_differences(old, new) -> list[str]:
    """What differs between two design spaces, parameter by parameter and in the fixed target."""
    out = []
    old_p = {p.name: p for p in old.parameters}
    new_p = {p.name: p for p in new.parameters}
    only_new = [n for n in new_p if n not in old_p and new_p[n].is_choice]
    only_old = [n for n in old_p if n not in new_p and old_p[n].is_choice]
    if only_new:
        out.append("new choice points: " + ", ".join(only_new[:6]) + (" …" if len(only_new) > 6 else ""))
    if only_old:
        out.append("dropped choice points: " + ", ".join(only_old[:6]) + (" …" if len(only_old) > 6 else ""))
    changed = [n for n in new_p if n in old_p and new_p[n].describe() != old_p[n].describe()]
    if changed:
        out.append("other choices for: " + ", ".join(changed[:6]) + (" …" if len(changed) > 6 else ""))
    try:
        ot, nt = old.fixed_target(), new.fixed_target()
        for k in ("part", "clock_ns", "finn_version"):
            if ot.get(k) != nt.get(k):
                out.append(f"{k} {ot.get(k)} → {nt.get(k)}")
    except Exception:  # noqa: BLE001 - a target that varies is one of the parameters above
        pass
    return out


def _recompute(ctx, t: FrozenTrial) -> tuple[list[float] | None, dict[str, float], bool]:
    """Values, constraint violations and feasibility of an earlier trial under the new objectives."""
    metrics = queries.metrics_of(t)
    violations = ctx.objectives.violations(metrics)
    try:
        values = ctx.objectives.values(metrics)
    except KeyError:
        values = None
    return values, violations, all(v <= 0 for v in violations.values())


def _transfer_values(old_values: dict[str, Any], new_space) -> tuple[dict[str, Any] | None, str | None]:
    """The earlier configuration's values as values of the new space, or (None, why not)."""
    out = {}
    for p in new_space.parameters:
        if p.name in old_values and p.contains(old_values[p.name]):
            out[p.name] = old_values[p.name]
        elif not p.is_choice:
            out[p.name] = p.value_at(0)
        elif p.name in old_values:
            return None, f"{p.name}={old_values[p.name]!r} is not a choice of the new space"
        else:
            return None, f"{p.name} is a new choice point"
    return out, None


def _candidates(old_ctx) -> list[FrozenTrial]:
    """The earlier feasible Pareto set, then each objective's best feasible trial."""
    trials = rdb.read_trials(old_ctx.study)
    picked = list(queries.pareto_front(trials, old_ctx.objectives.directions))
    ids = {t.number for t in picked}
    for m, d in zip(old_ctx.objectives.metrics, old_ctx.objectives.directions, strict=True):
        b = queries.best(trials, m, d)
        if b is not None and b.number not in ids:
            picked.append(b)
            ids.add(b.number)
    return [rdb.full_trial(old_ctx.study, t) for t in picked]  # with their parameters


def warm_start(ctx, sources: list[str], storage: str | None = None) -> list[WarmStart]:
    """Bring the results of the studies ``sources`` (in ``storage``, default the new study's own) into
    the new study ``ctx``; see the module documentation."""
    from bsopt.study.engine import load_study

    reports = []
    for name in sources:
        name = name.strip()
        if not name:
            continue
        if name == ctx.name and (storage or ctx.storage_url) == ctx.storage_url:
            raise InputError(f"a study cannot warm-start from itself ('{name}')", where="--warm-start-from")
        old = load_study(name, storage or ctx.storage_url)
        if old.space.model_sha256 != ctx.space.model_sha256:
            raise InputError(
                f"cannot warm-start from '{name}': it explores another model",
                where="--warm-start-from",
                hint=f"'{name}' model {old.space.model_path} (sha256 {str(old.space.model_sha256)[:12]}…), new study "
                f"model {ctx.space.model_path} (sha256 {str(ctx.space.model_sha256)[:12]}…)")
        if old.space.space_id == ctx.space.space_id:
            reports.append(_same_space(ctx, old, name))
        else:
            reports.append(_compatible_space(ctx, old, name))
    return reports


def _same_space(ctx, old, name: str) -> WarmStart:
    report = WarmStart(name, "same space")
    added = []
    for t in old.study.get_trials(deepcopy=False):
        if not t.state.is_finished() or (t.state == TrialState.FAIL and not t.user_attrs.get("final")):
            continue
        attrs = {**t.user_attrs, "warm_start_from": f"{name}#{t.number}", "warm_start": "added"}
        if t.state == TrialState.COMPLETE:
            values, violations, ok = _recompute(ctx, t)
            if values is None:
                continue
            attrs.update({f"c:{k}": v for k, v in violations.items()})
            attrs["feasible"] = ok
            added.append(create_trial(state=TrialState.COMPLETE, values=values, params=t.params,
                                      distributions=t.distributions, user_attrs=attrs,
                                      system_attrs=rdb.constraint_attrs(violations)))
        else:  # pruned by the gate or failed for good: the samplers and the grid skip them too
            added.append(create_trial(state=t.state, params=t.params, distributions=t.distributions,
                                      user_attrs=attrs))
    rdb.add_trials(ctx.study, added)
    report.added = len(added)
    if ctx.strategy.genetic:
        for t in queries.pareto_front(ctx.study.get_trials(deepcopy=False), ctx.objectives.directions):
            ctx.study.enqueue_trial(t.params, user_attrs={"warm_start_from": t.user_attrs["warm_start_from"],
                                                          "warm_start": "enqueued"})
            report.enqueued += 1
    return report


def _compatible_space(ctx, old, name: str) -> WarmStart:
    report = WarmStart(name, "compatible space", differences=_space_differences(old.space, ctx.space))
    reasons: dict[str, int] = {}
    seen = set()
    for t in _candidates(old):
        values, why = _transfer_values(old.ospace.to_values(t.params), ctx.space)
        if values is None:
            report.skipped += 1
            reasons[why] = reasons.get(why, 0) + 1
            continue
        params = ctx.ospace.to_params(values)
        key = tuple(sorted(params.items()))
        if key in seen:
            continue
        seen.add(key)
        ctx.study.enqueue_trial(params, user_attrs={"warm_start_from": f"{name}#{t.number}",
                                                    "warm_start": "enqueued"})
        report.enqueued += 1
    if report.enqueued == 0:
        detail = "; ".join(f"{why} ({n}×)" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:4])
        raise InputError(
            f"cannot warm-start from '{name}': none of its {report.skipped} best configurations is valid in "
            "the new design space", where="--warm-start-from",
            hint="; ".join(report.differences + ([detail] if detail else [])) or "the spaces share no configuration")
    return report


def source_names(value: str | None) -> list[str]:
    return [s.strip() for s in (value or "").split(",") if s.strip()]

