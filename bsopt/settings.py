"""Where bsopt keeps its files: one study root, by default ``studies/`` in the directory bsopt runs in.

The root holds the default study storage (``bsopt.db``), the shared build cache (``cache.db``),
exported zoo models (``models/``), dashboard artifacts (``artifacts/``) and one folder per study
(logs, FINN build folders, plots). It is set by ``bsopt --workdir DIR`` or ``$BSOPT_WORKDIR``
(relative paths are relative to the directory bsopt runs in). Without either, a blueprint's
``global.working_directory`` moves its studies' own folders elsewhere; an explicit root wins over it,
so that a root given on the command line holds everything a study writes. ``$BSOPT_MODEL_CACHE``
moves the exported models only.
"""

from __future__ import annotations

import os
from pathlib import Path

WORKDIR_ENV = "BSOPT_WORKDIR"
MODEL_CACHE_ENV = "BSOPT_MODEL_CACHE"
DEFAULT_ROOT = "studies"


def root_is_explicit() -> bool:
    """Whether ``--workdir`` or ``$BSOPT_WORKDIR`` names the study root (else it is the default)."""
    return bool(os.environ.get(WORKDIR_ENV))


def studies_root() -> Path:
    """The study root (not created here)."""
    return Path(os.environ.get(WORKDIR_ENV) or DEFAULT_ROOT)


def set_studies_root(path: str | os.PathLike) -> None:
    """Use ``path`` as the study root in this process and in the worker processes it starts."""
    os.environ[WORKDIR_ENV] = str(path)


def default_storage_url() -> str:
    """``sqlite:///<root>/bsopt.db`` (its folder is created when the storage is opened)."""
    return f"sqlite:///{studies_root() / 'bsopt.db'}"


def cache_path() -> Path:
    return studies_root() / "cache.db"


def model_cache() -> Path:
    return Path(os.environ.get(MODEL_CACHE_ENV) or studies_root() / "models")


def artifact_root() -> Path:
    return studies_root() / "artifacts"


def study_dir(name: str) -> Path:
    """A study's own folder when its blueprint names none: ``<root>/<name>``."""
    return studies_root() / name
