"""Opening a study storage from what a user writes: an SQLAlchemy URL, a journal file path, or
``memory``; by default the SQLite file ``bsopt.db`` in the study root (:mod:`bsopt.settings`)."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import optuna

from bsopt import settings
from bsopt.errors import InputError

log = logging.getLogger(__name__)

_MEMORY_STORAGE = None


def resolve_url(url: str | None) -> str:
    """The storage URL ``url`` stands for (None: the study root's SQLite file)."""
    return url or settings.default_storage_url()


def shown_url(url: str | None) -> str:
    """The storage URL as messages show it: a password is never printed."""
    url = resolve_url(url)
    if "://" in url and "@" in url:
        try:
            from sqlalchemy.engine import make_url

            return make_url(url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - not a SQLAlchemy URL: mask what looks like user:password@
            return re.sub(r"//([^/:@]+):[^/@]*@", r"//\1:***@", url)
    return url


def _with_installed_driver(url: str) -> str:
    """``postgresql://`` names no driver and SQLAlchemy's default (psycopg 3) may be missing where
    psycopg2 (bsopt's ``postgres`` extra) is installed: use the one that is there."""
    scheme, sep, rest = url.partition("://")
    if scheme != "postgresql" or not sep:
        return url
    import importlib.util

    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2"), ("pg8000", "pg8000")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    return url


def storage_file(url: str | None) -> Path | None:
    """The file a file storage (SQLite URL or journal path) lives in, whatever the spelling: query
    parameters dropped (``?timeout=60``), relative parts and symbolic links resolved. None for
    server databases and ``memory``."""
    url = resolve_url(url)
    if url == "memory":
        return None
    if url.startswith("sqlite:"):
        from sqlalchemy.engine import make_url

        try:
            database = make_url(url).database
        except Exception:  # noqa: BLE001 - a malformed URL: open_storage says what is wrong
            return None
        if not database or database == ":memory:":
            return None
        return Path(database).expanduser().resolve()
    if "://" not in url:
        return Path(url).expanduser().resolve()
    return None


def open_storage(url: str | None):
    """An Optuna storage from a URL, a journal file path (.log/.journal/.jsonl), or ``memory`` (this
    process only, nothing persisted: for benchmarks and experiments)."""
    global _MEMORY_STORAGE
    if url == "memory":
        if _MEMORY_STORAGE is None:
            _MEMORY_STORAGE = optuna.storages.InMemoryStorage()
        return _MEMORY_STORAGE
    url = resolve_url(url)
    if url.endswith((".log", ".journal", ".jsonl")) and "://" not in url:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        _make_folder(storage_file(url), url)
        return JournalStorage(JournalFileBackend(url))
    if url.startswith("sqlite:///"):
        _make_folder(storage_file(url), url)
        return _sqlite_storage(url)
    try:
        return optuna.storages.get_storage(_with_installed_driver(url))
    except Exception as exc:  # noqa: BLE001 - bad URLs raise many kinds of errors
        text = str(exc)
        if "@" in url:
            text = text.replace(url, shown_url(url))
        if "Failed to import DB access module" in text:
            text = "no database driver for this URL is installed"
            hint = "pip install 'bsopt[postgres]' for postgresql:// (psycopg2)"
        else:
            hint = "use sqlite:///path.db, postgresql://user@host/db or a journal file path"
        raise InputError(f"cannot open study storage: {text}", where=shown_url(url), hint=hint) from None


def _make_folder(path: Path | None, url: str) -> None:
    """The folder of a SQLite file: created below the directory bsopt runs in or the study root; an
    error elsewhere (a typo such as sqlite:////nonexist/x.db must not create /nonexist)."""
    if path is None or path.parent.is_dir():
        return
    folder = path.parent
    bases = (Path.cwd().resolve(), settings.studies_root().expanduser().resolve())
    if not any(folder.is_relative_to(b) for b in bases):
        raise InputError(f"the folder {folder} does not exist", where=shown_url(url),
                         hint="check the path, or create the folder first")
    folder.mkdir(parents=True, exist_ok=True)


#: the SQLite files opened by this process (named by :func:`explain_storage_error`)
_OPENED: list[Path] = []
_SQLITE_HEADER = b"SQLite format 3\x00"


def _sqlite_storage(url: str):
    """SQLite with write-ahead logging and normal sync: safe against process kills (not against power
    loss of the last transactions), and an order of magnitude faster per trial than the defaults.

    A file that is not an SQLite database is an InputError; a database bsopt may not write (a
    read-only folder: WAL needs its ``-shm`` file even to read) is opened read-only, so that queries
    work and writes fail with :func:`explain_storage_error`'s message."""
    from sqlalchemy import event, exc

    path = storage_file(url)
    if path is not None and path.is_file():
        _OPENED.append(path)
        with open(path, "rb") as fh:
            head = fh.read(len(_SQLITE_HEADER))
        if head and head != _SQLITE_HEADER:
            raise InputError(f"{path} is not an SQLite database (damaged, or another file)", where=shown_url(url),
                             hint=f"restore it from a backup, or move it aside (mv {path} {path}.broken) to start "
                             "a new storage; `sqlite3 FILE .recover` may save the rows of a damaged database")
    for attempt in range(_INIT_ATTEMPTS):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
            break
        except exc.DatabaseError as error:
            if path is not None and path.is_file() and _read_only(error):
                return _read_only_storage(path)
            if attempt + 1 < _INIT_ATTEMPTS and _initialised_concurrently(error):
                time.sleep(0.05 * (attempt + 1))  # another process is creating the schema: open it after
                continue
            raise explain_storage_error(error) or error from None

    @event.listens_for(storage.engine, "connect")
    def _pragmas(dbapi_conn, _record):  # pragma: no cover - exercised through every sqlite study
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    storage.engine.dispose()  # connections made before the listener existed get the pragmas too
    return storage


_INIT_ATTEMPTS = 20


def _initialised_concurrently(error) -> bool:
    """Two processes opening a new database at once both create Optuna's tables and stamp its schema
    version; the slower one fails with "table … already exists" or a duplicate alembic version.
    Opening again finds the schema the other one made."""
    text = str(getattr(error, "orig", error)).lower()
    return "already exists" in text or ("unique constraint" in text and "alembic_version" in text)


def _read_only(error) -> bool:
    text = str(getattr(error, "orig", error)).lower()
    return "readonly" in text or "read-only" in text or "unable to open database file" in text


def _read_only_storage(path: Path):
    """``path`` opened read-only and immutable (no lock, no WAL files): for reading a study where bsopt
    may not write."""
    from urllib.parse import quote

    log.warning("%s is read-only here: opened for reading only", path)
    storage = optuna.storages.RDBStorage(f"sqlite:///file:{quote(str(path))}?mode=ro&immutable=1&uri=true")
    storage.bsopt_read_only = path  # see read_only()
    return storage


def read_only(storage) -> Path | None:
    """The file of a storage :func:`open_storage` opened read-only (None: it is writable)."""
    return getattr(getattr(storage, "_backend", storage), "bsopt_read_only", None)


def explain_storage_error(error) -> InputError | None:
    """A storage error as bsopt's users meet it (read-only, full disk, damaged, locked): what happened
    and what to do; None for other errors."""
    text = str(getattr(error, "orig", error))
    low = text.lower()
    where = str(_OPENED[-1]) if _OPENED else None
    name = where or "the study storage"
    if "readonly" in low or "read-only" in low:
        return InputError(f"cannot write {name}: it is read-only here", where=where,
                          hint="queries work on a read-only storage; to run trials make the file and its folder "
                          "writable (SQLite writes -wal/-shm files beside it), or copy the folder somewhere "
                          "writable and use --workdir/--storage there")
    if "disk is full" in low or "disk i/o error" in low:
        return InputError(f"cannot write {name}: {text.split(chr(10))[0]} (a full disk or a file-size limit)",
                          where=where, hint="free disk space (df -h) or move the study root with --workdir; "
                          "the trials stored before the error are kept")
    if "not a database" in low or "malformed" in low:
        return InputError(f"{name} is damaged: {text.split(chr(10))[0]}", where=where,
                          hint="restore it from a backup, or move it aside to start a new storage; `sqlite3 FILE "
                          ".recover` may save its rows")
    if "database is locked" in low:
        return InputError(f"{name} stayed locked by another process for 60 s", where=where,
                          hint="another bsopt (or a sqlite3 shell) holds a write transaction: let it finish; "
                          "several drivers at once need PostgreSQL (docs/scaling.md)")
    if "unable to open database file" in low:
        return InputError(f"cannot open {name}", where=where,
                          hint="check that the folder exists and bsopt may read and write it")
    return None


def studies(storage) -> list:
    """The studies of an open storage (``FrozenStudy``: name, id, attributes) without reading their
    trials — ``optuna.get_all_study_summaries`` reads every trial of every study."""
    return storage.get_all_studies()


def study_names(storage_url: str | None) -> list[str]:
    return [s.study_name for s in studies(open_storage(storage_url))]
