"""Where a command writes its outputs: checked before anything is written, so that a wrong ``--out``
is one clear message instead of an internal error half-way through."""

from __future__ import annotations

from pathlib import Path

from bsopt.errors import InputError


def output_dir(path: str | Path, what: str = "the output folder") -> Path:
    """``path`` as a folder to write into (created if missing)."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise InputError(f"{what} {p} is a file, not a folder", where=str(p),
                         hint="give a folder (new or existing) to write into")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {what} {p}: {exc.strerror or exc}", where=str(p),
                         hint="check the path and its permissions") from None
    return p


def output_file(path: str | Path, what: str = "the output file", suffix: str = ".json") -> Path:
    """``path`` as a file to write (its folder created if missing)."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(f"{what} {p} is a folder", where=str(p), hint=f"give a file name, e.g. {p / ('out' + suffix)}")
    output_dir(p.parent, "the folder of " + what)
    return p
