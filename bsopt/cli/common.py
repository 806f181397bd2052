"""Helpers the command modules share."""

from __future__ import annotations

import json
from pathlib import Path

import rich.console

from bsopt.errors import InputError


class Console(rich.console.Console):
    """rich's Console, with two differences.  Printed into a pipe or a file, a line is never wrapped
    (a script greps a result line whole; tables still fit the width).  When the reader of its output has
    gone (``bsopt … | head``) it raises BrokenPipeError, which ``bsopt.cli.main`` ends quietly with 141
    as a signal-ended tool does (rich itself exits with 1, bsopt's code for an internal error)."""

    def __init__(self, *args, **kwargs) -> None:
        import sys

        stream = sys.stderr if kwargs.get("stderr") else sys.stdout
        kwargs.setdefault("soft_wrap", not stream.isatty())
        super().__init__(*args, **kwargs)

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def model_file(path: Path) -> Path:
    """A model argument: a QONNX file, or a zoo reference (``zoo:bert?w=4&a=4&layers=2``) exported once
    into the model cache, as blueprints use them."""
    if str(path).startswith("zoo:"):
        from bsopt.space.design_space import materialise_zoo

        return materialise_zoo(str(path))
    return path


def read_json(path: Path, what: str = "JSON"):
    """A JSON file's content, or an InputError naming the file, the line and the column."""
    if not path.exists():
        raise InputError("file not found", where=str(path), hint=f"pass the {what} file")
    if path.is_dir():
        raise InputError(f"expected a {what} file but this is a folder", where=str(path))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", where=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise InputError("not a text file (UTF-8 expected)", where=str(path)) from exc
    except RecursionError:
        raise InputError("the JSON is nested too deeply", where=str(path),
                         hint=f"a {what} needs two or three levels") from None


def resolve_part(part: str | None, board: str | None) -> str:
    from bsopt.hw.parts import BOARD_PARTS, DEFAULT_PART, PART_RESOURCES, is_part_name, resolve_board

    if part is not None and not is_part_name(part):
        raise InputError(f"'{part}' is not an AMD/Xilinx part name", where="--part",
                         hint="e.g. xc7z020clg400-1 (Pynq-Z1), or --board NAME; parts whose resources bsopt knows: "
                         + ", ".join(PART_RESOURCES))
    if part and board:
        raise InputError("give either --part or --board, not both", where="bsopt estimate")
    if board:
        found = resolve_board(board)
        if found is None:
            raise InputError(f"unknown board '{board}'", where="--board",
                             hint="known boards: " + ", ".join(BOARD_PARTS) + "; or give --part")
        return found
    return part or DEFAULT_PART
