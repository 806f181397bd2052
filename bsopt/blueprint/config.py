"""The ``search`` and ``global`` sections as typed values: what a DesignSpace carries.

The readers (:mod:`bsopt.blueprint.sections`, ``v3``, ``v01``) validate the keys; these dataclasses
hold the result with the documented defaults filled in, so that code downstream reads attributes
(``space.search_config.seed``) instead of looking up strings in dicts.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from bsopt.blueprint.model import Blueprint, Constraint, Objective
from bsopt.choices import OutputStage, StrategyName

DEFAULT_MAX_COMBINATIONS = 100_000  # Brainsmith's default limit of an exhaustive space
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5  # a study stops after this many failed builds in a row, none succeeding


@dataclass(frozen=True)
class SearchConfig:
    """``search:`` (and the objectives): how the space is explored."""

    strategy: StrategyName = StrategyName.AUTO
    objectives: tuple[Objective, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    objectives_defaulted: bool = False  # no objectives written: bsopt's defaults were used
    max_evaluations: int | None = None  # the trial budget of a run without --n-trials
    parallel_builds: int | None = None  # builds at once (default: 1 for estimates, the cores for real builds)
    seed: int | None = None  # the sampler's seed
    timeout_minutes: float | None = None  # a run's wall-time limit
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES  # failed builds in a row that stop a run (0: never)

    @classmethod
    def from_blueprint(cls, bp: Blueprint) -> SearchConfig:
        s = bp.search
        # auto for every format: it enumerates small spaces anyway, and a large space walked in index
        # order (Brainsmith v3's exhaustive default) gives a one-point "front" after a budget of trials
        return cls(strategy=StrategyName(s.get("strategy", StrategyName.AUTO)), objectives=tuple(bp.objectives),
                   constraints=tuple(bp.constraints), objectives_defaulted=bp.objectives_defaulted,
                   max_evaluations=s.get("max_evaluations"), parallel_builds=s.get("parallel_builds"),
                   seed=s.get("seed"), timeout_minutes=s.get("timeout_minutes"),
                   max_consecutive_failures=s.get("max_consecutive_failures", DEFAULT_MAX_CONSECUTIVE_FAILURES))


@dataclass(frozen=True)
class GlobalConfig:
    """``global:``: where results go and how builds are run."""

    output_stage: OutputStage = OutputStage.ESTIMATES
    working_directory: str | None = None  # a blueprint's study folders (relative to where bsopt runs)
    cache_results: bool = True
    save_artifacts: bool = True
    log_level: str = "INFO"  # read for Brainsmith compatibility; no effect
    max_combinations: int = DEFAULT_MAX_COMBINATIONS
    timeout_minutes: float | None = None  # one build's time limit
    start_step: str | None = None
    stop_step: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # Brainsmith keys bsopt reads and ignores

    @classmethod
    def from_blueprint(cls, bp: Blueprint) -> GlobalConfig:
        g = dict(bp.global_config)
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        values: dict[str, Any] = {k: g.pop(k) for k in list(g) if k in known}
        values.setdefault("max_combinations", int(os.environ.get("BRAINSMITH_MAX_COMBINATIONS",
                                                                 DEFAULT_MAX_COMBINATIONS)))
        if "output_stage" in values:
            values["output_stage"] = OutputStage(values["output_stage"])
        if "log_level" in values:
            values["log_level"] = str(values["log_level"]).upper()
        return cls(**values, extra=g)

    def as_dict(self) -> dict[str, Any]:
        """Plain values, as a BuildConfig and the build backends carry them (a new dict each call)."""
        return dict(self._plain)

    @cached_property
    def _plain(self) -> dict[str, Any]:  # computed once: every BuildConfig of a space carries a copy
        out = asdict(self)
        out.update(out.pop("extra"))
        out["output_stage"] = str(self.output_stage)
        return out
