"""Builds on Ray actors: one actor per worker slot, each keeping its backend (loaded model, lowered
graph, cost models) warm between builds.

Without an address a local Ray instance is started (and stopped at the end); with ``auto`` or
``HOST:PORT`` the driver joins an existing cluster. Ray's token authentication works as Ray sets it
up: the driver reads ``RAY_AUTH_TOKEN`` or the cluster's token file. A lost actor or node (the actor
died, its node went away, its process crashed) comes back as a recoverable FAILED result: the study
engine retries the build on a fresh actor, wherever Ray places it. A build past its timeout has its
actor killed and comes back as TIMEOUT; the timeout runs from the actor's start, so that a slow
start (a fresh Ray worker importing the backend and loading the model) does not count towards the
first builds' time.
"""

from __future__ import annotations

import os
import time

from bsopt.backends.result import BuildResult
from bsopt.errors import InputError, MissingDependencyError
from bsopt.execute.base import BackendSpec, Executor, Task, lost_result, process_rss, run_build


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """An InputError within seconds when nothing accepts connections at ``HOST:PORT`` (a Ray head's GCS)."""
    import socket

    host, sep, port = address.rpartition(":")
    if address.startswith("ray://"):
        host, sep, port = address[len("ray://"):].rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise InputError(f"'{address}' is not a Ray address", where="--ray-address",
                         hint="HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379), or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise InputError(f"cannot join the Ray cluster at {address}: nothing answers there ({exc.strerror or exc})",
                         where="--ray-address", hint="check the address and that the head runs (`ray status` on "
                         "the head node); without --ray-address bsopt starts a local Ray instance") from exc


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("the ray executor needs Ray", hint='pip install "bsopt[ray]"') from exc
    return ray


class _BuildActor:
    """Runs in a Ray worker process."""

    def __init__(self, spec: BackendSpec):
        import ray

        self.backend = spec.create()
        ctx = ray.get_runtime_context()
        self.label = f"ray:{ctx.get_node_id()[:12]}:{os.getpid()}"

    def ready(self) -> bool:
        """Returns once the actor has started (its backend loaded)."""
        return True

    def build(self, cfg_dict: dict) -> tuple[dict, int]:
        from bsopt.space.build_config import BuildConfig

        decode = getattr(self.backend, "job_from_dict", None) or BuildConfig.from_dict
        result = run_build(self.backend, decode(cfg_dict), self.label)
        return result.to_dict(), process_rss(os.getpid())


#: how long an actor may take to start (Ray worker process, imports, the backend's model) before a build
#: waiting for it counts towards its timeout anyway
START_ALLOWANCE_S = 120.0


class _Slot:
    def __init__(self, actor):
        self.actor = actor
        self.ready_ref = actor.ready.remote()  # the build's timeout runs from the actor's start, not its launch
        self.is_ready = False
        self.ref = None
        self.task: Task | None = None
        self.started = 0.0
        self.rss = 0

    def deadline(self, timeout: float) -> float:
        return self.started + timeout + (0.0 if self.is_ready else START_ALLOWANCE_S)


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, spec: BackendSpec, slots: int, timeout: float | None = None, address: str | None = None,
                 num_cpus: float = 1.0):
        ray = _ray()
        self.spec, self.slots, self.timeout = spec, max(1, int(slots)), timeout
        self._initialized = False
        if not ray.is_initialized():
            if address and address != "auto":
                check_reachable(address)  # Ray itself retries an unreachable address for minutes
            # a local instance: on the loopback address (Ray's token authentication stays on)
            local = {} if address else {"num_cpus": max(self.slots, os.cpu_count() or 1),
                                        "_node_ip_address": "127.0.0.1"}
            try:
                ray.init(address=address, log_to_driver=False, include_dashboard=False,
                         configure_logging=False, **local)
            except Exception as exc:  # noqa: BLE001 - connection, authentication, bad address
                raise InputError(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray'}: {exc}",
                                 where="--ray-address", hint="check the address (`ray status` on the head node); "
                                 "with token authentication set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the "
                                 "cluster's token") from exc
            self._initialized = True  # disconnected (and a local instance stopped) by close()
        self._remote = ray.remote(num_cpus=num_cpus, max_restarts=0, max_task_retries=0)(_BuildActor)
        # all actors start now: they load their backends in parallel while the driver asks
        self._slots: list[_Slot] = [_Slot(self._new_actor()) for _ in range(self.slots)]

    def _new_actor(self):
        return self._remote.remote(self.spec)

    def submit(self, task: Task) -> None:
        slot = next((s for s in self._slots if s.task is None), None)
        if slot is None:
            if len(self._slots) >= self.slots:
                raise RuntimeError("no free worker slot")
            slot = _Slot(self._new_actor())
            self._slots.append(slot)
        slot.task = task
        slot.started = task.submitted = time.time()
        slot.is_ready = slot.is_ready or self._started(slot)
        slot.ref = slot.actor.build.remote(task.cfg.to_dict())

    @staticmethod
    def _started(slot: _Slot) -> bool:
        done, _ = _ray().wait([slot.ready_ref], timeout=0)
        return bool(done)

    @property
    def inflight(self) -> int:
        return sum(s.task is not None for s in self._slots)

    def worker_rss(self) -> list[int]:
        return [s.rss for s in self._slots if s.rss]

    def poll(self, timeout: float | None = None) -> list[tuple[Task, BuildResult]]:
        ray = _ray()
        from ray.exceptions import GetTimeoutError, RayError, RayTaskError

        end = None if timeout is None else time.time() + timeout
        while True:
            busy = [s for s in self._slots if s.task is not None]
            if not busy:
                return []
            wait_for = None if end is None else max(0.0, end - time.time())
            starting = {s.ready_ref: s for s in busy if not s.is_ready} if self.timeout is not None else {}
            if self.timeout is not None:
                until = max(0.0, min(s.deadline(self.timeout) for s in busy) - time.time())
                wait_for = until if wait_for is None else min(wait_for, until)
            ready, _ = ray.wait([s.ref for s in busy] + list(starting), num_returns=1, timeout=wait_for)
            ready = set(ready)
            for ref in ready & set(starting):  # started now: its build's time begins here
                slot = starting[ref]
                slot.is_ready, slot.started = True, max(slot.started, time.time())
            done: list[tuple[Task, BuildResult]] = []
            for s in busy:
                if s.ref not in ready:
                    continue
                task = s.task
                try:
                    data, s.rss = ray.get(s.ref, timeout=60)
                    result = BuildResult.from_dict(data)
                except (RayTaskError, GetTimeoutError, RayError) as exc:
                    # the actor, its worker process or its node is gone: a fresh actor takes the slot
                    self._replace(s)
                    result = lost_result(task.cfg, s.started, f"Ray build worker lost: {type(exc).__name__}: "
                                         f"{str(exc).splitlines()[0] if str(exc) else ''}", self.spec.name)
                s.task, s.ref = None, None
                done.append((task, result))
            if self.timeout is not None:
                now = time.time()
                for s in busy:
                    if s.task is not None and now >= s.deadline(self.timeout):
                        task = s.task
                        self._replace(s)
                        s.task, s.ref = None, None
                        done.append((task, lost_result(task.cfg, s.started, f"build timed out after {self.timeout:g} s "
                                                       "(Ray actor killed)", self.spec.name, timeout=True)))
            if done or (end is not None and time.time() >= end):
                return done

    def _replace(self, slot: _Slot) -> None:
        ray = _ray()
        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead
            pass
        slot.actor = self._new_actor()
        slot.ready_ref, slot.is_ready = slot.actor.ready.remote(), False
        slot.rss = 0

    def close(self) -> None:
        ray = _ray()
        for s in self._slots:
            try:
                ray.kill(s.actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self._slots = []
        if self._initialized and ray.is_initialized():
            ray.shutdown()
