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


def continue_generations(study: optuna.Study, parent_ids: list[int], max_generation) -> bool:
    """Let a genetic sampler (NSGA-II/III) continue a study whose stored trials carry generation
    numbers but not the parent populations Optuna caches beside them (trials written in batches from
    an in-memory copy; a study made by an older bsopt): without a cached parent population for the
    latest generation, Optuna derives it from the one before, and that one from the one before, down
    to the first — a RecursionError after a few hundred generations. The latest generation's parents
    become ``parent_ids`` (the study's Pareto front: elitism kept). ``max_generation(key)`` gives the
    largest generation number stored. True if something was set."""
    sampler = study.sampler
    prefix_of = getattr(sampler, "_get_parent_cache_key_prefix", None)
    key_of = getattr(sampler, "_get_generation_key", None)
    if not callable(prefix_of) or not callable(key_of):
        return False
    generation = max_generation(key_of())
    if not generation:  # none, or the first generation: it has no parents
        return False
    key = prefix_of() + str(generation)
    if key in study._storage.get_study_system_attrs(study._study_id):
        return False
    study._storage.set_study_system_attr(study._study_id, key, list(parent_ids))
    return True
