"""Optuna samplers by name, configured as bsopt uses them."""

from __future__ import annotations

import warnings

import optuna

from bsopt.errors import InputError

#: a point source's signal: let the sampler propose the next configuration
SAMPLE = "sample"


def make_sampler(name: str, seed: int | None, n_objectives: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # multivariate TPE and GP are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _make_sampler(name, seed)


def _make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(multivariate=True, seed=seed, constant_liar=True, n_startup_trials=16)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=32)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=32)
    if name == "gp":
        try:
            return optuna.samplers.GPSampler(seed=seed)
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InputError("the gp sampler needs torch and scipy", hint="pip install 'bsopt[models]'") from exc
    # random (also what strategies that know their points are created with: it only fills gaps)
    return optuna.samplers.RandomSampler(seed=seed)
