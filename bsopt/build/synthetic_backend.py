"""A synthetic "expensive" backend for tests and benchmarks of the execution layer.

It returns the estimate backend's metrics after a configurable delay and misbehaves as a real
toolchain can. Which configurations misbehave is decided by the configuration's content, so a failure
is a property of the configuration and reruns are reproducible:

- ``duration_s``: seconds per build (sleep);
- ``failure_rate``, ``failure_message``: a clean FAILED result (a deterministic failure);
- ``crash_rate``, ``crash_mode`` (``exit``: ``os._exit(70)``, ``segv``: the process kills itself with
  SIGSEGV): the build kills its worker process; with ``crash_once`` (default) only the first attempt
  of a configuration crashes (a transient fault: the retry succeeds), tracked by marker files in
  ``scratch_dir``;
- ``hang_rate``, ``hang_s``: the build sleeps ``hang_s`` (default an hour): a hang, for timeouts;
- ``exception_rate``: the backend raises (an unexpected error: retried, its traceback logged).
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from bsopt.build.estimate_backend import EstimateBackend
from bsopt.build.result import BuildResult, BuildStatus
from bsopt.errors import InputError

OPTIONS = {"duration_s": 0.0, "failure_rate": 0.0, "failure_message": "synthetic build failure",
           "crash_rate": 0.0, "crash_mode": "exit", "crash_once": True, "scratch_dir": "studies/.synthetic",
           "hang_rate": 0.0, "hang_s": 3600.0, "exception_rate": 0.0}


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
        if self.options["crash_mode"] not in ("exit", "segv"):
            raise InputError(f"crash_mode must be exit or segv, got {self.options['crash_mode']!r}",
                             where="backend.options.crash_mode")
        self.estimator = EstimateBackend(model_path, finn_version, part)

    def _draw(self, cfg, salt: str) -> float:
        """A number in [0, 1) fixed by the configuration's content (and what it is drawn for)."""
        digest = hashlib.sha256(f"{salt}|{cfg.content_hash()}".encode()).hexdigest()
        return int(digest[:8], 16) / 0x100000000

    def _fails(self, cfg) -> bool:
        return self._draw(cfg, "fail") < float(self.options["failure_rate"])

    def _crash(self, cfg) -> None:
        if self._draw(cfg, "crash") >= float(self.options["crash_rate"]):
            return
        if self.options["crash_once"]:
            marker = Path(self.options["scratch_dir"]) / f"crashed-{cfg.content_hash()[:32]}"
            if marker.exists():
                return
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        if self.options["crash_mode"] == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        os._exit(70)

    def build(self, cfg) -> BuildResult:
        start = time.time()
        self._crash(cfg)
        if self._draw(cfg, "exception") < float(self.options["exception_rate"]):
            raise RuntimeError("synthetic backend exception")
        if self._draw(cfg, "hang") < float(self.options["hang_rate"]):
            time.sleep(float(self.options["hang_s"]))
        time.sleep(float(self.options["duration_s"]))
        if self._fails(cfg):
            return BuildResult(cfg.config_id, BuildStatus.FAILED, start, time.time(),
                               error_message=str(self.options["failure_message"]), backend=self.name)
        result = self.estimator.build(cfg)
        result.start_time, result.backend = start, self.name
        return result
