"""Who drives a study: one driver per study on file storages, any number on a server database.

SQLite and journal files are single-machine storages written by one process at a time: a driver takes
an exclusive lock beside the storage file, and a second driver is refused with a message that points
to PostgreSQL. On a server database (PostgreSQL, MySQL) drivers share the study:

- each driver has an id (host, pid, start time) and writes a heartbeat into the study's system
  attributes; each of its trials carries its id (``driver`` user attribute);
- a configuration is *claimed* by the trial that asks for it first: a trial records its ``config_id``
  right after being asked, then looks at the other unfinished and finished trials with the same
  ``config_id``. The oldest one (lowest trial id) owns the build; later ones wait for its result and
  copy it. A lower-numbered RUNNING trial that has not recorded its ``config_id`` yet is waited for
  briefly, so that two drivers asking for the same configuration at the same moment never both build;
- RUNNING trials whose driver's heartbeat stopped (it was killed) are failed and their parameters
  re-enqueued by any live driver; waiting duplicates of them take the build over.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from bsopt.errors import InputError

#: a driver whose heartbeat is older than this many seconds is considered dead (env BSOPT_DRIVER_STALE_S)
STALE_S = float(os.environ.get("BSOPT_DRIVER_STALE_S", "60"))
HEARTBEAT_S = min(5.0, STALE_S / 4)
_PREFIX = "bsopt:driver:"


def is_shared(storage) -> bool:
    """Whether several drivers may share studies in this storage (a server database)."""
    storage = getattr(storage, "_backend", storage)  # optuna wraps RDB storages in a cache
    if isinstance(storage, optuna.storages.RDBStorage):
        return storage.engine.dialect.name not in ("sqlite",)
    return False


def lock_path(storage_url: str | None, study: str) -> Path | None:
    """Where the single-driver lock of a study on a file storage lives (None: no lock needed). It is
    keyed on the storage's real file — its resolved path and, once it exists, its device and inode —
    so that every spelling of the URL (``?timeout=60``, ``./``, a symbolic or hard link) finds the
    same lock."""
    from bsopt.storage.urls import storage_file

    if not storage_url or storage_url == "memory":
        return None
    path = storage_file(storage_url)
    if path is None:
        return None
    try:
        st = path.stat()
        key = f"{st.st_dev}-{st.st_ino}"
    except OSError:
        key = path.name
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study)
    return path.parent / ".locks" / f"{key}.{safe}.lock"


class DriverLock:
    """An exclusive, process-lifetime lock (released by the OS if the process dies)."""

    def __init__(self, path: Path, study: str, storage_url: str):
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = open(path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            raise InputError(
                f"study '{study}' is being optimized by another driver ({holder})", where=storage_url,
                hint="SQLite and journal storages serve one driver per study: wait for it to finish, or "
                "share the study between drivers with --storage postgresql://user@host/db") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self._fh.flush()

    def release(self) -> None:
        import fcntl

        if self._fh.closed:
            return
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


def driver_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"


class Drivers:
    """Heartbeats, claims and stale-trial recovery of drivers sharing one study."""

    def __init__(self, study: optuna.Study):
        self.study = study
        self.storage = study._storage
        self.study_id = study._study_id
        self.id = driver_id()
        self._last_beat = 0.0

    def beat(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_beat >= HEARTBEAT_S:
            self.storage.set_study_system_attr(self.study_id, _PREFIX + self.id, now)
            self._last_beat = now

    def alive(self) -> dict[str, float]:
        now = time.time()
        return {k[len(_PREFIX):]: v for k, v in self.storage.get_study_system_attrs(self.study_id).items()
                if k.startswith(_PREFIX) and now - float(v) < STALE_S}

    def is_stale(self, trial, alive: dict[str, float] | None = None) -> bool:
        """A RUNNING trial whose driver is gone."""
        alive = self.alive() if alive is None else alive
        owner = trial.user_attrs.get("driver")
        if owner is not None:
            return owner not in alive
        started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
        return time.time() - started > STALE_S  # a trial asked by a driver that died before tagging it

    def claim(self, trial, config_id: str, *, settle_s: float = 2.0):
        """Tag ``trial`` as this driver's and with its configuration; return the trial that owns the
        build of that configuration if it is another one (None: this trial builds it)."""
        from bsopt.storage import rdb

        rdb.set_attrs(self.study, trial, {"driver": self.id, "config_id": config_id}, {})  # one write
        deadline = time.time() + settle_s
        while True:
            others = [t for t in self.study.get_trials(deepcopy=False, states=(
                TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
                if t._trial_id < trial._trial_id]
            alive = self.alive()
            untagged = [t for t in others if t.state == TrialState.RUNNING and "config_id" not in t.user_attrs
                        and not self.is_stale(t, alive)]
            owners = [t for t in others if t.user_attrs.get("config_id") == config_id and
                      (t.state != TrialState.FAIL or t.user_attrs.get("final"))]
            if owners:
                return min(owners, key=lambda t: t._trial_id)
            if not untagged or time.time() >= deadline:
                return None
            time.sleep(0.05)
