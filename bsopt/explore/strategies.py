"""Strategies: what proposes the configurations a study evaluates (the seed's Design Space Explorer).

A :class:`Strategy` gives the Optuna sampler a study is created with, and — for strategies that know
their points themselves — the points to evaluate, in order. The study runner only asks, builds and
tells; :func:`resolve` owns every choice (what ``auto`` means, whether ``exact`` or ``surrogate`` can
solve a space) and its errors.

- :class:`SamplerStrategy` — an Optuna sampler proposes every point (TPE, NSGA-II/III, GP, random);
  FINN's SetFolding designs are enqueued first (:mod:`bsopt.explore.seeds`).
- :class:`GridStrategy` — every configuration, in index order (``exhaustive``/``grid``).
- :class:`ExactStrategy` — the exact Pareto front of an estimate-backed space (:mod:`bsopt.explore.exact`).
- :class:`SurrogateStrategy` — the estimates' exact front corrected by what expensive builds measure
  (:mod:`bsopt.explore.surrogate`), then NSGA-II.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import optuna
from optuna.trial import TrialState

from bsopt.choices import StrategyName
from bsopt.errors import InputError
from bsopt.explore.samplers import SAMPLE, make_sampler
from bsopt.storage import rdb

Point = tuple[dict[str, Any], dict[str, Any]]  # (parameter values, trial user attributes)


#: budgets up to this use multivariate TPE under ``auto``; larger ones NSGA-II (TPE's per-trial cost
#: grows to ~0.1 s at 1000 trials; NSGA-II stays ~2 ms)
AUTO_TPE_MAX_TRIALS = 300


class Strategy:
    """The interface. ``name`` is what the study stores (``bsopt study status`` shows it)."""

    name: str = ""
    #: proposes its own points (:meth:`points`); the sampler only fills in where they say SAMPLE
    knows_points = False
    #: every point comes from :meth:`points` (never SAMPLE): the sampler needs no trial history
    sampler_free = False
    #: a genetic sampler: a warm start enqueues the old front as its first population
    genetic = False

    def sampler(self, seed: int | None, n_objectives: int) -> optuna.samplers.BaseSampler:
        return make_sampler("random", seed, n_objectives)

    def default_trials(self, space) -> int | None:
        """How many trials a run makes when none are asked for (None: until the points run out)."""
        return space.search_config.max_evaluations or 100

    def points(self, ctx, *, n_trials: int | None, estimator, gate, build_budget: int | None, status=None
               ) -> Iterator[Point | str] | None:
        """The points to evaluate next (or :data:`SAMPLE`), or None when the sampler proposes all.
        ``status(text)``: where a long preparation (an exact solve) says how far it is."""
        return None

    def exhausted(self, space) -> str:
        """Said when :meth:`points` ran out before the run's budget."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class SamplerStrategy(Strategy):
    def __init__(self, name: str):
        self.name = name
        self.genetic = name in (StrategyName.NSGA2, StrategyName.NSGA3)

    def sampler(self, seed, n_objectives):
        return make_sampler(self.name, seed, n_objectives)


class GridStrategy(Strategy):
    """Every configuration, in index order; a resumed study continues at the first one not evaluated."""

    name = "grid"
    knows_points = True
    sampler_free = True

    def points(self, ctx, **_):
        done, pending = set(), set()
        for t in rdb.read_trials(ctx.study):
            k = t.user_attrs.get("config_index")
            if k is None:
                continue
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and
                                                                        t.user_attrs.get("final")):
                done.add(int(k))
            elif t.state in (TrialState.WAITING, TrialState.RUNNING):
                pending.add(int(k))
        space = ctx.space
        return ((space.values_at(k), {"config_index": k}) for k in range(space.get_total_combinations())
                if k not in done and k not in pending)

    def exhausted(self, space) -> str:
        return f"every configuration of the space ({space.get_total_combinations()}) has been evaluated"


class ExactStrategy(Strategy):
    """The exact feasible Pareto front of an estimate-backed space, spread-selected to the budget."""

    name = "exact"
    knows_points = True
    sampler_free = True

    def default_trials(self, space):
        return None  # the whole front

    def points(self, ctx, *, n_trials, estimator, status=None, **_):
        from bsopt.explore import exact

        front = exact.exact_front(ctx.space, ctx.objectives, estimator, status=status)
        done = {t.user_attrs.get("config_id") for t in rdb.read_trials(ctx.study) if t.state.is_finished()}
        base = ctx.space.values_at(0)
        done.discard(None)
        # a resumed study: which front points were evaluated before (a new one skips building configs)
        ids = [ctx.space.config_from_values({**base, **p["values"]}).config_id if done else None
               for p in front.points]
        evaluated = sum(1 for i in ids if i in done)
        k = None if n_trials is None else n_trials + evaluated
        chosen = exact.spread(front.points, ctx.objectives, k)
        self.info = {"front_size": len(front.points), "selected": len(chosen), "seconds": round(front.seconds, 3),
                     "node_estimates": front.options, "space_size": str(front.space_size),
                     "evaluated_before": evaluated, "why_empty": front.notes[:3]}
        try:
            ctx.study.set_user_attr("exact_front", self.info)
        except Exception:  # noqa: BLE001 - bookkeeping only
            pass
        id_of = {id(p): i for p, i in zip(front.points, ids, strict=True)}
        return (({**base, **p["values"]}, {"exact_front": True}) for p in chosen if id_of[id(p)] not in done)

    def exhausted(self, space) -> str:
        info = getattr(self, "info", None) or {}
        n = info.get("front_size")
        if n is None:
            return ""
        if n == 0:
            return "the exact front is empty: " + ("; ".join(info.get("why_empty") or [])
                                                   or "no configuration meets the constraints")
        return (f"every point of the exact front ({n}) is evaluated: the exact strategy has nothing more to run "
                "(its front is the true Pareto front of the space; another sampler would only find dominated "
                "designs)")


class SurrogateStrategy(Strategy):
    """For expensive backends: a spread of the estimates' exact front, then candidates chosen by a
    correction of the estimates fitted to the builds, then NSGA-II."""

    name = "surrogate"
    knows_points = True

    def sampler(self, seed, n_objectives):
        return make_sampler("nsga2", seed, n_objectives)  # refines after the structure-aware phases

    def points(self, ctx, *, n_trials, gate, build_budget, **_):
        from bsopt.explore import surrogate

        if gate is None:
            raise InputError("the surrogate strategy is for expensive backends", where="search.strategy",
                             hint="with the estimate backend use exact (or auto)")
        return ((v, {"surrogate": True}) if v != SAMPLE else SAMPLE
                for v in surrogate.plan(ctx, gate, build_budget or n_trials, ctx.study))


def from_name(name: str) -> Strategy:
    """The strategy a study was created with (its stored, resolved name)."""
    try:
        kind = StrategyName(name)
    except ValueError:
        raise InputError(f"unknown search strategy '{name}'",
                         hint="one of: " + ", ".join(s.value for s in StrategyName)) from None
    if kind in (StrategyName.GRID, StrategyName.EXHAUSTIVE):
        return GridStrategy()
    if kind == StrategyName.EXACT:
        return ExactStrategy()
    if kind == StrategyName.SURROGATE:
        return SurrogateStrategy()
    if kind == StrategyName.AUTO:
        raise InputError("'auto' is resolved when a study is created", hint="use bsopt.explore.resolve")
    return SamplerStrategy(kind.value)


def resolve(space, objectives, backend: str, requested: str | None, budget: int | None) -> Strategy:
    """The strategy for a space, its objectives and backend: ``requested`` (default the blueprint's
    ``search.strategy``, else ``auto``) with every check.

    ``auto``: the exact front when the backend is the estimate and the space is separable (FINN's
    estimates are per-layer sums and maxima); the surrogate for expensive backends on separable spaces;
    otherwise exhaustive when the budget covers the space, multivariate TPE for small budgets, NSGA-II
    for large ones.
    """
    try:
        kind = StrategyName(requested or space.search_config.strategy)
    except ValueError:
        raise InputError(f"unknown sampler '{requested}'",
                         hint="one of: " + ", ".join(s.value for s in StrategyName)) from None
    cheap = backend == "estimate"
    if kind == StrategyName.SURROGATE and cheap:
        raise InputError("the surrogate strategy is for expensive backends (finn, synthetic)", where="search.strategy",
                         hint="with the estimate backend use exact (or auto): it solves the space exactly")
    if kind == StrategyName.EXACT and not cheap:
        raise InputError("the exact strategy needs the estimate backend", where="search.strategy",
                         hint="with expensive backends use surrogate (or auto), nsga2 or tpe")
    if kind in (StrategyName.AUTO, StrategyName.EXACT, StrategyName.SURROGATE):
        from bsopt.explore.exact import why_not_separable

        reason = why_not_separable(space, objectives)
        if reason is None:
            return ExactStrategy() if cheap else SurrogateStrategy()
        if kind == StrategyName.EXACT:
            raise InputError(f"the exact strategy cannot solve this space: {reason}", where="search.strategy",
                             hint="use auto (it falls back to a sampler), nsga2 or tpe")
        if kind == StrategyName.SURROGATE:
            raise InputError(f"the surrogate strategy needs a space the estimates solve exactly: {reason}",
                             where="search.strategy", hint="use auto, nsga2 or tpe")
        try:
            size = space.get_total_combinations()
        except Exception:  # noqa: BLE001 - continuous parameters: no finite size
            size = None
        if size is not None and budget is not None and size <= budget:
            return GridStrategy()
        if budget is not None and budget <= AUTO_TPE_MAX_TRIALS:
            return SamplerStrategy(StrategyName.TPE.value)
        return SamplerStrategy(StrategyName.NSGA2.value)
    return from_name(kind.value)
