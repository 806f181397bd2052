"""A synthetic "expensive" backend for tests and benchmarks of the execution layer.

It returns the estimate backend's metrics after a configurable delay and fails some builds, as a
slow real toolchain would: ``duration_s`` (seconds per build), ``failure_rate`` (fraction of
configurations that fail, chosen deterministically from the configuration's content so that a
failure is a property of the configuration), ``failure_message``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from bsopt.build.estimate_backend import EstimateBackend
from bsopt.build.result import BuildResult, BuildStatus
from bsopt.errors import InputError

OPTIONS = {"duration_s": 0.0, "failure_rate": 0.0, "failure_message": "synthetic build failure"}


class SyntheticBackend:
    name = "synthetic"
    expensive = True

    def __init__(self, model_path: str, finn_version: str = "latest", part: str | None = None,
                 options: dict[str, Any] | None = None):
        unknown = set(options or {}) - set(OPTIONS)
        if unknown:
            raise InputError(f"unknown synthetic backend option(s): {', '.join(sorted(unknown))}",
                             where="backend.options", hint="options: " + ", ".join(OPTIONS))
        self.options = {**OPTIONS, **(options or {})}
        self.estimator = EstimateBackend(model_path, finn_version, part)

    def _fails(self, cfg) -> bool:
        rate = float(self.options["failure_rate"])
        digest = int(hashlib.sha256(cfg.content_hash().encode()).hexdigest()[:8], 16)
        return digest / 0xFFFFFFFF < rate

    def build(self, cfg) -> BuildResult:
        start = time.time()
        time.sleep(float(self.options["duration_s"]))
        if self._fails(cfg):
            return BuildResult(cfg.config_id, BuildStatus.FAILED, start, time.time(),
                               error_message=str(self.options["failure_message"]), backend=self.name)
        result = self.estimator.build(cfg)
        result.start_time, result.backend = start, self.name
        return result
