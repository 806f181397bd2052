"""Builds in the driver process itself: no IPC, for cheap backends (the estimate model, ~ms a build).

Timeouts cannot be enforced here (nothing can kill a call in progress): the study engine uses the
local process pool whenever a build timeout is set or the backend is expensive.
"""

from __future__ import annotations

from bsopt.backends.result import BuildResult
from bsopt.execute.base import BackendSpec, Executor, Task, run_build, worker_label


class InProcessExecutor(Executor):
    name = "inprocess"
    slots = 1

    def __init__(self, spec: BackendSpec, backend=None):
        self.backend = backend if backend is not None else spec.create()
        self._done: list[tuple[Task, BuildResult]] = []
        self._label = worker_label("inprocess")

    def submit(self, task: Task) -> None:
        self._done.append((task, run_build(self.backend, task.cfg, self._label)))

    def poll(self, timeout: float | None = None) -> list[tuple[Task, BuildResult]]:
        done, self._done = self._done, []
        return done

    @property
    def inflight(self) -> int:
        return len(self._done)
