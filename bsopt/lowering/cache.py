"""Lowered models on disk, so that a second command on the same model neither parses it (onnx, whose
import alone takes over a second) nor lowers it again.

An entry is keyed by the model file's sha256, what is cached (the lowered graph, the generic graph
every target's graph is specialised from, the model's information, its op histogram), the lowering options and a fingerprint of bsopt's lowering code (its
version and the size and modification time of every file under ``bsopt/intake``, ``bsopt/lowering``
and ``bsopt/ir``):
editing or upgrading bsopt invalidates it. Entries live in ``<model cache>/lowered/`` (the study root's
``models/`` or ``$BSOPT_MODEL_CACHE``); an unreadable or missing entry is computed again, and a cache
that cannot be written is skipped. ``BSOPT_LOWERING_CACHE=0`` turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
FORMAT = 1


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    from bsopt import __version__

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(f"{__version__}|{FORMAT}".encode())
    for sub in ("intake", "lowering", "ir"):
        for f in sorted((root / sub).glob("*.py")):
            st = f.stat()
            h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_digest(path: str | Path) -> str:
    """The sha256 of a file's bytes (memoised per path, size and modification time in this process)."""
    p = Path(path).resolve()
    st = p.stat()
    return _digest(str(p), st.st_size, st.st_mtime_ns)


def _enabled() -> bool:
    return os.environ.get("BSOPT_LOWERING_CACHE", "1") not in ("0", "false", "no", "off")


def _entry(digest: str, kind: str, options: Any) -> Path:
    from bsopt import settings

    key = hashlib.sha256(f"{kind}|{options!r}|{code_fingerprint()}".encode()).hexdigest()[:24]
    return settings.model_cache() / "lowered" / f"{digest[:32]}-{kind}-{key}.pkl"


def cached(path: str | Path, kind: str, options: Any, compute: Callable[[], Any]) -> Any:
    """``compute()``'s result for the model file ``path`` under ``options``, from disk when an earlier
    command stored it."""
    if not _enabled():
        return compute()
    try:
        entry = _entry(file_digest(path), kind, options)
    except (OSError, ValueError):  # no such file, or a name no file can have: compute() says so
        return compute()
    try:
        with open(entry, "rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign entry: compute it again
        log.debug("lowering cache entry %s unreadable (%s): computed again", entry, exc)
    value = compute()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, entry)
    except OSError as exc:  # a read-only or full cache folder: only slower next time
        log.debug("lowering cache entry %s not written: %s", entry, exc)
    return value
