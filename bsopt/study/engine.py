"""The study engine: ask a sampler, build, tell — with cache, constraints, gates, resume and progress.

A study lives in an Optuna storage (default SQLite ``studies/bsopt.db``). Its user attributes hold
what is needed to continue it from another process: the blueprint (path and text), the model, the
space fingerprint, the sampler and seed. Each trial carries the BuildConfig's id and index, its
metrics (``m:<name>``), feasibility and per-constraint violations, the build status and duration,
and whether the cache answered. Killed runs leave RUNNING trials behind: the next ``optimize``
fails them and re-enqueues their parameters, so nothing is lost and nothing is built twice.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from bsopt import __version__, settings
from bsopt.errors import BsoptError, InputError
from bsopt.explore import codesign, from_name, resolve
from bsopt.storage.urls import open_storage, resolve_url, shown_url, studies
from bsopt.study.objectives import BACKEND_METRICS, ObjectiveSet
from bsopt.study.params import OptunaSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message=".*multivariate.*", category=optuna.exceptions.ExperimentalWarning)

@dataclass
class StudyContext:
    """A loaded study with its space, objectives, backend and bookkeeping."""

    name: str
    storage: Any
    study: optuna.Study
    space: Any
    objectives: ObjectiveSet
    ospace: OptunaSpace
    sampler: str  # the strategy's name, as stored
    workdir: Path
    storage_url: str | None = None
    strategy: Any = None  # bsopt.explore.Strategy


# ------------------------------------------------------------------------------ create / load
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_study_name(name) -> str:
    """A study's name is also its folder's name: letters, digits, ``.``, ``_``, ``-`` (not first),
    at most 100 characters. Anything else (``../x``, absolute paths, empty, newlines) is refused."""
    if not isinstance(name, str) or not STUDY_NAME.fullmatch(name):
        raise InputError(f"invalid study name {name!r}", where="study name",
                         hint="use letters, digits, '.', '_' and '-' (starting with a letter or digit, at most "
                         "100 characters), e.g. tfc-w2a2_run1")
    return name


def create_study(name: str, blueprint: str | Path, *, model: str | None = None, storage: str | None = None,
                 sampler: str | None = None, seed: int | None = None, resume: bool = False,
                 n_trials: int | None = None) -> StudyContext:
    from bsopt.space.design_space import load_design_space

    check_study_name(name)
    bp_path = Path(blueprint).resolve()
    space = load_design_space(bp_path, model, for_builds=True).require_valid()
    objectives = ObjectiveSet.from_space(space)
    if space.blueprint.quantization is not None:
        codesign.check(space, objectives, BACKEND_METRICS["estimate"])
    else:
        objectives.check_backend(space.blueprint.backend)
    _check_backend(space)
    store = open_storage(storage)
    existing = [s.study_name for s in studies(store)]
    if name in existing:
        if not resume:
            raise InputError(f"a study named '{name}' already exists", where=shown_url(storage),
                             hint="continue it (resume=True / --resume, load_study / `bsopt study optimize`), or "
                             "choose another name")
        attrs = optuna.load_study(study_name=name, storage=store).user_attrs
        if attrs.get("space_id") != space.space_id:
            raise InputError(f"study '{name}' exists with another design space: it was created from "
                             f"{attrs.get('blueprint_path')}" + (f" and model {attrs.get('model_path')}"
                                                                 if attrs.get("model_path") else ""),
                             where=str(bp_path), hint="--resume continues a study with the blueprint and model it "
                             "was created with: give those, or create a study of another name")
        if sampler is not None and str(sampler) != str(attrs.get("sampler")):
            raise InputError(f"study '{name}' runs the {attrs.get('sampler')} strategy; it cannot be resumed with "
                             f"sampler '{sampler}'", where=f"study {name}",
                             hint="resume without a sampler, or create a study of another name for that sampler "
                             "(warm_start_from / --warm-start-from starts it from this one's results)")
        return load_study(name, storage, model=model)
    _check_fit(space, objectives)
    try:
        size = space.get_total_combinations()
    except BsoptError:
        size = None
    if seed is None:  # the blueprint's search.seed, unless --seed overrides it
        seed = space.search_config.seed
    budget = n_trials or space.search_config.max_evaluations
    if space.blueprint.quantization is not None:  # a sampler proposes quantisations, folding is solved exactly
        strategy = codesign.resolve(space, sampler, budget)
        from bsopt.models.pruning import make_pruner

        make_pruner(space.blueprint.training.pruner, space.blueprint.training.epochs)  # its options, now
    else:
        strategy = resolve(space, objectives, space.blueprint.backend, sampler, budget)
    study = optuna.create_study(study_name=name, storage=store, directions=objectives.directions,
                                sampler=strategy.sampler(seed, len(objectives.metrics)))
    with warnings.catch_warnings():  # experimental in Optuna, and what the dashboard reads
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(objectives.metrics)
    attrs = {
        "bsopt_version": __version__,
        "blueprint_path": str(bp_path),
        "blueprint_text": bp_path.read_text(),
        "model_path": str(Path(space.model_path).resolve()) if space.model_path and not
        str(space.model_path).startswith("zoo:") else space.model_path,
        "model_sha256": space.model_sha256,
        "space_id": space.space_id,
        "space_size": str(size) if size is not None else None,
        "sampler": strategy.name,
        "seed": seed,
        "objectives": objectives.describe(),
        "backend": space.blueprint.backend,
        "created": time.time(),
        "workdir": str(study_dir(space, name).resolve()),
    }
    if space.blueprint.quantization is not None:
        attrs["codesign"] = {"quantizations": space.blueprint.quantization.size,
                             "parameters": list(codesign.distributions(space.blueprint.quantization))}
    for k, v in attrs.items():
        study.set_user_attr(k, v)
    return StudyContext(name, store, study, space, objectives, OptunaSpace(space.parameters), strategy.name,
                        Path(attrs["workdir"]), resolve_url(storage), strategy)


def study_dir(space, name: str) -> Path:
    """A study's own folder: ``<study root>/<name>``, or ``<global.working_directory>/<name>`` when
    the blueprint names one and no explicit root (``--workdir``, ``$BSOPT_WORKDIR``) overrides it
    (relative paths: to the directory bsopt runs in)."""
    base = space.global_config.working_directory
    return Path(base) / name if base and not settings.root_is_explicit() else settings.study_dir(name)


def _check_fit(space, objectives) -> None:
    """Refuse a space whose constraints no configuration can meet (each layer's cheapest option,
    summed, already exceeds a limit), before any trial: every sampler's trials would be infeasible."""
    from bsopt.blueprint.diagnostics import BlueprintError
    from bsopt.explore.fit import misfit_error

    found = misfit_error(space, objectives)
    if found is not None:
        raise BlueprintError([found])


def _check_backend(space) -> None:
    """Create the blueprint's backend once, so that a misconfigured one (e.g. a FINN command that
    does not exist) is reported before a study is created."""
    from bsopt.backends.registry import make_backend

    target = space.fixed_target()
    backend = make_backend(space.blueprint.backend, space.model_path, target["finn_version"], target["part"],
                           space.blueprint.backend_options)
    check = getattr(backend, "check_environment", None)
    if callable(check):
        check()


def load_study(name: str, storage: str | None = None, *, model: str | None = None) -> StudyContext:
    from bsopt.space.design_space import load_design_space

    store = open_storage(storage)
    names = [s.study_name for s in studies(store)]
    if name not in names:
        raise InputError(f"no study named '{name}'", where=shown_url(storage),
                         hint=("studies: " + ", ".join(names)) if names else "create one with bsopt study create")
    attrs = optuna.load_study(study_name=name, storage=store).user_attrs
    bp_path = Path(attrs["blueprint_path"])
    if not bp_path.exists():
        raise InputError(f"the study's blueprint is gone: {bp_path}", where=f"study {name}",
                         hint="restore the file (its text is kept in the study's user attrs: "
                         "bsopt study export shows it)")
    space = load_design_space(bp_path, model or attrs.get("model_path"), for_builds=True).require_valid()
    if space.space_id != attrs["space_id"]:
        raise InputError(f"the design space of study '{name}' changed since it was created",
                         where=str(bp_path), hint="the blueprint or the model was edited; create a new study "
                         "(or restore the original files)")
    objectives = ObjectiveSet.from_space(space)
    strategy = codesign.from_stored(attrs["sampler"]) if attrs.get("codesign") else from_name(attrs["sampler"])
    study = optuna.load_study(study_name=name, storage=store,
                              sampler=strategy.sampler(attrs.get("seed"), len(objectives.metrics)))
    workdir = Path(attrs["workdir"]) if attrs.get("workdir") else study_dir(space, name)
    return StudyContext(name, store, study, space, objectives, OptunaSpace(space.parameters), strategy.name,
                        workdir, resolve_url(storage), strategy)


from bsopt.study.runner import Runner, RunStats  # noqa: E402,F401,I001 - the loop lives in its own module
