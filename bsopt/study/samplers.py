"""Samplers by name, and the ``auto`` policy."""

from __future__ import annotations

import warnings

import optuna

from bsopt.errors import InputError

SAMPLERS = ("auto", "tpe", "nsga2", "nsga3", "gp", "random", "grid", "exhaustive", "exact", "surrogate")

#: budgets up to this use multivariate TPE under ``auto``; larger ones NSGA-II (TPE's per-trial cost
#: grows to ~0.1 s at 1000 trials; NSGA-II stays ~2 ms)
AUTO_TPE_MAX_TRIALS = 300


def resolve(name: str, space_size: int | None, n_trials: int | None) -> str:
    """The sampler ``auto`` stands for: exhaustive when the budget covers the space, multivariate TPE
    for small budgets, NSGA-II otherwise. Never Optuna's slow default multi-objective TPE."""
    if name not in SAMPLERS:
        raise InputError(f"unknown sampler '{name}'", hint="one of: " + ", ".join(SAMPLERS))
    if name == "exhaustive":
        return "grid"
    if name in ("exact", "surrogate"):  # create_study checks that the space is separable
        return name
    if name != "auto":
        return name
    if space_size is not None and n_trials is not None and space_size <= n_trials:
        return "grid"
    if n_trials is not None and n_trials <= AUTO_TPE_MAX_TRIALS:
        return "tpe"
    return "nsga2"


def make_sampler(name: str, seed: int | None, n_objectives: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # multivariate TPE and GP are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _make_sampler(name, seed)


def _make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(multivariate=True, seed=seed, constant_liar=True, n_startup_trials=16)
    if name in ("nsga2", "surrogate"):  # surrogate: NSGA-II refines after the structure-aware phases
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=32)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=32)
    if name == "gp":
        try:
            return optuna.samplers.GPSampler(seed=seed)
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InputError("the gp sampler needs torch and scipy", hint="pip install 'bsopt[models]'") from exc
    # random, and grid/exact (whose points are enqueued; the sampler only fills gaps)
    return optuna.samplers.RandomSampler(seed=seed)
