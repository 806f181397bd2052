"""Entry forms of Brainsmith blueprints: fixed, exclusive, optional, with backends.

Every kernel, transform or step entry becomes an :class:`Entry`: the list of its alternatives
(:class:`Option`, where ``name=None`` means "skip"). An entry with one option is fixed; more options
make a choice point of that size.

Accepted forms (YAML):

=================================  ==============================================================
``MatMul``                         fixed
``~Transpose`` / ``[~, Transpose]``  optional: absent or present (2 options)
``[A, B]``                         exclusive: A or B
``[Gemm, [rtl, hls]]``             kernel with backends: Gemm/rtl or Gemm/hls (kernels only)
``{MVAU: [MVAU_hls, MVAU_rtl]}``   kernel with backends (Brainsmith 0.1 form)
``[[LayerNorm, [a, b]], RMSNorm]`` exclusive group whose members carry backends (3 options)
``[[~Softmax, [flash, std]]]``     optional kernel with backends (3 options)
``"(~, a, b)"``                    parenthesised tuple string: exclusive group [~, a, b]
=================================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bsopt.blueprint.diagnostics import Diagnostics

SKIP = "~"


@dataclass(frozen=True)
class Option:
    name: str | None  # None: the entry is left out
    backend: str | None = None

    @property
    def label(self) -> str:
        if self.name is None:
            return SKIP
        return f"{self.name}/{self.backend}" if self.backend else self.name

    def to_json(self):
        return None if self.name is None else ({"name": self.name, "backend": self.backend} if self.backend else self.name)


@dataclass
class Entry:
    kind: str  # "kernel" | "transform" | "step"
    options: list[Option]
    path: tuple[Any, ...]
    phase: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_choice(self) -> bool:
        return len(self.options) > 1

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.options if o.name is not None]

    @property
    def key(self) -> str:
        """A readable, stable parameter name for this entry."""
        names = self.names
        base = "|".join(dict.fromkeys(names)) if names else "skip"
        return base


def _tuple_string(text: str) -> list[str | None] | None:
    t = text.strip()
    if not (t.startswith("(") and t.endswith(")")):
        return None
    items = []
    for raw in t[1:-1].split(","):
        item = raw.strip().strip("'\"").strip()
        if item == "":
            continue
        items.append(None if item in (SKIP, "null", "None") else item)
    return items


def _add(options: list[Option], opt: Option) -> None:
    if opt not in options:
        options.append(opt)


def _named(d: Diagnostics, value, path, what: str) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    d.error(path, f"expected a {what} name (a string), got {value!r}")
    return None


def _member(d: Diagnostics, value, path, options: list[Option], with_backends: bool, what: str) -> None:
    """One member of an exclusive group."""
    if value is None or value == SKIP:
        _add(options, Option(None))
        return
    if isinstance(value, str):
        inner = _tuple_string(value)
        if inner is not None:
            for item in inner:
                _add(options, Option(None) if item is None else Option(item.lstrip(SKIP) or None))
                if item and item.startswith(SKIP):
                    _add(options, Option(None))
            return
        name = value.strip()
        if name.startswith(SKIP):
            _add(options, Option(None))
            name = name[1:].strip()
        if not name:
            d.error(path, f"empty {what} name")
            return
        _add(options, Option(name))
        return
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], list) and isinstance(value[0], str):
        if not with_backends:
            d.error(path, f"a {what} takes no backend list", "backends ([rtl, hls]) exist only for kernels")
            return
        name = value[0].strip()
        if name.startswith(SKIP):
            _add(options, Option(None))
            name = name[1:].strip()
        backends = value[1]
        if not backends:
            d.error(path + (1,), "empty backend list", f"list the backends of {name}, e.g. [hls, rtl]")
            return
        for j, b in enumerate(backends):
            bname = _named(d, b, path + (1, j), "backend")
            if bname:
                _add(options, Option(name, bname))
        return
    if isinstance(value, dict) and with_backends:
        _mapping_form(d, value, path, options)
        return
    d.error(path, f"cannot read this {what} entry: {value!r}",
            "use a name, '~Name', a list of alternatives, or [Name, [backend, ...]]")


def _mapping_form(d: Diagnostics, value: dict, path, options: list[Option]) -> None:
    if len(value) != 1:
        d.error(path, "a kernel mapping must have exactly one kernel: {Kernel: [backend, ...]}")
        return
    (name, backends), = value.items()
    name = str(name).strip()
    if name.startswith(SKIP):
        _add(options, Option(None))
        name = name[1:].strip()
    if isinstance(backends, str):
        backends = [backends]
    if not isinstance(backends, list) or not backends:
        d.error(path + (name,), "expected a non-empty list of backends")
        return
    for j, b in enumerate(backends):
        bname = _named(d, b, path + (name, j), "backend")
        if bname:
            _add(options, Option(name, bname))


def parse_entry(d: Diagnostics, value, path, kind: str, with_backends: bool, phase: str | None = None) -> Entry | None:
    """Read one kernel/transform/step entry in any accepted form."""
    options: list[Option] = []
    what = kind
    if value is None:
        d.error(path, f"empty {what} entry (a bare '~')", f"write [~, Name] or '~Name' for an optional {what}")
        return None
    if isinstance(value, str):
        _member(d, value, path, options, with_backends, what)
    elif isinstance(value, dict):
        if not with_backends:
            d.error(path, f"a {what} entry cannot be a mapping")
            return None
        _mapping_form(d, value, path, options)
    elif isinstance(value, list):
        if not value:
            d.error(path, f"empty list of {what} alternatives")
            return None
        if (with_backends and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], list)
                and all(isinstance(b, str) for b in value[1])):
            _member(d, value, path, options, with_backends, what)  # [Kernel, [backends]]
        else:
            for i, member in enumerate(value):
                _member(d, member, path + (i,), options, with_backends, what)
    else:
        d.error(path, f"cannot read this {what} entry: {value!r}")
        return None
    if not options:
        return None
    return Entry(kind, options, tuple(path), phase)
