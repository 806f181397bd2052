"""Helpers the command modules share."""

from __future__ import annotations

import json
from pathlib import Path

from bsopt.errors import InputError


def read_json(path: Path, what: str = "JSON"):
    """A JSON file's content, or an InputError naming the file, the line and the column."""
    if not path.exists():
        raise InputError("file not found", where=str(path), hint=f"pass the {what} file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", where=str(path)) from exc
