"""Safe YAML loading that remembers where every key and value came from.

``load_yaml(path)`` returns the plain Python data (as ``yaml.safe_load`` would) and a
:class:`Locations` map from key paths (tuples of keys and list indices) to 1-based
(line, column) positions, so that every validation error can name ``file:line:column``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bsopt.errors import InputError

Path_ = tuple[Any, ...]


Pos = tuple[str, int, int]  # file, line, column (1-based)


@dataclass
class Locations:
    """Where each key path was written. Entries carry their file: merged blueprints (``extends``)
    hold positions from several files."""

    file: str
    values: dict[Path_, Pos] = field(default_factory=dict)
    keys: dict[Path_, Pos] = field(default_factory=dict)

    def of(self, path: Path_, *, key: bool = False) -> Pos:
        """Position of the value at ``path`` (or of its key), falling back to the nearest parent."""
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), (self.file, 1, 1))


class _Loader(yaml.SafeLoader):
    """SafeLoader; duplicate mapping keys are errors, not silent overrides; numbers in exponent
    notation without a dot (``1e12``, ``5e-9``) are floats, as in YAML 1.2 and Python, not strings."""


_Loader.add_implicit_resolver(  # YAML 1.1 (PyYAML) needs a dot before the exponent: 1.0e+12
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789"))


#: a blueprint is a few hundred values; aliases that expand beyond this are refused ("billion laughs")
MAX_VALUES = 200_000


class _Walk:
    """What one document's construction has visited: a value count and the nodes being built."""

    def __init__(self):
        self.count = 0
        self.open: set[int] = set()


def _construct(loader: _Loader, node: yaml.Node, path: Path_, locs: Locations, walk: _Walk | None = None) -> Any:
    walk = walk or _Walk()
    where = f"{locs.file}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
    walk.count += 1
    if walk.count > MAX_VALUES:
        raise InputError(f"the YAML expands to more than {MAX_VALUES:,} values", where=where,
                         hint="aliases (*name) that repeat anchors (&name) many times over; write the values out")
    if id(node) in walk.open:
        raise InputError("an alias refers to a value that contains it (a cycle)", where=where,
                         hint="an anchor (&name) cannot be used (*name) inside its own value")
    locs.values[path] = (locs.file, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        walk.open.add(id(node))
        try:
            return _construct_collection(loader, node, path, locs, walk)
        finally:
            walk.open.discard(id(node))
    return loader.construct_object(node, deep=True)


def _construct_collection(loader: _Loader, node: yaml.Node, path: Path_, locs: Locations, walk: _Walk) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise InputError(
                    "a mapping key must be a plain value",
                    where=f"{locs.file}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}",
                )
            if key in out:
                raise InputError(
                    f"duplicate key '{key}'",
                    where=f"{locs.file}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}",
                    hint="each key may appear once per mapping; merge the two entries",
                )
            locs.keys[path + (key,)] = (locs.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _construct(loader, value_node, path + (key,), locs, walk)
        return out
    return [_construct(loader, child, path + (i,), locs, walk) for i, child in enumerate(node.value)]


def parse_yaml(text: str, file: str) -> tuple[Any, Locations]:
    locs = Locations(file)
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a control character (NUL, …) where YAML allows none
        raise InputError(f"the file holds a character YAML does not allow (#x{exc.character:04x})",
                         where=f"{file}: character {exc.position + 1}",
                         hint="remove it (a blueprint is plain UTF-8 text)") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, locs
        return _construct(loader, node, (), locs), locs
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(f"YAML syntax error: {problem}", where=where,
                         hint="check indentation and quoting near this position") from exc
    except yaml.reader.ReaderError as exc:
        raise InputError(f"the file holds a character YAML does not allow (#x{exc.character:04x})",
                         where=f"{file}: character {exc.position + 1}",
                         hint="remove it (a blueprint is plain UTF-8 text)") from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML error: {exc}", where=file) from exc
    except RecursionError:
        raise InputError("the YAML is nested too deeply", where=file,
                         hint="a blueprint needs a few levels of nesting; check for runaway brackets") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> tuple[Any, Locations]:
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", where=str(p), hint="check the path to the blueprint")
    if p.is_dir():
        raise InputError("expected a YAML file but this is a directory", where=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("not a text file (UTF-8 expected)", where=str(p)) from exc
    return parse_yaml(text, str(p))
