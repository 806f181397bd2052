"""A local pool of killable worker processes.

Each worker is a process of its own (its own process group, so a build's child processes — a FINN or
Vivado run — die with it) that creates its backend once and then builds configurations sent to it
over a socket. The driver watches every worker's socket at once (it closes when the process dies):

- a result arrives → it is returned;
- the process ends without one (segfault, ``os._exit``, the kernel's OOM killer) → a FAILED result
  with ``recoverable=True`` and the exit reason; a fresh worker takes the slot;
- the build outlives its timeout → the worker's process group is killed, the result is TIMEOUT.

Workers watch their parent: if the driver is killed, they kill their process group and exit, so no
orphan builds keep running.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from itertools import count
from multiprocessing.connection import Connection, wait

from bsopt.backends.result import BuildResult
from bsopt.errors import BsoptError
from bsopt.execute.base import BackendSpec, Executor, Task, lost_result, run_build, worker_label


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            try:
                os.killpg(0, signal.SIGKILL)
            finally:
                os._exit(1)


def worker_main(fd: int, parent: int) -> None:
    """The worker process (``python -m bsopt.execute.local FD PARENT_PID``)."""
    from bsopt.space.build_config import BuildConfig

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and stops its workers
    os.set_inheritable(fd, False)  # a build's own child processes must not hold the driver's pipe
    conn = Connection(fd)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    spec = conn.recv()
    try:
        backend = spec.create()
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, which stops the study
        conn.send(("init_error", f"{type(exc).__name__}: {exc}"))
        return
    label = worker_label("local")
    decode = getattr(backend, "job_from_dict", None) or BuildConfig.from_dict  # training jobs, or builds
    conn.send(("ready", label))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        task_id, cfg_dict = msg
        result = run_build(backend, decode(cfg_dict), label)
        conn.send(("result", task_id, result.to_dict()))


def exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with status {code}"


class _Worker:
    """A fresh interpreter (no fork of the driver's state, no main-module re-import) in its own
    session, talking to the driver over a socket pair."""

    def __init__(self, spec: BackendSpec):
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bsopt.execute.local", str(theirs.fileno()), str(os.getpid())],
            pass_fds=(theirs.fileno(),), start_new_session=True, stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send(spec)
        self.ready = False
        self.label = ""
        self.task: Task | None = None
        self.task_id = -1
        self.started = 0.0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and whatever it started
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()


class LocalExecutor(Executor):
    """``slots`` worker processes; builds time out after ``timeout`` seconds (None: never)."""

    name = "local"

    def __init__(self, spec: BackendSpec, slots: int, timeout: float | None = None):
        self.spec, self.slots, self.timeout = spec, max(1, int(slots)), timeout
        self._ids = count()
        # all start now: they load their backends while the driver asks
        self._workers = [_Worker(self.spec) for _ in range(self.slots)]

    # -- submit ---------------------------------------------------------------------------------
    def submit(self, task: Task) -> None:
        worker = next((w for w in self._workers if w.task is None), None)
        if worker is not None and not worker.ready:  # it may have announced itself (or died) while idle
            self._receive(worker, [])
            if not worker.alive():
                worker.kill()
                self._workers.remove(worker)
                worker = None
        if worker is None:
            if len(self._workers) >= self.slots:
                raise RuntimeError("no free worker slot")  # the engine bounds submissions by free_slots()
            worker = _Worker(self.spec)
            self._workers.append(worker)
        worker.task, worker.task_id = task, next(self._ids)
        worker.started = time.time()
        task.submitted = worker.started
        try:
            worker.conn.send((worker.task_id, task.cfg.to_dict()))
        except OSError:
            pass  # the worker is gone: the next poll reports the build as lost (and it is retried)

    @property
    def inflight(self) -> int:
        return sum(w.task is not None for w in self._workers)

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.alive()]

    # -- poll -----------------------------------------------------------------------------------
    def _deadline(self, w: _Worker) -> float | None:
        if self.timeout is None or not w.ready:
            return None  # the clock starts when the worker has its backend (spawn + model load excluded)
        return w.started + self.timeout

    def poll(self, timeout: float | None = None) -> list[tuple[Task, BuildResult]]:
        end = None if timeout is None else time.time() + timeout
        while True:
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                return []
            deadlines = [d for d in (self._deadline(w) for w in busy) if d is not None]
            wait_for = None if end is None else max(0.0, end - time.time())
            if deadlines:
                until = max(0.0, min(deadlines) - time.time())
                wait_for = until if wait_for is None else min(wait_for, until)
            ready = set(wait([w.conn for w in busy], wait_for))
            done: list[tuple[Task, BuildResult]] = []
            for w in busy:
                if w.conn in ready:
                    self._receive(w, done)
            now = time.time()
            for w in busy:
                d = self._deadline(w)
                if w.task is not None and d is not None and now >= d:
                    task = w.task
                    self._discard(w)
                    done.append((task, lost_result(task.cfg, w.started, f"build timed out after {self.timeout:g} s "
                                                   "(worker killed)", self.spec.name, timeout=True)))
            if done or (end is not None and time.time() >= end):
                return done

    def _receive(self, w: _Worker, done: list) -> None:
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                if msg[0] == "ready":
                    w.ready, w.label = True, msg[1]
                    w.started = time.time()  # a build's clock starts when its worker has its backend
                elif msg[0] == "init_error":
                    self.close()
                    raise BsoptError(f"the {self.spec.name} backend could not start in a worker process: {msg[1]}")
                elif msg[0] == "result" and msg[1] == w.task_id:
                    task, w.task = w.task, None
                    done.append((task, BuildResult.from_dict(msg[2])))
                    return
        except (EOFError, OSError):
            try:
                w.proc.wait(5)  # the pipe closed: the process is ending
            except subprocess.TimeoutExpired:
                pass
        if w.task is not None and not w.alive():
            task = w.task
            code = w.proc.returncode
            self._discard(w)
            done.append((task, lost_result(task.cfg, w.started, f"build worker {w.label or w.proc.pid} died: "
                                           f"{exit_reason(code)}", self.spec.name)))

    def _discard(self, w: _Worker) -> None:
        w.task = None
        w.kill()
        self._workers.remove(w)

    def close(self) -> None:
        for w in list(self._workers):
            if w.task is None:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        deadline = time.time() + 2
        for w in list(self._workers):
            if w.task is None:
                try:
                    w.proc.wait(max(0.0, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    pass
            w.kill()
        self._workers = []


if __name__ == "__main__":
    worker_main(int(sys.argv[1]), int(sys.argv[2]))
