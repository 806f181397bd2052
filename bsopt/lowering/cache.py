"""Lowered models on disk, so that a second command on the same model neither parses it (onnx, whose
import alone takes over a second) nor lowers it again.

An entry is keyed by the model file's sha256, what is cached (the lowered graph, the generic graph
every target's graph is specialised from, the model's information, its op histogram), the lowering
options and a fingerprint of bsopt's lowering code (its version and the size and modification time
of every file under ``bsopt/intake``, ``bsopt/lowering`` and ``bsopt/ir``): editing or upgrading
bsopt invalidates it. Entries live in ``<model cache>/lowered/`` (the study root's
``models/`` or ``$BSOPT_MODEL_CACHE``); an unreadable or missing entry is computed again, and a cache
that cannot be written is skipped. ``BSOPT_LOWERING_CACHE=0`` turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import json
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
def _digest(path: str, size: int, mtime_ns: int, ctime_ns: int = 0, inode: int = 0) -> str:
    key = f"{path}|{size}|{mtime_ns}|{ctime_ns}|{inode}"
    index = _digest_index()
    known = index.get(key) if index is not None else None
    if known is not None:
        return known
    h = hashlib.sha256()
    with open(path, "rb") as fh:  # in chunks: a BERT-large file is 1.3 GB
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if index is not None:
        _remember(key, digest, index)
    return digest


def file_digest(path: str | Path) -> str:
    """The sha256 of a file's bytes, memoised per path, size, modification and change times and inode
    in this process and, with the cache on, in ``<model cache>/lowered/digests.json`` — a later command
    on a large model does not read it again to find its cache entries."""
    p = Path(path).resolve()
    st = p.stat()
    return _digest(str(p), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


MAX_DIGESTS = 1000


def _digest_file() -> Path:
    from bsopt import settings

    return settings.model_cache() / "lowered" / "digests.json"


def _digest_index() -> dict[str, str] | None:
    """The remembered digests (empty when none or unreadable); None with the cache off."""
    if not _enabled():
        return None
    try:
        index = json.loads(_digest_file().read_text())
        return index if isinstance(index, dict) else {}
    except (OSError, ValueError):
        return {}


def _remember(key: str, digest: str, index: dict[str, str]) -> None:
    index = {k: v for k, v in index.items() if isinstance(v, str)}
    index[key] = digest
    if len(index) > MAX_DIGESTS:  # the oldest first (insertion order)
        index = dict(list(index.items())[-MAX_DIGESTS:])
    path = _digest_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(index))
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache: the file is hashed again next time
        log.debug("digest index %s not written: %s", path, exc)


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
