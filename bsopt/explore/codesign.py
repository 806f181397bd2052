"""Accuracy × hardware co-design: a sampler proposes quantisations; each one's folding is solved exactly.

A co-design space is a blueprint's quantisations (``quantization:``) times the folding space of each
quantised model. Hardware objectives are FINN's estimates, which the exact solver optimises over the
folding of one model in a fraction of a second; accuracy needs a training. So the sampler (TPE, random,
GP, or a grid over every quantisation) sees only the bit widths: each proposed quantisation is trained
(:mod:`bsopt.backends.train`), exported, lowered, and its exact hardware front becomes the study's
trials — every one carrying the quantisation's accuracy and its own folding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.distributions import CategoricalDistribution

from bsopt.blueprint.codesign import CODESIGN_STRATEGIES
from bsopt.choices import StrategyName
from bsopt.errors import InputError
from bsopt.explore.strategies import AUTO_TPE_MAX_TRIALS, SamplerStrategy, Strategy

ACCURACY = "accuracy"


class QuantizationGrid(Strategy):
    """Every quantisation, in parameter order."""

    name = "grid"


def hardware_objectives(objectives):
    """The objectives and constraints without accuracy: what the exact solver optimises per model."""
    keep = [i for i, m in enumerate(objectives.metrics) if m != ACCURACY]
    return dataclasses.replace(objectives, metrics=[objectives.metrics[i] for i in keep],
                               directions=[objectives.directions[i] for i in keep],
                               constraints=[c for c in objectives.constraints if c.metric != ACCURACY])


def check(space, objectives, estimate_metrics: set[str]) -> None:
    """What a co-design study needs beyond its blueprint's own checks: metrics the estimate backend (whose
    metrics are ``estimate_metrics``) or training report, and a folding space the exact solver solves."""
    from bsopt.explore.exact import why_not_separable

    known = set(estimate_metrics) | {ACCURACY}
    missing = sorted({m for m in objectives.metrics + [c.metric for c in objectives.constraints]} - known)
    if missing:
        raise InputError(f"a co-design study does not report {', '.join(missing)}", where="objectives/constraints",
                         hint="metrics: " + ", ".join(sorted(known)))
    reason = why_not_separable(space, hardware_objectives(objectives))
    if reason is not None:
        raise InputError(f"the folding space cannot be solved exactly per quantisation: {reason}",
                         where="folding", hint="co-design solves each quantised model's folding exactly; keep "
                         "choices that couple layers (global kernels/steps with many options) out of it")


def resolve(space, requested: str | None, budget: int | None) -> Strategy:
    """The strategy proposing quantisations: ``auto`` is the grid when the budget covers every
    quantisation, else multivariate TPE (random with a large budget)."""
    name = str(requested or space.search_config.strategy or "auto")
    if name not in CODESIGN_STRATEGIES:
        raise InputError(f"co-design studies cannot use the {name} strategy", where="search.strategy",
                         hint="a sampler proposes quantisations and each one's folding is solved exactly: use "
                         + ", ".join(CODESIGN_STRATEGIES))
    size = space.blueprint.quantization.size
    if name in (StrategyName.GRID, StrategyName.EXHAUSTIVE) or (name == "auto" and budget is not None
                                                               and budget >= size):
        return QuantizationGrid()
    if name == "auto":
        return SamplerStrategy(StrategyName.TPE.value if (budget or 100) <= AUTO_TPE_MAX_TRIALS
                               else StrategyName.RANDOM.value)
    return SamplerStrategy(name)


def from_stored(name: str) -> Strategy:
    """The strategy a co-design study was created with (its stored name)."""
    if name == QuantizationGrid.name:
        return QuantizationGrid()
    return SamplerStrategy(name)


def distributions(spec) -> dict[str, CategoricalDistribution]:
    """The sampler's parameters: one per group and kind with more than one bit width."""
    from bsopt.models.quantized import param_names

    return {name: CategoricalDistribution(list(getattr(g, kind))) for name, kind, g in param_names(spec)
            if len(getattr(g, kind)) > 1}


@dataclass
class HardwareFront:
    """The exact hardware front of one trained model: its space and the chosen points with metrics."""

    space: Any
    points: list[dict[str, Any]]  # {"values", "metrics" (the estimate's), "warnings", "config_id", "config_index"}
    size: int  # the whole front's size
    seconds: float


def hardware_front(blueprint: str | Path, model_path: str, objectives, k: int | None) -> HardwareFront:
    """The exact front of a quantised model's folding space (at most ``k`` points, spread), each
    point's metrics from the estimate backend (what an estimate-backed study's trial records)."""
    import time

    from bsopt.backends.estimate import EstimateBackend
    from bsopt.explore import exact
    from bsopt.space.design_space import load_design_space

    t0 = time.time()
    space = load_design_space(blueprint, model_path, for_builds=True).require_valid()
    hw = hardware_objectives(objectives)
    backend = EstimateBackend.for_space(space)
    front = exact.exact_front(space, hw, backend)
    base = space.values_at(0)
    points = []
    for p in exact.spread(front.points, hw, k or None):
        values = {**base, **p["values"]}
        cfg = space.config_from_values(values)
        result = backend.build(cfg)
        if result.ok:
            points.append({"values": values, "metrics": dict(result.values), "warnings": result.warnings,
                           "config_id": cfg.config_id, "config_index": cfg.index})
    return HardwareFront(space, points, len(front.points), time.time() - t0)
