"""Say early when nothing can fit: a lower bound on a design space's resources and cycles against
its constraints, before any search.

Under FINN's estimates a network's resources are sums, and its cycles a max, of per-layer values
(see :mod:`bsopt.explore.exact`). So the sum of each layer's cheapest option is a lower bound on
every configuration's resources: when it exceeds a constraint, no trial of any sampler can be
feasible. The bound comes from the exact solver's option tables (seconds on a 12-layer BERT), and
is checked for every combination of the space's global choices (kernel backends, transforms): the
space cannot fit only when none of them can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bsopt.errors import BsoptError
from bsopt.explore import exact


@dataclass(frozen=True)
class Misfit:
    """Why no configuration of a space can meet its constraints."""

    metric: str  # the first resource short (LUT, BRAM_18K, URAM, DSP) or max_cycles
    message: str


def cannot_fit(space, objectives, estimator=None) -> Misfit | None:
    """A :class:`Misfit` when the constraints rule out every configuration of ``space``, None when
    they may not (or when the bound does not apply: another backend than the estimates, a co-design
    space, no per-layer folding, too many global combinations). Never raises for a space it cannot
    bound."""
    if space.blueprint.backend != "estimate" or space.blueprint.quantization is not None:
        return None  # real builds are not bound by the estimates; co-design spaces change the model
    if not objectives.constraints or space.model_info is None:
        return None
    try:
        if estimator is None:
            from bsopt.backends.estimate import EstimateBackend

            estimator = EstimateBackend.for_space(space)
        groups, global_params = exact.decompose(space)
        combos = 1
        for p in global_params:
            combos *= p.size
        if combos > exact.MAX_GLOBAL_COMBINATIONS:
            return None
        shorts = []
        for gvals, clock, bound, cyc_bound, (tables, const, const_cycles, _) in exact.per_global_choice(
                space, objectives, estimator, groups, global_params, strict=False):
            short = exact.shortfall(tables, const, const_cycles, bound, cyc_bound, clock)
            if short is None:
                return None  # these global choices may fit
            shorts.append((short, gvals))
    except BsoptError:  # NotSeparable, or FINN rejects a fixed layer: the search reports it
        return None
    # the combination of global choices that comes closest, in full
    short, gvals = min(shorts, key=lambda sg: sg[0].over)
    message = short.message
    if len(shorts) > 1:
        message += (f" — with {_describe(gvals)}, the closest of the {len(shorts)} combinations of "
                    f"{', '.join(p.name for p in global_params)}; the others fall further short")
    return Misfit(short.metric, message)


def _describe(gvals: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in gvals.items())


def constraint_path(space, metric: str) -> tuple:
    """Where in the blueprint the constraint on ``metric`` is (for located errors)."""
    for c in space.search_config.constraints:
        base = c.metric[:-5] if c.metric.endswith("_util") else c.metric
        if base == metric or (metric == "max_cycles" and c.metric in exact.CYCLE_METRICS):
            return tuple(c.path) if getattr(c, "path", None) else ("search", "constraints")
    return ("search", "constraints")


def misfit_error(space, objectives, estimator=None):
    """:func:`cannot_fit` as a located blueprint error (a ValidationError at the constraint on the
    first resource short), or None."""
    from bsopt.blueprint.diagnostics import ValidationError, format_path

    misfit = cannot_fit(space, objectives, estimator)
    if misfit is None:
        return None
    path = constraint_path(space, misfit.metric)
    file, line, col = space.diagnostics.locs.of(path) if space.diagnostics else ("<blueprint>", 0, 0)
    return ValidationError(file, line, col, format_path(path), misfit.message,
                           "no trial of any sampler could meet the constraints: change the model, part or "
                           "folding section as suggested, or relax the constraint")
