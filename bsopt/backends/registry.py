"""The build backends by name: what a blueprint's ``backend:`` selects."""

from __future__ import annotations

from bsopt.errors import InputError

BACKENDS = ("estimate", "finn", "synthetic")


def make_backend(name: str, model_path: str, finn_version: str = "latest", part: str | None = None,
                 options: dict | None = None, workdir=None):
    """The backend ``name`` for a model, FINN version and part; ``workdir`` is the study's folder."""
    if name == "train":  # co-design studies' training jobs (not a blueprint backend)
        from bsopt.backends.train import TrainBackend

        return TrainBackend(options or {})
    if name == "estimate":
        from bsopt.backends.estimate import EstimateBackend

        return EstimateBackend(model_path, finn_version, part, options)
    if name == "synthetic":
        from bsopt.backends.synthetic import SyntheticBackend

        return SyntheticBackend(model_path, finn_version, part, options)
    if name == "finn":
        from bsopt.backends.finn import FinnBackend

        return FinnBackend(model_path, finn_version, part, options, workdir=workdir)
    raise InputError(f"the '{name}' backend is not available", where="backend",
                     hint="backends: " + ", ".join(BACKENDS))
