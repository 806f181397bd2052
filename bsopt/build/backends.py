"""The build backends by name: what a blueprint's ``backend:`` selects."""

from __future__ import annotations

from bsopt.errors import InputError

BACKENDS = ("estimate", "synthetic")


def make_backend(name: str, model_path: str, finn_version: str = "latest", part: str | None = None,
                 options: dict | None = None):
    """The backend ``name`` for a model, FINN version and part (the finn backend has its own issue)."""
    if name == "estimate":
        from bsopt.build.estimate_backend import EstimateBackend

        return EstimateBackend(model_path, finn_version, part)
    if name == "synthetic":
        from bsopt.build.synthetic_backend import SyntheticBackend

        return SyntheticBackend(model_path, finn_version, part, options)
    raise InputError(f"the '{name}' backend is not available", where="backend",
                     hint="backends: " + ", ".join(BACKENDS))
