"""Content-addressed cache of build results: identical builds are never run twice.

The key hashes the BuildConfig's content (model sha256, kernels, steps, flags, target part and
clock, folding — no ids) with the backend name, what else decides the backend's result (its
``cache_identity()``: for FINN the command, its environment and the timing rule) and bsopt's version.
Failures of the environment (a command that is not FINN, a missing tool), transient failures and
timeouts are never cached. Results live in a small SQLite
file (default ``studies/cache.db``) shared by all studies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from pathlib import Path

from bsopt import __version__
from bsopt.backends.result import BuildResult, BuildStatus
from bsopt.errors import InputError

log = logging.getLogger(__name__)


def cache_key(cfg, backend: str, identity: dict | None = None) -> str:
    extra = json.dumps(identity, sort_keys=True, default=str) if identity else ""
    return hashlib.sha256(f"{cfg.content_hash()}|{backend}|{extra}|{__version__}".encode()).hexdigest()


class BuildCache:
    def __init__(self, path: str | Path, batch: int = 256):
        self.batch = batch
        self._buffer: dict[str, str] = {}
        self._last_write = time.time()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rebuilt: str | None = None  # why a broken cache file was set aside, if one was
        try:
            self._open()
        except sqlite3.DatabaseError as exc:  # not a database, or damaged: it is only a cache
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            if isinstance(exc, sqlite3.OperationalError) and ("readonly" in str(exc) or "unable to open" in str(exc)):
                raise InputError(f"cannot write the build cache {self.path}: {exc}", where=str(self.path),
                                 hint="make the study root writable, or move it with --workdir") from exc
            broken = self.path.with_name(f"{self.path.name}.broken-{int(time.time())}")
            try:
                self.path.replace(broken)
            except OSError as move:
                raise InputError(f"the build cache {self.path} is unreadable ({exc}) and cannot be moved aside "
                                 f"({move.strerror})", where=str(self.path),
                                 hint="delete it (it is only a cache) or make its folder writable") from exc
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            self.rebuilt = f"the build cache {self.path} was unreadable ({exc}); it was moved to {broken.name} " \
                           "and a new one started"
            log.warning(self.rebuilt)
            self._open()

    def _open(self) -> None:
        self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS builds (key TEXT PRIMARY KEY, result TEXT NOT NULL, "
                             "created REAL NOT NULL)")
            self._db.execute("SELECT COUNT(*) FROM builds WHERE key = ''").fetchone()
        except BaseException:
            self._db.close()
            raise

    def get(self, key: str) -> BuildResult | None:
        text = self._buffer.get(key)
        if text is None:
            row = self._db.execute("SELECT result FROM builds WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            text = row[0]
        result = BuildResult.from_dict(json.loads(text))
        result.cache_hit = True
        return result

    def put(self, key: str, result: BuildResult) -> None:
        if result.recoverable or not result.cacheable or result.status == BuildStatus.TIMEOUT:
            return  # transient failures, broken environments and timeouts are not facts about the configuration
        data = result.to_dict()
        data["cache_hit"] = False
        self._buffer[key] = json.dumps(data)
        if len(self._buffer) >= self.batch or time.time() - self._last_write >= 1.0:
            self.flush()

    def flush(self) -> None:
        """Write the buffered results in one transaction."""
        self._last_write = time.time()
        if not self._buffer:
            return
        now = time.time()
        rows = [(k, v, now) for k, v in self._buffer.items()]
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT OR REPLACE INTO builds (key, result, created) VALUES (?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._buffer.clear()

    def __len__(self) -> int:
        self.flush()
        return self._db.execute("SELECT COUNT(*) FROM builds").fetchone()[0]

    def close(self) -> None:
        self.flush()
        self._db.close()
