"""Located validation errors and the small schema-checking helpers that produce them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from bsopt.blueprint.yamlloc import Locations
from bsopt.errors import InputError


def format_path(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


@dataclass(frozen=True)
class ValidationError:
    """One problem in a blueprint, with where it is and what to do."""

    file: str
    line: int
    column: int
    key_path: str
    message: str
    hint: str | None = None
    severity: str = "error"  # "error" | "warning"

    @property
    def place(self) -> str:
        """``file:line:column``, or just what it names (``--model``) when it is no position in a file."""
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.file

    def __str__(self) -> str:
        text = f"{self.place}: {self.severity}: {self.key_path}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class BlueprintError(InputError):
    """A blueprint that cannot be used; holds every error found."""

    def __init__(self, errors: list[ValidationError]):
        self.errors = list(errors)
        first = self.errors[0] if self.errors else None
        super().__init__(
            "\n".join(str(e) for e in self.errors) if self.errors else "invalid blueprint",
            where=None,
        )
        self.where = first.place if first else None

    def __str__(self) -> str:
        n = len(self.errors)
        head = f"{n} error{'s' if n != 1 else ''} in blueprint"
        return head + ":\n" + "\n".join(str(e) for e in self.errors)


class Diagnostics:
    """Collects errors and warnings, located through the blueprint's :class:`Locations`."""

    def __init__(self, locs: Locations):
        self.locs = locs
        self.items: list[ValidationError] = []

    def _add(self, severity: str, path, message: str, hint: str | None, key: bool) -> None:
        file, line, col = self.locs.of(tuple(path), key=key)
        item = ValidationError(file, line, col, format_path(tuple(path)), message, hint, severity)
        if item not in self.items:  # one problem, one message (e.g. a kind's typo met once per layer)
            self.items.append(item)

    def error(self, path, message: str, hint: str | None = None, *, key: bool = False) -> None:
        self._add("error", path, message, hint, key)

    def warning(self, path, message: str, hint: str | None = None, *, key: bool = False) -> None:
        self._add("warning", path, message, hint, key)

    @property
    def errors(self) -> list[ValidationError]:
        return [e for e in self.items if e.severity == "error"]

    @property
    def warnings(self) -> list[ValidationError]:
        return [e for e in self.items if e.severity == "warning"]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise BlueprintError(self.errors)

    # ------------------------------------------------------------------ schema helpers
    def mapping(self, value, path, what: str = "a mapping") -> dict | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"expected {what}, got {_kind(value)}")
            return None
        return value

    def sequence(self, value, path, what: str = "a list") -> list | None:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"expected {what}, got {_kind(value)}")
            return None
        return value

    def keys(self, mapping: dict, path, allowed, section: str | None = None) -> None:
        """Unknown keys are errors, with a did-you-mean suggestion."""
        allowed = list(allowed)
        for key in mapping:
            if key not in allowed:
                guess = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1, cutoff=0.6)
                hint = f"did you mean '{guess[0]}'?" if guess else "allowed keys: " + ", ".join(map(str, allowed))
                where = f" in {section}" if section else ""
                self.error(tuple(path) + (key,), f"unknown key '{key}'{where}", hint, key=True)

    def typed(self, value, path, types, what: str):
        if isinstance(value, bool) and bool not in _as_tuple(types):
            self.error(path, f"expected {what}, got a boolean")
            return None
        if not isinstance(value, types):
            self.error(path, f"expected {what}, got {_kind(value)}")
            return None
        return value

    def choice(self, value, path, allowed, what: str):
        if value not in allowed:
            guess = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.5)
            hint = f"did you mean '{guess[0]}'?" if guess else "one of: " + ", ".join(map(str, allowed))
            self.error(path, f"unknown {what} {value!r}", hint)
            return None
        return value


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


def _kind(value) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    return type(value).__name__


def suggest(name: str, known) -> str | None:
    guess = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean '{guess[0]}'?" if guess else None
