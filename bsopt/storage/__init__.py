"""Study storages: opening them (:mod:`bsopt.storage.urls`) and bsopt's fast reads and writes of
Optuna's RDB schema (:mod:`bsopt.storage.rdb`, used only at the installed Optuna's schema head)."""

from bsopt.storage.urls import open_storage, studies, study_names

__all__ = ["open_storage", "studies", "study_names"]
