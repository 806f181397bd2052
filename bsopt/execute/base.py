"""The executor interface: submit BuildConfigs, poll for BuildResults.

An executor owns the processes that run builds. It never raises for a build's failure: a backend
exception, a crashed worker (segfault, ``os._exit``, out of memory), a lost Ray actor or node all come
back as a FAILED :class:`BuildResult` with ``recoverable=True`` (the study engine decides whether to
retry), and a build that outlives its timeout is killed and comes back as TIMEOUT.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from bsopt.backends.result import BuildResult, BuildStatus


@dataclass
class Task:
    """One build in flight: what the study engine needs back with its result."""

    cfg: Any  # BuildConfig
    key: str = ""  # cache key
    trial: Any = None  # optuna Trial (driver side only)
    attempt: int = 0
    errors: list[str] = field(default_factory=list)
    submitted: float = 0.0
    estimate: dict | None = None  # the estimate gate's metrics (stored beside the build's)


@dataclass
class BackendSpec:
    """Everything a worker needs to create its backend (picklable)."""

    name: str
    model_path: str
    finn_version: str
    part: str | None
    options: dict | None = None
    workdir: str | None = None  # the study's folder (build trees of the finn backend go below it)

    def create(self):
        from bsopt.backends.registry import make_backend

        return make_backend(self.name, self.model_path, self.finn_version, self.part, self.options, self.workdir)


def worker_label(kind: str = "local") -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


def run_build(backend, cfg, worker: str) -> BuildResult:
    """Run one build in the current process; exceptions become recoverable FAILED results."""
    start = time.time()
    try:
        result = backend.build(cfg)
    except Exception as exc:  # noqa: BLE001 - any backend error is reported, not raised
        tb = traceback.format_exc(limit=8)
        result = BuildResult(cfg.config_id, BuildStatus.FAILED, start, time.time(),
                             error_message=f"{type(exc).__name__}: {exc}", logs=tb,
                             backend=getattr(backend, "name", ""), recoverable=True)
    result.worker = worker
    return result


def lost_result(cfg, start: float, reason: str, backend: str, *, timeout: bool = False) -> BuildResult:
    """The result of a build whose worker died or was killed."""
    return BuildResult(cfg.config_id, BuildStatus.TIMEOUT if timeout else BuildStatus.FAILED, start,
                       time.time(), error_message=reason, backend=backend, recoverable=not timeout)


class Executor:
    """Runs builds somewhere. ``slots`` builds at once; ``poll`` returns finished ones."""

    name = "executor"
    slots = 1

    def submit(self, task: Task) -> None:
        raise NotImplementedError

    def poll(self, timeout: float | None = None) -> list[tuple[Task, BuildResult]]:
        """Finished builds; waits up to ``timeout`` seconds (None: until one finishes) if none are."""
        raise NotImplementedError

    @property
    def inflight(self) -> int:
        raise NotImplementedError

    def free_slots(self) -> int:
        return self.slots - self.inflight

    def worker_pids(self) -> list[int]:
        """Process ids of local worker processes (for resource monitoring)."""
        return []

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def process_rss(pid: int) -> int:
    """Resident memory of a process in bytes (0 if it is gone)."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except Exception:  # noqa: BLE001 - psutil missing or the process ended
        try:
            with open(f"/proc/{pid}/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0


def worker_rss(pids: list[int]) -> list[int]:
    """Resident memory of each worker process in bytes."""
    return [process_rss(p) for p in pids]
