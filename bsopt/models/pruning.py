"""Early stopping of trainings: Optuna's pruners judging a quantisation against its *cheaper peers*.

A co-design study is multi-objective, and Optuna's pruners (and ``Trial.report``) are single-objective:
a quantisation that trains to lower accuracy than a wider one may still be Pareto-optimal because its
hardware is smaller. So a training is compared only with quantisations that use **no more bits in any
layer** (their hardware can only be smaller or equal, layer by layer): if it trains worse than those —
by the pruner's rule (median, percentile, successive halving's rungs, hyperband, a threshold) — its
designs are dominated (more hardware, less accuracy) and it stops. The epochs the pruner consults are
the budget ladder: the first ``n_warmup_steps`` epochs always run, then each surviving epoch is a rung.

:class:`PeerPruning` runs the configured Optuna pruner on an in-memory single-objective study holding
the peers' accuracy curves (their state as pruned or finished, and the pruner's own bookkeeping such as
successive halving's rung values), so that it runs in any worker process or Ray actor without access
to the study's storage.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from bsopt.errors import InputError

#: bsopt's defaults per pruner: wait a quarter of the epochs, judge from the first peer on
_DEFAULTS = {
    "median": lambda epochs: {"n_startup_trials": 1, "n_warmup_steps": max(1, epochs // 4)},
    "percentile": lambda epochs: {"percentile": 25.0, "n_startup_trials": 1, "n_warmup_steps": max(1, epochs // 4)},
    "successive_halving": lambda epochs: {"min_resource": max(1, epochs // 8), "reduction_factor": 3},
    "hyperband": lambda epochs: {"min_resource": 1, "max_resource": epochs, "reduction_factor": 3},
    "threshold": lambda epochs: {"lower": 0.5, "n_warmup_steps": max(1, epochs // 4)},
    "none": lambda epochs: {},
}
_CLASSES = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "none": optuna.pruners.NopPruner,
}


def make_pruner(spec: dict[str, Any], epochs: int) -> optuna.pruners.BasePruner:
    """The Optuna pruner a blueprint's ``training.pruner`` names, with bsopt's defaults for options it
    leaves out; bad options are an InputError at ``training.pruner``."""
    name = spec.get("name", "median")
    if name not in _CLASSES:
        raise InputError(f"unknown pruner {name!r}", where="training.pruner", hint="one of: " + ", ".join(_CLASSES))
    options = {**_DEFAULTS[name](epochs), **{k: v for k, v in spec.items() if k != "name"}}
    try:
        return _CLASSES[name](**options)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad options for the {name} pruner: {exc}", where="training.pruner",
                         hint=f"the options of optuna.pruners.{_CLASSES[name].__name__}") from None


class PeerPruning:
    """``report(epoch, accuracy) -> stop?`` for one training, judged against its peers' curves.

    ``peers``: ``{"curve": [accuracy per epoch], "pruned": bool, "pruner_state": {...}}`` of the
    trainings this one competes with."""

    def __init__(self, spec: dict[str, Any], epochs: int, peers: list[dict[str, Any]]):
        self.pruner = make_pruner(spec, epochs)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created in memory" per training
        self.study = optuna.create_study(direction="maximize", pruner=self.pruner,
                                         sampler=optuna.samplers.RandomSampler(seed=0))
        for p in peers:
            curve = [float(v) for v in p.get("curve") or []]
            if not curve:
                continue
            pruned = bool(p.get("pruned"))
            self.study.add_trial(optuna.trial.create_trial(
                state=TrialState.PRUNED if pruned else TrialState.COMPLETE, value=None if pruned else curve[-1],
                intermediate_values=dict(enumerate(curve)), system_attrs=dict(p.get("pruner_state") or {})))
        self.trial = self.study.ask()
        self.stopped_at: int | None = None

    def __call__(self, epoch: int, accuracy: float) -> bool:
        self.trial.report(float(accuracy), int(epoch))
        if self.trial.should_prune():
            self.stopped_at = int(epoch)
            return True
        return False

    @property
    def state(self) -> dict[str, Any]:
        """The pruner's bookkeeping on this training (kept with its curve for later judgements)."""
        return dict(self.study.get_trials(deepcopy=False)[self.trial.number].system_attrs)


def peers_of(q, finished: list[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The finished trainings whose quantisation uses no more bits than ``q`` in any layer."""
    return [record for other, record in finished if other.at_most(q)]
