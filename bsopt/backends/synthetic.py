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
- ``exception_rate``: the backend raises (an unexpected error: retried, its traceback logged);
- ``blackbox``: "real" metrics that are *not* per-layer sums and maxima of the estimates, as after
  synthesis — see :func:`blackbox_metrics` — for benchmarking strategies for expensive builds.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from bsopt.backends.estimate import EstimateBackend
from bsopt.backends.result import BuildResult, BuildStatus
from bsopt.errors import InputError

OPTIONS = {"duration_s": 0.0, "failure_rate": 0.0, "failure_message": "synthetic build failure",
           "crash_rate": 0.0, "crash_mode": "exit", "crash_once": True, "scratch_dir": "studies/.synthetic",
           "hang_rate": 0.0, "hang_s": 3600.0, "exception_rate": 0.0, "blackbox": False}


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

    def cache_identity(self) -> dict[str, Any]:
        """What decides a result besides the configuration: the options (where its markers go aside)."""
        return {k: v for k, v in self.options.items() if k != "scratch_dir"}

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
        if self.options["blackbox"] and result.ok:
            result.values = blackbox_metrics(cfg, result.values)
        return result


def _unit(*key) -> float:
    return int(hashlib.sha256(repr(key).encode()).hexdigest()[:8], 16) / 0x100000000


def blackbox_metrics(cfg, est: dict[str, float]) -> dict[str, float]:
    """A deterministic, non-separable distortion of the estimates (documented in docs/exact.md):

    - LUT: routing congestion grows with utilisation, ``× (1 + 0.5·u²)`` with ``u`` the estimated LUT
      utilisation, times a factor in [0.9, 1.1) drawn per *design family* (the pattern of memory styles
      over all layers);
    - BRAM_18K: ``+ 1`` per pair of neighbouring MVAUs whose PE of the first differs from the SIMD of
      the second (a width converter with a buffer);
    - max_cycles: ``+ 16`` per such mismatch (the converters' stalls), throughput and latency follow.
    """
    out = dict(est)
    folding = cfg.folding_config or {}
    layers = [(name, entry) for name, entry in folding.items() if name != "Defaults"]
    family = tuple(entry.get("ram_style", "") for _, entry in layers)
    util = est.get("LUT_util", 0.0)
    lut = est["LUT"] * (1 + 0.5 * util * util) * (0.9 + 0.2 * _unit("family", family))
    mvaus = [entry for name, entry in layers if name.startswith("MVAU")]
    mismatches = sum(1 for a, b in zip(mvaus, mvaus[1:], strict=False)
                     if a.get("PE") is not None and b.get("SIMD") is not None and a["PE"] != b["SIMD"])
    cycles = est["max_cycles"] + 16 * mismatches
    out["LUT"] = float(round(lut))
    out["BRAM_18K"] = est["BRAM_18K"] + mismatches
    out["max_cycles"] = float(cycles)
    if est.get("max_cycles"):
        out["throughput_fps"] = est["throughput_fps"] * est["max_cycles"] / cycles
    for k, base in (("LUT_util", "LUT"), ("BRAM_18K_util", "BRAM_18K")):
        if k in out and est.get(base):
            out[k] = est[k] * out[base] / est[base]
    if "max_util" in out:
        out["max_util"] = max(v for k, v in out.items() if k.endswith("_util") and k != "max_util")
    return out
