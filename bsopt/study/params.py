"""The DesignSpace as Optuna distributions, and trial parameters back to DesignSpace values.

Ordered numeric choice lists (PE/SIMD divisors, clock choices) become an integer *index* parameter,
so that samplers see their order; other choice lists are categorical; ranges map to Optuna's
int/float distributions. Single-valued parameters are not shown to Optuna.
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from bsopt.space.parameters import Parameter


def _ordinal(p: Parameter) -> bool:
    ch = p.choices or ()
    return (len(ch) > 1 and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in ch)
            and list(ch) == sorted(ch))


def _jsonable(c) -> bool:
    return c is None or isinstance(c, (bool, int, float, str))


class OptunaSpace:
    """Maps a DesignSpace's parameters to Optuna distributions and back."""

    def __init__(self, parameters: list[Parameter]):
        self.parameters = [p for p in parameters if p.is_choice]
        self.fixed = {p.name: p.value_at(0) for p in parameters if not p.is_choice}
        self.distributions: dict[str, BaseDistribution] = {}
        self._ordinal: dict[str, Parameter] = {}
        self._encoded: dict[str, Parameter] = {}
        for p in self.parameters:
            if p.kind == "categorical":
                if _ordinal(p):
                    self.distributions[p.name] = IntDistribution(0, len(p.choices) - 1)
                    self._ordinal[p.name] = p
                elif all(_jsonable(c) for c in p.choices):
                    self.distributions[p.name] = CategoricalDistribution(list(p.choices))
                else:  # e.g. option dicts: choose by index
                    self.distributions[p.name] = CategoricalDistribution(list(range(len(p.choices))))
                    self._encoded[p.name] = p
            elif p.kind == "int":
                self.distributions[p.name] = IntDistribution(int(p.low), int(p.high), step=int(p.step or 1),
                                                             log=p.log)
            else:
                self.distributions[p.name] = FloatDistribution(p.low, p.high, step=p.step, log=p.log)

    def to_values(self, params: dict[str, Any]) -> dict[str, Any]:
        """Optuna trial params -> DesignSpace parameter values."""
        values = dict(self.fixed)
        for name, v in params.items():
            if name in self._ordinal:
                values[name] = self._ordinal[name].choices[int(v)]
            elif name in self._encoded:
                values[name] = self._encoded[name].choices[int(v)]
            else:
                values[name] = v
        return values

    def to_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """DesignSpace values -> Optuna params (for enqueueing seeds and grid points)."""
        params = {}
        for p in self.parameters:
            v = values[p.name]
            if p.name in self._ordinal or p.name in self._encoded:
                params[p.name] = p.index_of(v)
            else:
                params[p.name] = v
        return params

    def ask(self, study):
        """A new trial with every parameter sampled (enqueued parameters take precedence)."""
        trial = study.ask(fixed_distributions=self.distributions)
        return trial, self.to_values(trial.params)
