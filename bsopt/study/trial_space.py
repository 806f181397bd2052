"""The design space a stored trial's configuration belongs to: the study's own, or — for a co-design
trial — the space of its trained model (same blueprint, that model's layers and datatypes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bsopt.errors import InputError


class TrialSpaces:
    """(space, Optuna space, estimator) per model, built once each, for the trials of one study."""

    def __init__(self, ctx, estimator=None):
        from bsopt.backends.estimate import EstimateBackend

        self.ctx = ctx
        self._by_model: dict[str | None, tuple] = {
            None: (ctx.space, ctx.ospace, estimator or EstimateBackend.for_space(ctx.space))}

    def of(self, t) -> tuple[Any, Any, Any]:
        model = t.user_attrs.get("model_path")  # set on co-design trials
        if model not in self._by_model:
            self._by_model[model] = self._load(model)
        return self._by_model[model]

    def config(self, t):
        """(BuildConfig, space, estimator) of a trial read with its parameters."""
        space, ospace, estimator = self.of(t)
        values = ospace.to_values({k: v for k, v in t.params.items() if k in ospace.distributions})
        return space.config_from_values(values), space, estimator

    def _load(self, model: str):
        from bsopt.backends.estimate import EstimateBackend
        from bsopt.space.design_space import load_design_space
        from bsopt.study.params import OptunaSpace

        if not Path(model).is_file():
            raise InputError(f"the trained model of this trial is gone: {model}", where=f"study {self.ctx.name}",
                             hint="trained models are kept in the study root's models/trained/ folder: restore "
                             "it, or create a new study of the blueprint (it trains again what is missing)")
        space = load_design_space(self.ctx.study.user_attrs["blueprint_path"], model, for_builds=True).require_valid()
        return space, OptunaSpace(space.parameters), EstimateBackend.for_space(space)
